package logstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	storeExt     = ".store"
	indexExt     = ".index"
	timeIndexExt = ".timeindex"
)

// segment is one store file and its indexes, holding the records from base on.
//
// base, the files and paths never change. size, records, times, lastTime,
// lastEntryPos and modTime are owned by the Log's writer while the segment is
// active; once it is sealed they are fixed, and readers see them through the
// state that published the seal. Readers of the active segment use the
// state's bounds instead.
type segment struct {
	base          uint64
	storePath     string
	indexPath     string
	timeIndexPath string
	store         *os.File
	index         *os.File
	timeIndex     *os.File

	size    int64  // store bytes that hold whole batches
	records uint32 // records in the segment (= valid index entries)
	times   uint32 // valid time index entries
	// lastTime is the latest time stamped on a record of the log up to the
	// end of this segment (0: none); lastEntryPos is the store position of
	// the batch of the last time index entry (headerSize before any).
	lastTime     int64
	lastEntryPos int64
	modTime      time.Time // when the last batch was appended
	// reserved is the store position up to which blocks were reserved
	// (Log.reserveLocked) while the segment is active.
	reserved int64

	// refs counts the Log's reference and every reader's; the files close when
	// it reaches zero, so a reader never sees a file closed under it.
	refs atomic.Int64
}

func segmentName(base uint64) string { return fmt.Sprintf("%020d", base) }

// parseSegmentName returns the base offset of a store, index or time index
// file name.
func parseSegmentName(name string) (base uint64, ext string, ok bool) {
	ext = filepath.Ext(name)
	if ext != storeExt && ext != indexExt && ext != timeIndexExt {
		return 0, "", false
	}
	stem := strings.TrimSuffix(name, ext)
	if len(stem) != 20 {
		return 0, "", false
	}
	base, err := strconv.ParseUint(stem, 10, 64)
	return base, ext, err == nil
}

func newSegment(dir string, base uint64) *segment {
	s := &segment{
		base:          base,
		storePath:     filepath.Join(dir, segmentName(base)+storeExt),
		indexPath:     filepath.Join(dir, segmentName(base)+indexExt),
		timeIndexPath: filepath.Join(dir, segmentName(base)+timeIndexExt),
		lastEntryPos:  headerSize,
	}
	s.refs.Store(1)
	return s
}

// acquire takes a reader's reference; false means the segment was dropped and
// its files are closed.
func (s *segment) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives a reference back and closes the files with the last one.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.closeFiles()
	}
}

// sync makes the segment's files durable (fsync).
func (s *segment) sync() error {
	if err := s.store.Sync(); err != nil {
		return fmt.Errorf("logstore: sync %s: %w", s.storePath, err)
	}
	if err := s.index.Sync(); err != nil {
		return fmt.Errorf("logstore: sync %s: %w", s.indexPath, err)
	}
	if err := s.timeIndex.Sync(); err != nil {
		return fmt.Errorf("logstore: sync %s: %w", s.timeIndexPath, err)
	}
	return nil
}

func (s *segment) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{s.store, s.index, s.timeIndex} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// createSegment makes a new, empty segment and makes it durable before
// returning. Its store starts with a metadata-only frame when there is
// metadata (meta non-nil) or a latest time (lastTime, the log's, not 0) to
// carry into it.
func createSegment(dir string, base uint64, meta []byte, lastTime int64) (*segment, error) {
	s := newSegment(dir, base)
	store := appendHeader(nil, storeMagic, base)
	if meta != nil || lastTime != 0 {
		store = appendFrame(store, base, flagBatchEnd|flagNoRecord, lastTime, meta, nil)
	}
	var err error
	if s.store, err = createFile(s.storePath, store, true); err != nil {
		return nil, err
	}
	if s.index, err = createFile(s.indexPath, appendHeader(nil, indexMagic, base), true); err != nil {
		s.closeFiles()
		return nil, err
	}
	// The time index is fsynced with the segment, not now: until then,
	// recovery rebuilds it from the store should its header be lost.
	if s.timeIndex, err = createFile(s.timeIndexPath, appendHeader(nil, timeIndexMagic, base), false); err != nil {
		s.closeFiles()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.size, s.lastTime = int64(len(store)), lastTime
	s.modTime = time.Now()
	return s, nil
}

// createFile creates the file at path holding contents, and fsyncs it when
// sync is set.
func createFile(path string, contents []byte, sync bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("logstore: %w", err)
	}
	if _, err := f.Write(contents); err != nil {
		f.Close()
		return nil, fmt.Errorf("logstore: write %s: %w", path, err)
	}
	if !sync {
		return f, nil
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("logstore: sync %s: %w", path, err)
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("logstore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("logstore: sync directory %s: %w", dir, err)
	}
	return nil
}

// recovery reports what opening a segment had to repair.
type recovery struct {
	droppedBytes       int64 // torn or corrupt store bytes cut off the end
	droppedEntries     int   // index entries removed (they pointed at nothing valid)
	rebuiltEntries     int   // index entries written from the store
	droppedTimeEntries int   // time index entries removed
	rebuiltTimeEntries int   // time index entries written from the store
	meta               []byte
	hasMeta            bool // a batch end was seen; meta is the log's metadata there
	recreated          bool // the store was shorter than its header: made anew
	indexRecreated     bool // the index header was damaged: rebuilt from the store
	timeIndexRecreated bool // the time index header was damaged: rebuilt from the store
}

func (r recovery) repaired() bool {
	return r.droppedBytes > 0 || r.droppedEntries > 0 || r.rebuiltEntries > 0 || r.recreated || r.indexRecreated ||
		r.droppedTimeEntries > 0 || r.rebuiltTimeEntries > 0 || r.timeIndexRecreated
}

// openSegment opens the segment at base and recovers its tail: it finds the last
// index entry that points at a valid batch end, scans the store from there,
// rebuilds missing index entries, and truncates a torn tail. A sealed segment
// may have its index repaired, but one that has lost data is an error naming
// the file: only the active segment may be cut short. prevTime is the latest
// time of the segments before it, which its time index carries on.
func openSegment(dir string, base uint64, sealed bool, prevTime int64) (*segment, recovery, error) {
	s := newSegment(dir, base)
	var rec recovery
	var err error
	if s.store, err = os.OpenFile(s.storePath, os.O_RDWR, 0); err != nil {
		return nil, rec, fmt.Errorf("logstore: %w", err)
	}
	if rec, err = s.recover(sealed, prevTime); err != nil {
		s.closeFiles()
		return nil, rec, err
	}
	return s, rec, nil
}

// recover checks the segment's files against each other and repairs what a
// crash can leave, in steps: the store's header, the index's last good entry,
// the time index's last good entry, a scan of the store after them, and the
// cut of whatever does not hold whole batches.
func (s *segment) recover(sealed bool, prevTime int64) (recovery, error) {
	var rec recovery
	storeSize, err := s.checkStoreHeader(sealed, &rec)
	if err != nil {
		return rec, err
	}
	nEntries, err := s.openIndex(&rec)
	if err != nil {
		return rec, err
	}
	scanFrom, kept, err := s.lastGoodEntry(nEntries, storeSize, &rec)
	if err != nil {
		return rec, err
	}
	nTimes, err := s.openTimeIndex(&rec)
	if err != nil {
		return rec, err
	}
	tx, timesFrom, err := s.lastGoodTimeEntry(nTimes, kept, storeSize, sealed && scanFrom == storeSize, prevTime, &rec)
	if err != nil {
		return rec, err
	}
	if tx != nil {
		s.scanTimes(tx, timesFrom, scanFrom)
	}
	good, records, scanErr, err := s.scanTail(scanFrom, kept, storeSize, tx, &rec)
	if err != nil {
		return rec, err
	}
	if err := s.cutTail(sealed, storeSize, good, records, scanErr, &rec); err != nil {
		return rec, err
	}
	if err := s.writeTimes(tx, sealed, records, &rec); err != nil {
		return rec, err
	}
	if rec.repaired() {
		if err := s.sync(); err != nil {
			return rec, err
		}
	}
	s.size, s.records = good, records
	return rec, nil
}

// checkStoreHeader verifies the store's header and returns the store's size.
// An active store shorter than its header (a crash while the segment was
// created) is made anew, empty.
func (s *segment) checkStoreHeader(sealed bool, rec *recovery) (int64, error) {
	fi, err := s.store.Stat()
	if err != nil {
		return 0, fmt.Errorf("logstore: %w", err)
	}
	storeSize := fi.Size()
	s.modTime = fi.ModTime()
	if storeSize < headerSize {
		// A crash while the segment was being created: it never held data.
		if sealed {
			return 0, &CorruptError{Path: s.storePath, Reason: fmt.Sprintf("sealed store file is %d bytes, shorter than its header", storeSize)}
		}
		rec.recreated = true
		return headerSize, s.rewrite(s.store, s.storePath, appendHeader(nil, storeMagic, s.base))
	}
	hdr := make([]byte, headerSize)
	if _, err := s.store.ReadAt(hdr, 0); err != nil {
		return 0, fmt.Errorf("logstore: read %s: %w", s.storePath, err)
	}
	if err := checkHeader(hdr, storeMagic, s.base); err != nil {
		return 0, &CorruptError{Path: s.storePath, Reason: err.Error()}
	}
	return storeSize, nil
}

// lastGoodEntry walks back from the last of the index's nEntries entries to
// one that points at a valid frame ending a batch: everything up to it is
// known good. It returns the store position after that batch and the number
// of records up to it (headerSize and 0 when no entry is good), and counts
// the entries after it as dropped. Entries are read from the end in chunks;
// usually only the last one is looked at.
func (s *segment) lastGoodEntry(nEntries int, storeSize int64, rec *recovery) (scanFrom int64, kept uint32, err error) {
	scanFrom = headerSize
	var chunk []byte
	chunkFrom := nEntries
	for i := nEntries - 1; i >= 0; i-- {
		if i < chunkFrom {
			chunkFrom = max(0, i+1-512)
			chunk = make([]byte, (i+1-chunkFrom)*indexEntrySize)
			if _, err := s.index.ReadAt(chunk, headerSize+int64(chunkFrom)*indexEntrySize); err != nil {
				return 0, 0, fmt.Errorf("logstore: read %s: %w", s.indexPath, err)
			}
		}
		e := decodeIndexEntry(chunk[(i-chunkFrom)*indexEntrySize:])
		if e.rel != uint32(i) || int64(e.pos) < headerSize || int64(e.pos) >= storeSize {
			continue
		}
		f, end, err := readFrameAt(s.store, int64(e.pos), storeSize)
		if err != nil || f.off != s.base+uint64(i) || !f.isRecord() || f.flags&flagBatchEnd == 0 {
			continue
		}
		scanFrom, kept = end, uint32(i+1)
		rec.meta, rec.hasMeta = f.meta, true
		break
	}
	rec.droppedEntries += nEntries - int(kept) // openIndex counted a partial entry
	return scanFrom, kept, nil
}

// scanTail scans the store from scanFrom, where the records before kept end,
// keeping whole batches only, and writes the index entries of their records;
// it feeds every frame to tx unless tx is nil. It returns the store position
// after the last whole batch, the records up to it, and why the scan stopped
// before the end of the store (nil at a clean end).
func (s *segment) scanTail(scanFrom int64, kept uint32, storeSize int64, tx *timeIndexer, rec *recovery) (good int64, records uint32, scanErr, err error) {
	sc := newScanner(s.store, scanFrom, storeSize)
	good, records = scanFrom, kept
	var pending []byte // index entries of the batch being read
	for {
		f, pos, err := sc.next()
		if err != nil {
			if err != io.EOF {
				scanErr = err
			}
			return good, records, scanErr, nil
		}
		if want := s.base + uint64(records) + uint64(len(pending)/indexEntrySize); f.off != want {
			return good, records, fmt.Errorf("frame offset %d, want %d", f.off, want), nil
		}
		rel := records + uint32(len(pending)/indexEntrySize)
		if f.isRecord() {
			pending = appendIndexEntry(pending, rel, uint32(pos))
		}
		if tx != nil {
			tx.add(&f, pos, rel)
		}
		if f.flags&flagBatchEnd == 0 {
			continue
		}
		if len(pending) > 0 {
			if _, err := s.index.WriteAt(pending, headerSize+int64(records)*indexEntrySize); err != nil {
				return 0, 0, nil, fmt.Errorf("logstore: write %s: %w", s.indexPath, err)
			}
			rec.rebuiltEntries += len(pending) / indexEntrySize
			records += uint32(len(pending) / indexEntrySize)
			pending = pending[:0]
		}
		good = sc.pos
		rec.meta, rec.hasMeta = append([]byte(nil), f.meta...), true
	}
}

// cutTail truncates the store after its last whole batch, at good, and the
// index after the entries of its records, and makes a repair durable. A
// sealed segment that would lose data is an error naming the file, with why
// the scan stopped (scanErr) when it did.
func (s *segment) cutTail(sealed bool, storeSize, good int64, records uint32, scanErr error, rec *recovery) error {
	rec.droppedBytes = storeSize - good
	if sealed && rec.droppedBytes > 0 {
		reason := "sealed segment ends in an incomplete batch"
		if scanErr != nil {
			reason = scanErr.Error()
		}
		return &CorruptError{Path: s.storePath, Pos: good, Reason: reason}
	}
	if rec.droppedBytes > 0 {
		if err := s.store.Truncate(good); err != nil {
			return fmt.Errorf("logstore: truncate %s: %w", s.storePath, err)
		}
	}
	if rec.droppedEntries > 0 || rec.rebuiltEntries > 0 {
		if err := s.index.Truncate(headerSize + int64(records)*indexEntrySize); err != nil {
			return fmt.Errorf("logstore: truncate %s: %w", s.indexPath, err)
		}
	}
	return nil
}

// openTimeIndex opens (or, when missing, torn at creation or with a damaged
// header, recreates) the time index and returns how many whole entries it
// holds. A partial trailing entry is counted as dropped.
func (s *segment) openTimeIndex(rec *recovery) (int, error) {
	var err error
	s.timeIndex, err = os.OpenFile(s.timeIndexPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("logstore: %w", err)
	}
	fi, err := s.timeIndex.Stat()
	if err != nil {
		return 0, fmt.Errorf("logstore: %w", err)
	}
	hdr := make([]byte, headerSize)
	if fi.Size() >= headerSize {
		if _, err := s.timeIndex.ReadAt(hdr, 0); err != nil {
			return 0, fmt.Errorf("logstore: read %s: %w", s.timeIndexPath, err)
		}
	}
	if fi.Size() < headerSize || checkHeader(hdr, timeIndexMagic, s.base) != nil {
		// Missing (a log written before time indexes, or a crash), torn at
		// creation or damaged: derived data, rebuilt from the store.
		rec.timeIndexRecreated = fi.Size() > 0
		return 0, s.rewrite(s.timeIndex, s.timeIndexPath, appendHeader(nil, timeIndexMagic, s.base))
	}
	body := fi.Size() - headerSize
	if body%timeEntrySize != 0 {
		rec.droppedTimeEntries++
	}
	return int(body / timeEntrySize), nil
}

// lastGoodTimeEntry walks back from the last of the time index's nTimes
// entries to one that is good. A good entry follows the entry before it in
// relative offset, and its time is not below that entry's nor below
// prevTime; and it is the seal entry ending a sealed segment (sealEnd says
// the store's records end at kept), or its relative offset is below kept and
// names the first record of a batch with the entry's time (or without time,
// for a marker). It counts the entries after it as dropped. It returns a nil
// timeIndexer when the time index is whole, or else the timeIndexer that
// derives the missing entries and the store position where it starts: the
// good entry's batch, or the store's first frame (carrying on prevTime) when
// no entry is good.
func (s *segment) lastGoodTimeEntry(nTimes int, kept uint32, storeSize int64, sealEnd bool, prevTime int64, rec *recovery) (*timeIndexer, int64, error) {
	tx, from := newTimeIndexer(prevTime), int64(headerSize)
	keep := 0
	// Entries are read from the end in chunks, each with the entry before it;
	// usually only the last one or two are looked at.
	var chunk []timeEntry
	chunkFrom := nTimes
	for i := nTimes - 1; i >= 0 && keep == 0; i-- {
		if i-1 < chunkFrom && (i > 0 || chunkFrom > 0) {
			chunkFrom = max(0, i-511)
			var err error
			if chunk, err = s.readTimeEntries(chunkFrom, i+1); err != nil {
				return nil, 0, err
			}
		}
		e := chunk[i-chunkFrom]
		if i > 0 && (chunk[i-1-chunkFrom].rel >= e.rel || chunk[i-1-chunkFrom].time > e.time) || e.time < prevTime {
			continue
		}
		if sealEnd && i == nTimes-1 && e.marker && e.rel == kept {
			s.times, s.lastTime = uint32(nTimes), e.time
			return nil, 0, nil
		}
		if e.rel >= kept {
			continue
		}
		pos, ok, err := s.batchStart(e.rel)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			continue
		}
		f, _, err := readFrameAt(s.store, pos, storeSize)
		if err != nil || f.off != s.base+uint64(e.rel) || !f.isRecord() ||
			e.marker != (f.flags&flagTime == 0) || !e.marker && f.time != e.time {
			continue
		}
		keep, from = i+1, pos
		tx.from, tx.rel, tx.lastTime, tx.lastEntry = e.rel+1, e.rel, e.time, pos
	}
	rec.droppedTimeEntries += nTimes - keep
	s.times = uint32(keep)
	return tx, from, nil
}

// readTimeEntries reads the time index entries [from, to).
func (s *segment) readTimeEntries(from, to int) ([]timeEntry, error) {
	b := make([]byte, (to-from)*timeEntrySize)
	if _, err := s.timeIndex.ReadAt(b, headerSize+int64(from)*timeEntrySize); err != nil {
		return nil, fmt.Errorf("logstore: read %s: %w", s.timeIndexPath, err)
	}
	es := make([]timeEntry, to-from)
	for i := range es {
		es[i] = decodeTimeEntry(b[i*timeEntrySize:])
	}
	return es, nil
}

// scanTimes feeds tx the frames of the store from from up to scanFrom, where
// the scan of the tail starts: batches whose index entries are good but whose
// time entries are missing. A frame that does not verify ends it; the time
// entries of the batches from there to scanFrom are not rebuilt (the records
// there are corrupt, and Check says so).
func (s *segment) scanTimes(tx *timeIndexer, from, scanFrom int64) {
	sc := newScanner(s.store, from, scanFrom)
	for {
		f, pos, err := sc.next()
		if err != nil {
			if err != io.EOF {
				tx.inBatch, tx.batchMax = false, 0
			}
			return
		}
		tx.add(&f, pos, tx.rel)
		if f.isRecord() {
			tx.rel++
		}
	}
}

// writeTimes writes the time index entries tx derived after the s.times
// good ones, and for a sealed segment the seal entry that ends it, truncates
// the time index after them, and sets the segment's time bounds. A nil tx
// means the time index was whole.
func (s *segment) writeTimes(tx *timeIndexer, sealed bool, records uint32, rec *recovery) error {
	if tx == nil {
		return nil
	}
	entries, n := tx.entries, tx.n
	if sealed {
		entries = appendTimeEntry(entries, timeEntry{time: tx.lastTime, rel: records, marker: true})
		n++
	}
	if n > 0 {
		if _, err := s.timeIndex.WriteAt(entries, headerSize+int64(s.times)*timeEntrySize); err != nil {
			return fmt.Errorf("logstore: write %s: %w", s.timeIndexPath, err)
		}
		rec.rebuiltTimeEntries += n
	}
	if rec.droppedTimeEntries > 0 || n > 0 {
		if err := s.timeIndex.Truncate(headerSize + int64(int(s.times)+n)*timeEntrySize); err != nil {
			return fmt.Errorf("logstore: truncate %s: %w", s.timeIndexPath, err)
		}
	}
	s.times += uint32(n)
	s.lastTime, s.lastEntryPos = tx.lastTime, tx.lastEntry
	return nil
}

// batchStart returns the store position of the record at relative offset
// rel, which the index holds, and whether it is the first record of its
// batch.
func (s *segment) batchStart(rel uint32) (int64, bool, error) {
	from := max(rel, 1) - 1
	b := make([]byte, (rel-from+1)*indexEntrySize)
	if _, err := s.index.ReadAt(b, headerSize+int64(from)*indexEntrySize); err != nil {
		return 0, false, fmt.Errorf("logstore: read %s: %w", s.indexPath, err)
	}
	pos := int64(decodeIndexEntry(b[len(b)-indexEntrySize:]).pos)
	if rel == 0 {
		return pos, true, nil
	}
	prev, _, err := readFrameAt(s.store, int64(decodeIndexEntry(b).pos), pos)
	return pos, err == nil && prev.flags&flagBatchEnd != 0, nil
}

// openIndex opens (or, when missing, torn at creation or with a damaged
// header, recreates) the index and returns how many whole entries it holds. A
// partial trailing entry is counted as dropped.
func (s *segment) openIndex(rec *recovery) (int, error) {
	var err error
	s.index, err = os.OpenFile(s.indexPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("logstore: %w", err)
	}
	fi, err := s.index.Stat()
	if err != nil {
		return 0, fmt.Errorf("logstore: %w", err)
	}
	if fi.Size() < headerSize {
		// Missing or torn at creation: rebuilt from the store by the scan.
		return 0, s.rewrite(s.index, s.indexPath, appendHeader(nil, indexMagic, s.base))
	}
	hdr := make([]byte, headerSize)
	if _, err := s.index.ReadAt(hdr, 0); err != nil {
		return 0, fmt.Errorf("logstore: read %s: %w", s.indexPath, err)
	}
	if err := checkHeader(hdr, indexMagic, s.base); err != nil {
		// The index is derived data: rebuild it from the store.
		rec.indexRecreated = true
		return 0, s.rewrite(s.index, s.indexPath, appendHeader(nil, indexMagic, s.base))
	}
	body := fi.Size() - headerSize
	if body%indexEntrySize != 0 {
		rec.droppedEntries++ // counted as a dropped (partial) entry
	}
	return int(body / indexEntrySize), nil
}

func (s *segment) rewrite(f *os.File, path string, contents []byte) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("logstore: truncate %s: %w", path, err)
	}
	if _, err := f.WriteAt(contents, 0); err != nil {
		return fmt.Errorf("logstore: write %s: %w", path, err)
	}
	return nil
}

// readFrameAt reads and verifies the frame at pos of a file of the given size,
// and returns it with the position just past it.
func readFrameAt(f *os.File, pos, size int64) (frame, int64, error) {
	var hdr [frameHeaderSize]byte
	if size-pos < frameHeaderSize {
		return frame{}, 0, errShortFrame
	}
	if _, err := f.ReadAt(hdr[:], pos); err != nil {
		return frame{}, 0, err
	}
	n, err := frameLen(hdr[:])
	if err != nil {
		return frame{}, 0, err
	}
	if int64(n) > size-pos {
		return frame{}, 0, errShortFrame
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, pos); err != nil {
		return frame{}, 0, err
	}
	fr, _, err := decodeFrame(b)
	return fr, pos + int64(n), err
}

// scanner reads the frames of a store file in order, in large chunks.
type scanner struct {
	f    *os.File
	pos  int64 // file position of the next frame
	size int64
	buf  []byte
	bpos int64 // file position of buf[0]
}

const scanChunk = 1 << 20

func newScanner(f *os.File, pos, size int64) *scanner {
	return &scanner{f: f, pos: pos, size: size, bpos: pos}
}

// next returns the next verified frame and its position; io.EOF at a clean end,
// errShortFrame for a torn tail, or an error wrapping errBadFrame.
func (sc *scanner) next() (frame, int64, error) {
	if sc.pos >= sc.size {
		return frame{}, 0, io.EOF
	}
	off := int(sc.pos - sc.bpos)
	f, n, err := decodeFrame(sc.buf[off:])
	if err == errShortFrame {
		// Refill from pos, large enough for the whole frame if its length is known.
		want := int64(scanChunk)
		if l, lerr := frameLen(sc.buf[off:]); lerr == nil && int64(l) > want {
			want = int64(l)
		}
		want = min(want, sc.size-sc.pos)
		if int64(cap(sc.buf)) < want {
			sc.buf = make([]byte, want)
		}
		sc.buf = sc.buf[:want]
		if _, err := sc.f.ReadAt(sc.buf, sc.pos); err != nil {
			return frame{}, 0, err
		}
		sc.bpos, off = sc.pos, 0
		f, n, err = decodeFrame(sc.buf)
	}
	if err != nil {
		return frame{}, 0, err
	}
	pos := sc.pos
	sc.pos += int64(n)
	return f, pos, nil
}
