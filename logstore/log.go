package logstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Log is a segmented, append-only log of opaque records at dense offsets.
//
// Ownership: mu serializes the writer (Append, Sync's bookkeeping, roll,
// retention, Replace, Close) and owns every field below it. Readers take no lock:
// they load the current state, an immutable value swapped by the writer after
// each append, and read files through reference-counted segments.
type Log struct {
	dir  string
	conf Config
	log  *slog.Logger
	now  func() time.Time
	lock *os.File // holds the flock on the data directory
	// writeAt is the file seam every append's store and index writes go
	// through: (*os.File).WriteAt, or a test's fault.
	writeAt func(f *os.File, b []byte, off int64) (int, error)

	cur atomic.Pointer[state]
	// dropped counts the segments retention has dropped since Open.
	dropped atomic.Uint64

	// notifyMu guards notify, a channel closed by the next publish; it is made
	// only when a reader waits, so appends without waiters allocate no channel.
	notifyMu sync.Mutex
	notify   chan struct{}

	syncMu sync.Mutex // serializes Sync calls

	mu   sync.Mutex
	meta []byte // metadata of the last batch (sticky)
	err  error  // first write or sync failure: the log refuses appends after it
	// failing says a write or sync failed since the last append that
	// succeeded, and recoveries counts the Recovers since: an owner that
	// retries a full disk every few seconds is told of it once, at error
	// level, and of the retries at debug level.
	failing    bool
	recoveries int
	closed     bool
	wbuf       []byte // encoded store frames of the append in progress
	ibuf       []byte // encoded index entries of the append in progress
	tbuf       []byte // encoded time index entry of the append in progress
	// writtenBack is the position of the active store up to which write-back
	// was started.
	writtenBack int64
	noReserve   bool // the file system cannot reserve blocks (reserveLocked)
}

// state is what readers see: immutable once published.
type state struct {
	segs   []*segment // oldest first; the last is the active segment
	next   uint64     // offset of the next record
	active int64      // store bytes of the active segment that readers may read
	times  uint32     // time index entries of the active segment that readers may read
	// lastTime is the latest time stamped on a record (0: none), the active
	// segment's lastTime.
	lastTime int64
	closed   bool
}

// newState returns the state of segs, whose active segment act holds the
// records up to next.
func newState(segs []*segment, next uint64, act *segment) *state {
	return &state{segs: segs, next: next, active: act.size, times: act.times, lastTime: act.lastTime}
}

func (st *state) lowest() uint64 { return st.segs[0].base }

// Open opens the log in dir, creating dir and an empty log if needed, and
// recovers the active segment after a crash. Only one process may have a data
// directory open: a second Open fails with ErrLocked.
func Open(dir string, c Config) (*Log, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("logstore: data directory %s is not a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("logstore: create data directory %s: %w", dir, err)
	}
	l := &Log{dir: dir, conf: c, log: c.Logger.With("log_dir", dir), now: time.Now, writeAt: (*os.File).WriteAt}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l.lock = lock
	st, err := l.load(slog.LevelWarn)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.cur.Store(st)
	return l, nil
}

func lockDir(dir string) (*os.File, error) { return lockFile(dir, os.O_RDWR|os.O_CREATE) }

// lockFile opens dir's LOCK file with flag and takes its flock without
// waiting: ErrLocked when another process holds it.
func lockFile(dir string, flag int) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("logstore: open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("logstore: lock %s: %w", path, err)
	}
	return f, nil
}

// load opens every segment file in l.dir and returns the state they make;
// l.meta is set from the last batch. It creates an empty segment in an empty
// directory. Repairs are logged at level.
func (l *Log) load(level slog.Level) (*state, error) {
	names, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("logstore: read data directory: %w", err)
	}
	stores, indexes := map[uint64]bool{}, map[string]uint64{}
	for _, e := range names {
		base, ext, ok := parseSegmentName(e.Name())
		switch {
		case !ok:
		case ext == storeExt:
			stores[base] = true
		default:
			indexes[e.Name()] = base
		}
	}
	// An index without its store is what a crash leaves while dropping a segment
	// (the store is removed first).
	for name, base := range indexes {
		if !stores[base] {
			path := filepath.Join(l.dir, name)
			l.log.Warn("removing index file without a store file", "file", path)
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("logstore: %w", err)
			}
		}
	}
	bases := make([]uint64, 0, len(stores))
	for base := range stores {
		bases = append(bases, base)
	}
	slices.Sort(bases)

	st := &state{}
	fail := func(err error) (*state, error) {
		for _, s := range st.segs {
			s.closeFiles()
		}
		return nil, err
	}
	var rec recovery
	var lastTime int64
	for i, base := range bases {
		sealed := i < len(bases)-1
		s, r, err := openSegment(l.dir, base, sealed, lastTime)
		if err != nil {
			return fail(err)
		}
		st.segs = append(st.segs, s)
		if i > 0 {
			prev := st.segs[i-1]
			if want := prev.base + uint64(prev.records); base != want {
				return fail(&CorruptError{Path: s.storePath, Reason: fmt.Sprintf("segment starts at offset %d, but %s ends at %d", base, prev.storePath, want)})
			}
			// The latest time carries over from segment to segment, also
			// into one that lost its first frame to a crash at its creation.
			s.lastTime = max(s.lastTime, prev.lastTime)
		}
		lastTime = s.lastTime
		if r.repaired() {
			l.log.Log(context.Background(), level, "recovered segment", "file", s.storePath, "dropped_bytes", r.droppedBytes,
				"dropped_index_entries", r.droppedEntries, "rebuilt_index_entries", r.rebuiltEntries, "recreated", r.recreated, "index_rebuilt", r.indexRecreated,
				"dropped_time_index_entries", r.droppedTimeEntries, "rebuilt_time_index_entries", r.rebuiltTimeEntries, "time_index_rebuilt", r.timeIndexRecreated)
		}
		// Each batch end carries the metadata in force, so the last one seen is
		// the log's; an active segment without one inherits the sealed segment's.
		if r.hasMeta {
			rec.meta, rec.hasMeta = r.meta, true
		}
	}
	if len(st.segs) == 0 {
		s, err := createSegment(l.dir, l.conf.InitialOffset, nil, 0)
		if err != nil {
			return nil, err
		}
		st.segs = append(st.segs, s)
	}
	act := st.segs[len(st.segs)-1]
	l.meta = rec.meta
	return newState(st.segs, act.base+uint64(act.records), act), nil
}

// Dir returns the data directory.
func (l *Log) Dir() string { return l.dir }

// LowestOffset returns the offset of the oldest retained record (equal to
// NextOffset when the log holds none).
func (l *Log) LowestOffset() uint64 { return l.cur.Load().lowest() }

// NextOffset returns the offset the next appended record will get: the
// high-water mark below which every offset at or above LowestOffset is readable.
func (l *Log) NextOffset() uint64 { return l.cur.Load().next }

// Stats is a Log's size and position at one moment.
type Stats struct {
	// Segments is the number of segments, the active one included.
	Segments int
	// Bytes is the size of the segments' store and index files.
	Bytes int64
	// LowestOffset and NextOffset bound the records held: [Lowest, Next).
	LowestOffset, NextOffset uint64
	// DroppedSegments counts the segments retention dropped since Open.
	DroppedSegments uint64
}

// Stats returns the log's size and position. Like a read, it takes no lock.
func (l *Log) Stats() Stats {
	st := l.cur.Load()
	s := Stats{Segments: len(st.segs), LowestOffset: st.lowest(), NextOffset: st.next, DroppedSegments: l.dropped.Load()}
	last := len(st.segs) - 1
	for _, seg := range st.segs[:last] {
		// A sealed segment's size and records no longer change.
		s.Bytes += segmentBytes(seg)
	}
	act := st.segs[last]
	s.Bytes += st.active + headerSize + int64(st.next-act.base)*indexEntrySize + headerSize + int64(st.times)*timeEntrySize
	return s
}

// Meta returns the metadata stored by the last AppendWithMeta (nil if none),
// as recovered with the records after a restart.
func (l *Log) Meta() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.meta)
}

// Append appends records in order as one batch, all or nothing, and returns the
// offset of the first. The records are readable when it returns and survive a
// crash of the process; Sync makes them survive a crash of the machine.
// With no records it appends nothing and returns NextOffset.
func (l *Log) Append(recs ...[]byte) (first uint64, err error) {
	return l.AppendWithMeta(nil, recs...)
}

// AppendWithMeta is Append that also replaces the log's metadata with meta
// (when non-nil) atomically with the records: after a crash, Meta returns the
// value stored with the last batch that survived. With no records it stores
// only the metadata. An empty meta clears it.
func (l *Log) AppendWithMeta(meta []byte, recs ...[]byte) (first uint64, err error) {
	return l.append(meta, 0, recs)
}

// AppendTimed is AppendWithMeta with every record of the batch stamped with
// ts, a time in unix nanoseconds (such as the time a leader accepted the
// batch); ReadRecords returns it and OffsetForTime finds records by it.
// Times never go back in offset order: a ts below the latest time stamped
// on the log is raised to it. ts 0 means no time, exactly as AppendWithMeta;
// a negative ts is refused. With no records, ts is not stored.
func (l *Log) AppendTimed(meta []byte, ts int64, recs ...[]byte) (first uint64, err error) {
	if ts < 0 {
		return 0, fmt.Errorf("logstore: time %d is negative", ts)
	}
	return l.append(meta, ts, recs)
}

// append is AppendTimed; ts 0 appends without time.
func (l *Log) append(meta []byte, ts int64, recs [][]byte) (first uint64, err error) {
	if len(meta) > MaxMetaBytes {
		return 0, fmt.Errorf("logstore: metadata is %d bytes, the limit is %d", len(meta), MaxMetaBytes)
	}
	size := 0
	for i, r := range recs {
		if len(r) > l.conf.MaxRecordBytes {
			return 0, &RecordTooLargeError{Index: i, Size: len(r), Max: l.conf.MaxRecordBytes}
		}
		size += frameSize(len(r), nil)
	}
	if len(recs) == 0 {
		ts = 0
	}
	if ts != 0 {
		size += len(recs) * timeSize
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.cur.Load()
	switch {
	case l.closed:
		return 0, ErrClosed
	case l.err != nil:
		return 0, l.err
	case len(recs) == 0 && meta == nil:
		return st.next, nil
	}
	// The new metadata takes effect with the batch that carries it: a refused
	// or failed batch leaves it unchanged, and a roll below starts the new
	// segment with the value the earlier batches carry.
	m := l.meta
	if meta != nil {
		m = nil
		if len(meta) > 0 {
			m = slices.Clone(meta)
		}
	}
	size += metaOverhead(m)
	if len(recs) == 0 {
		size += frameSize(0, nil)
	}
	if int64(size) > l.conf.MaxStoreBytes-headerSize {
		return 0, fmt.Errorf("%w: %d bytes, segments hold %d", ErrBatchTooLarge, size, l.conf.MaxStoreBytes)
	}
	act := st.segs[len(st.segs)-1]
	if act.records > 0 && act.size+int64(size) > l.conf.MaxStoreBytes {
		if st, err = l.rollLocked(st); err != nil {
			return 0, err
		}
		act = st.segs[len(st.segs)-1]
	}

	// Encode every frame and index entry, then write each file once.
	first = st.next
	l.wbuf, l.ibuf, l.tbuf = l.wbuf[:0], l.ibuf[:0], l.tbuf[:0]
	pos := act.size
	lastTime := act.lastTime
	if ts != 0 {
		ts = max(ts, lastTime)
		lastTime = ts
	}
	for i, r := range recs {
		var flags byte
		var fm []byte
		if i == len(recs)-1 {
			flags, fm = flagBatchEnd, m
		}
		l.ibuf = appendIndexEntry(l.ibuf, act.records+uint32(i), uint32(pos+int64(len(l.wbuf))))
		l.wbuf = appendFrame(l.wbuf, first+uint64(i), flags, ts, fm, r)
	}
	if len(recs) == 0 {
		l.wbuf = appendFrame(l.wbuf, first, flagBatchEnd|flagNoRecord, 0, m, nil)
	} else if e, ok := timeEntryFor(ts, lastTime, act.records, pos, act.lastEntryPos); ok {
		l.tbuf = appendTimeEntry(l.tbuf, e)
	}
	l.reserveLocked(act, pos+int64(len(l.wbuf)))
	if _, err := l.writeAt(act.store, l.wbuf, pos); err != nil {
		return 0, l.failLocked(fmt.Errorf("logstore: write %s: %w", act.storePath, err))
	}
	if len(l.ibuf) > 0 {
		if _, err := l.writeAt(act.index, l.ibuf, headerSize+int64(act.records)*indexEntrySize); err != nil {
			return 0, l.failLocked(fmt.Errorf("logstore: write %s: %w", act.indexPath, err))
		}
	}
	if len(l.tbuf) > 0 {
		if _, err := l.writeAt(act.timeIndex, l.tbuf, headerSize+int64(act.times)*timeEntrySize); err != nil {
			return 0, l.failLocked(fmt.Errorf("logstore: write %s: %w", act.timeIndexPath, err))
		}
		act.times++
		act.lastEntryPos = pos
	}
	act.lastTime = lastTime
	l.meta = m
	if l.failing {
		l.log.Info("appends work again", "recoveries", l.recoveries, "first_offset", first)
		l.failing, l.recoveries = false, 0
	}
	act.size += int64(len(l.wbuf))
	act.records += uint32(len(recs))
	l.startWritebackLocked(act)
	act.modTime = l.now()
	l.publishLocked(newState(st.segs, first+uint64(len(recs)), act))
	return first, nil
}

func metaOverhead(meta []byte) int {
	if meta == nil {
		return 0
	}
	return metaLenSize + len(meta)
}

// writebackChunk is how many written bytes of the active store accumulate
// before their write-back to disk is started.
const writebackChunk = 1 << 20

// startWritebackLocked asks the kernel to start writing the active store's new
// bytes to disk without waiting (sync_file_range), so that dirty pages do not
// pile up and the fsync that seals a segment, or a Sync, has little left to do.
// It is only a hint: durability still comes from fsync.
func (l *Log) startWritebackLocked(act *segment) {
	if l.writtenBack > act.size {
		l.writtenBack = 0 // a new segment
	}
	if act.size-l.writtenBack < writebackChunk {
		return
	}
	_ = unix.SyncFileRange(int(act.store.Fd()), l.writtenBack, act.size-l.writtenBack, unix.SYNC_FILE_RANGE_WRITE)
	l.writtenBack = act.size
}

// reserveChunk is how far ahead the active store's blocks are reserved.
const reserveChunk = 4 << 20

// reserveLocked reserves the blocks of the active store up to at least end,
// reserveChunk at a time and no further than the segment's limit, without
// changing the file's size (fallocate, FALLOC_FL_KEEP_SIZE), so that readers
// and recovery see the same file as before. A write that extends a file
// makes the file system allocate blocks as it goes (ext4: 256 MiB in 96 KiB
// writes took 0.06–0.64 s of CPU extending the file, 0.04–0.12 s into
// reserved blocks). It is only a hint: when it fails (a file system without fallocate, a full disk) the
// write allocates, or fails, as before. releaseLocked gives back what the
// segment did not use.
func (l *Log) reserveLocked(act *segment, end int64) {
	if end <= act.reserved || l.noReserve {
		return
	}
	from := max(act.reserved, act.size)
	to := max(end, min(from+reserveChunk, l.conf.MaxStoreBytes))
	switch err := unix.Fallocate(int(act.store.Fd()), unix.FALLOC_FL_KEEP_SIZE, from, to-from); {
	case err == nil:
		act.reserved = to
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
		l.noReserve = true
	}
}

// releaseLocked frees the blocks reserved past the end of a segment that is
// being sealed or closed: truncating to the size it holds, which is its
// size already, drops them.
func (l *Log) releaseLocked(s *segment) {
	if s.reserved > s.size {
		_ = s.store.Truncate(s.size) // only space is at stake
		s.reserved = 0
	}
}

// failLocked makes err the log's sticky error and returns it.
func (l *Log) failLocked(err error) error {
	if l.err == nil {
		l.err = err
		level := slog.LevelError
		if l.failing {
			level = slog.LevelDebug // failed again after a Recover: reported before
		}
		l.failing = true
		l.log.Log(context.Background(), level, "log refuses further appends until recovered", "err", err)
	}
	return l.err
}

// Err returns the write or sync error that makes the log refuse appends, or
// nil while appends work. Recover clears it.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Recover brings a log that refuses appends after a failed write or sync
// (Err is not nil) back into service, the way Open would after a crash: a
// failed write leaves the tail of the active segment unknown, so every
// segment is opened again, a torn tail is truncated to the last whole batch,
// missing index entries are rebuilt, and what was dropped is logged. A batch
// whose write failed may have reached the files whole, in which case it is
// kept: Meta and NextOffset after Recover say which. On success the error is
// cleared and appends work again; on failure (the disk is still full, say)
// the log is as it was and Recover can be called again later.
//
// Readers go on reading throughout: they hold the segments of the state they
// loaded, and see the recovered state once it is published. Recover on a log
// with no error does nothing.
func (l *Log) Recover() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return ErrClosed
	case l.err == nil:
		return nil
	}
	level := slog.LevelWarn
	if l.recoveries > 0 {
		level = slog.LevelDebug // the same failure again: reported before
	}
	l.recoveries++
	old := l.cur.Load()
	st, err := l.load(level) // sets l.meta only when it succeeds
	if err != nil {
		return fmt.Errorf("logstore: recover after %v: %w", l.err, err)
	}
	l.publishLocked(st)
	for _, s := range old.segs {
		s.release()
	}
	// A next offset beyond the one before is a failed batch that had reached
	// the files whole.
	l.log.Log(context.Background(), level, "log recovered from a failed write", "err", l.err,
		"next_offset", st.next, "next_offset_before", old.next)
	l.err, l.writtenBack = nil, 0
	return nil
}

// publishLocked makes st the state readers see and wakes waiters.
func (l *Log) publishLocked(st *state) {
	l.cur.Store(st)
	l.notifyMu.Lock()
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
	l.notifyMu.Unlock()
}

// rollLocked seals the active segment, ending its time index with a seal
// entry and making it durable, and starts a new one.
func (l *Log) rollLocked(st *state) (*state, error) {
	act := st.segs[len(st.segs)-1]
	seal := appendTimeEntry(nil, timeEntry{time: act.lastTime, rel: act.records, marker: true})
	if _, err := l.writeAt(act.timeIndex, seal, headerSize+int64(act.times)*timeEntrySize); err != nil {
		return nil, l.failLocked(fmt.Errorf("logstore: write %s: %w", act.timeIndexPath, err))
	}
	act.times++
	l.releaseLocked(act)
	if err := l.syncSegment(act); err != nil {
		return nil, l.failLocked(err)
	}
	s, err := createSegment(l.dir, st.next, l.meta, act.lastTime)
	if err != nil {
		return nil, l.failLocked(err)
	}
	s.modTime = l.now()
	segs := append(slices.Clip(st.segs), s)
	nst := newState(segs, st.next, s)
	l.publishLocked(nst)
	return l.retainLocked(nst)
}

// syncSegment is s.sync reported to Config.OnSync.
func (l *Log) syncSegment(s *segment) error {
	if l.conf.OnSync == nil {
		return s.sync()
	}
	start := time.Now()
	err := s.sync()
	l.conf.OnSync(time.Since(start), err)
	return err
}

// Retain drops the oldest sealed segments that Config.RetainBytes and
// Config.RetainAge no longer keep. It runs on its own whenever a segment is
// sealed; call it to apply the age limit to a log that is not being written.
func (l *Log) Retain() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	_, err := l.retainLocked(l.cur.Load())
	return err
}

func (l *Log) retainLocked(st *state) (*state, error) {
	if l.conf.RetainBytes == 0 && l.conf.RetainAge == 0 {
		return st, nil
	}
	var total int64
	for _, s := range st.segs {
		total += segmentBytes(s)
	}
	now := l.now()
	drop := 0
	for _, s := range st.segs[:len(st.segs)-1] {
		tooBig := l.conf.RetainBytes > 0 && total > l.conf.RetainBytes
		tooOld := l.conf.RetainAge > 0 && now.Sub(s.modTime) > l.conf.RetainAge
		if !tooBig && !tooOld {
			break
		}
		total -= segmentBytes(s)
		drop++
	}
	if drop == 0 {
		return st, nil
	}
	dropped := st.segs[:drop]
	nst := &state{segs: slices.Clone(st.segs[drop:]), next: st.next, active: st.active, times: st.times, lastTime: st.lastTime}
	l.publishLocked(nst)
	l.dropped.Add(uint64(len(dropped)))
	for _, s := range dropped {
		l.log.Info("retention dropped segment", "file", s.storePath,
			"first_offset", s.base, "records", s.records, "bytes", segmentBytes(s))
	}
	err := l.unlinkSegments(dropped)
	for _, s := range dropped {
		s.release()
	}
	return nst, err
}

func segmentBytes(s *segment) int64 {
	return s.size + headerSize + int64(s.records)*indexEntrySize + headerSize + int64(s.times)*timeEntrySize
}

// unlinkSegments removes the files of segments leaving the log. Their open
// files stay readable until the caller lets go of the Log's references
// (release) and every reader still holding one has finished.
func (l *Log) unlinkSegments(segs []*segment) error {
	var errs []error
	for _, s := range segs {
		// The store goes first: an index without a store is removed on Open.
		errs = append(errs, os.Remove(s.storePath), os.Remove(s.indexPath), os.Remove(s.timeIndexPath))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("logstore: remove segment: %w", err)
	}
	return syncDir(l.dir)
}

// Sync makes every record appended before the call durable (fsync).
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.err != nil {
		l.mu.Unlock()
		return l.err
	}
	st := l.cur.Load()
	act := st.segs[len(st.segs)-1]
	act.acquire()
	l.mu.Unlock()
	// Sealed segments were made durable when sealed; the fsync of the active one
	// runs outside the lock so appends go on meanwhile.
	err := l.syncSegment(act)
	act.release()
	if err != nil {
		l.mu.Lock()
		err = l.failLocked(err)
		l.mu.Unlock()
	}
	return err
}

// Read returns the record at off. The slice is the caller's.
func (l *Log) Read(off uint64) ([]byte, error) {
	recs, err := l.read(off, 0, 1)
	if err != nil {
		return nil, err
	}
	return recs[0].Value, nil
}

// ReadBatch returns consecutive records from off on: as many as fit in maxBytes
// of store bytes (at least one), up to the end of off's segment and of the log.
// The records share one buffer and are the caller's. The next read starts at
// off+len(records).
func (l *Log) ReadBatch(off uint64, maxBytes int) ([][]byte, error) {
	recs, err := l.read(off, maxBytes, -1)
	if err != nil {
		return nil, err
	}
	vals := make([][]byte, len(recs))
	for i, r := range recs {
		vals[i] = r.Value
	}
	return vals, nil
}

// Record is a record with its offset and time.
type Record struct {
	Offset uint64
	// Time is the time the record was appended with (AppendTimed), in unix
	// nanoseconds, or 0 for a record appended without one.
	Time  int64
	Value []byte
}

// ReadRecords is ReadBatch that also returns each record's offset and time.
func (l *Log) ReadRecords(off uint64, maxBytes int) ([]Record, error) {
	return l.read(off, maxBytes, -1)
}

// read reads records from off on, at most maxRecords (-1: no limit) in about
// maxBytes of store.
func (l *Log) read(off uint64, maxBytes, maxRecords int) ([]Record, error) {
	for {
		st := l.cur.Load()
		if st.closed {
			return nil, ErrClosed
		}
		if off < st.lowest() || off >= st.next {
			return nil, &OutOfRangeError{Off: off, Lowest: st.lowest(), Next: st.next}
		}
		i := sort.Search(len(st.segs), func(i int) bool { return st.segs[i].base > off }) - 1
		s := st.segs[i]
		if !s.acquire() {
			continue // dropped by retention or replaced since st was loaded
		}
		// A sealed segment's size is fixed; the active one's is the state's.
		var limit int64
		var count uint32
		if i == len(st.segs)-1 {
			limit, count = st.active, uint32(st.next-s.base)
		} else {
			limit, count = s.size, s.records
		}
		recs, err := readSegment(s, uint32(off-s.base), count, limit, maxBytes, maxRecords)
		s.release()
		return recs, err
	}
}

// readSegment reads records from relative offset rel of s, which holds count
// records in limit store bytes.
func readSegment(s *segment, rel, count uint32, limit int64, maxBytes, maxRecords int) ([]Record, error) {
	// The entries of rel and rel+1 bound the first record's frame.
	n := 1
	if rel+1 < count {
		n = 2
	}
	var ib [2 * indexEntrySize]byte
	ipos := headerSize + int64(rel)*indexEntrySize
	if _, err := s.index.ReadAt(ib[:n*indexEntrySize], ipos); err != nil {
		return nil, fmt.Errorf("logstore: read %s: %w", s.indexPath, err)
	}
	e := decodeIndexEntry(ib[:])
	end := limit
	if n == 2 {
		end = int64(decodeIndexEntry(ib[indexEntrySize:]).pos)
	}
	if e.rel != rel || int64(e.pos) < headerSize || int64(e.pos) >= end || end > limit {
		return nil, &CorruptError{Path: s.indexPath, Pos: ipos, Reason: fmt.Sprintf("index entry for offset %d is %+v", s.base+uint64(rel), e)}
	}
	pos := int64(e.pos)
	want := end - pos
	if maxRecords != 1 {
		want = min(limit-pos, max(want, int64(maxBytes)))
	}
	buf := make([]byte, want)
	if _, err := s.store.ReadAt(buf, pos); err != nil && !(err == io.EOF && pos+want <= limit) {
		return nil, fmt.Errorf("logstore: read %s: %w", s.storePath, err)
	}
	// Room for as many records as the first one's size says fit in buf
	// (exactly that many when records are the same size), so that recs
	// grows rarely; at most 8192, so that a small first record followed by
	// large ones does not make a large slice for a few records.
	n = int(min(want/(end-pos), int64(count-rel), 8192))
	if maxRecords >= 0 {
		n = min(n, maxRecords)
	}
	recs := make([]Record, 0, n)
	off := s.base + uint64(rel)
	for p := 0; p < len(buf) && (maxRecords < 0 || len(recs) < maxRecords); {
		f, fn, err := decodeFrame(buf[p:])
		if err == errShortFrame && len(recs) > 0 {
			break // the byte budget ends inside this frame
		}
		if err != nil || f.off != off {
			reason := fmt.Sprintf("frame holds offset %d, want %d", f.off, off)
			if err != nil {
				reason = err.Error()
			}
			if p == 0 {
				// The first frame's bounds come from the index: either file
				// may be the damaged one, so the error names both.
				reason += fmt.Sprintf(" (frame bounds from %s entries at byte %d)", s.indexPath, ipos)
			}
			return nil, &CorruptError{Path: s.storePath, Pos: pos + int64(p), Reason: reason}
		}
		if f.isRecord() {
			recs = append(recs, Record{Offset: off, Time: f.time, Value: f.payload[:len(f.payload):len(f.payload)]})
			off++
		}
		p += fn
	}
	if len(recs) == 0 {
		return nil, &CorruptError{Path: s.storePath, Pos: pos, Reason: fmt.Sprintf("no record frame for offset %d (frame bounds from %s entries at byte %d)", off, s.indexPath, ipos)}
	}
	return recs, nil
}

// Wait blocks until off is readable (off < NextOffset), ctx is done, or the
// log is closed. It waits on a notification from the writer, never by polling.
func (l *Log) Wait(ctx context.Context, off uint64) error {
	for {
		l.notifyMu.Lock()
		if l.notify == nil {
			l.notify = make(chan struct{})
		}
		ch := l.notify
		l.notifyMu.Unlock()
		// Checked after taking the channel, so a publish in between closes it.
		st := l.cur.Load()
		switch {
		case st.closed:
			return ErrClosed
		case off < st.next:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close syncs and closes the log. It is safe to call more than once; readers
// and waiters get ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	st := l.cur.Load()
	var errs []error
	if l.err == nil {
		act := st.segs[len(st.segs)-1]
		l.releaseLocked(act)
		errs = append(errs, l.syncSegment(act))
	}
	closed := *st
	closed.closed = true
	l.publishLocked(&closed)
	for _, s := range st.segs {
		s.release()
	}
	errs = append(errs, l.lock.Close()) // closing the file releases the flock
	return errors.Join(errs...)
}
