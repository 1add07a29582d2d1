package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CheckOptions says what Check may change. The zero value only reads.
type CheckOptions struct {
	// Repair fixes what Open would fix, and only that: a torn tail of the
	// active segment is truncated to its last whole batch, index and time
	// index files that do not match their store are rebuilt from it, and
	// index files without a store are removed. Corrupt data is left alone.
	Repair bool
	// TruncateCorrupt, with Repair, also cuts the first segment holding
	// corrupt data (a sealed segment, or the active one before its tail) to
	// its last whole batch before the corrupt data, and moves every later
	// segment aside into a directory named fsck-<unix ms> inside the log
	// directory, where the cut segment's whole store file is kept too: the
	// log opens again as the prefix that verifies, and nothing is deleted.
	TruncateCorrupt bool
}

// Segment states in a Report.
const (
	// SegmentOK: every frame and index entry verifies.
	SegmentOK = "ok"
	// SegmentIndex: the store verifies, its index or time index does not
	// match it (Repair, and Open, rebuild them from the store).
	SegmentIndex = "index"
	// SegmentTornTail: the active segment ends in a partial batch or bytes
	// that are not a frame, with no whole batch after them: what a crash
	// leaves. Repair (and Open) truncate it.
	SegmentTornTail = "torn tail"
	// SegmentCorrupt: data that fails verification with good data after it,
	// a damaged store header, or a gap in the offsets. Open refuses a log with
	// a corrupt sealed segment; only TruncateCorrupt changes it.
	SegmentCorrupt = "corrupt"
)

// Report is what Check found in a log directory, and what it repaired.
type Report struct {
	Dir      string
	Segments []SegmentReport // oldest first; the last is the active segment
	// LowestOffset and NextOffset bound the records that verify in order
	// from the oldest, up to the first corrupt segment, after any repair
	// (segments moved aside no longer count).
	LowestOffset, NextOffset uint64
	// Meta is the metadata carried by the last whole batch (nil if none).
	Meta []byte
	// OrphanIndexes are index and time index files without a store file
	// (base names).
	OrphanIndexes []string
	// OrphansRemoved says Repair removed them.
	OrphansRemoved bool
	// MovedTo is the directory TruncateCorrupt moved segments into, if any.
	MovedTo string
}

// SegmentReport is one segment as Check found it.
type SegmentReport struct {
	Base      uint64
	StoreFile string // base name of the store file
	Sealed    bool
	// Records is how many records the segment's whole, verified batches
	// hold; GoodBytes is the store bytes up to the last of them and Bytes
	// the store file's size.
	Records   uint64
	Bytes     int64
	GoodBytes int64
	// IndexEntries and TimeIndexEntries are how many whole entries the index
	// and time index files hold.
	IndexEntries     int64
	TimeIndexEntries int64
	Status           string // SegmentOK, SegmentIndex, SegmentTornTail or SegmentCorrupt
	// Problem says what is wrong with the store, and BadFile and BadPos
	// where the first bad byte is (empty and 0 when the store verifies).
	Problem string
	BadFile string
	BadPos  int64
	// IndexProblem says how the index, or the time index, differs from the
	// store ("" if neither does).
	IndexProblem string
	// Repair says what Repair did to the segment ("" if nothing), and
	// DroppedBytes how many store bytes it cut off or moved aside.
	Repair       string
	DroppedBytes int64

	positions []uint32 // store position of each verified record
	times     []byte   // the time index entries of the verified batches
	lastTime  int64    // the latest time up to the segment's end
	meta      []byte
	hasMeta   bool
	header    bool // the store header verifies
}

// Problems reports whether anything was found wrong, repaired or not.
func (r *Report) Problems() bool {
	return len(r.OrphanIndexes) > 0 || slices.ContainsFunc(r.Segments, func(s SegmentReport) bool { return s.Status != SegmentOK })
}

// Corrupt reports whether corrupt data was found and left as it was.
func (r *Report) Corrupt() bool {
	return slices.ContainsFunc(r.Segments, func(s SegmentReport) bool { return s.Status == SegmentCorrupt && s.Repair == "" })
}

// Repairable reports whether problems that Repair fixes were found and left
// as they were.
func (r *Report) Repairable() bool {
	if len(r.OrphanIndexes) > 0 && !r.OrphansRemoved {
		return true
	}
	return slices.ContainsFunc(r.Segments, func(s SegmentReport) bool {
		return (s.Status == SegmentIndex || s.Status == SegmentTornTail) && s.Repair == ""
	})
}

// Repaired reports whether Repair changed anything.
func (r *Report) Repaired() bool {
	return r.OrphansRemoved || slices.ContainsFunc(r.Segments, func(s SegmentReport) bool { return s.Repair != "" })
}

// Check verifies every frame's checksum and every index entry of the log in
// dir without opening it as a Log, and reports per segment what it found:
// records, bytes, and the first bad position and why. With o.Repair it fixes
// what o allows (see CheckOptions) and the report says what it did.
//
// Check holds the directory's LOCK while it runs, so it fails with ErrLocked
// on a log a process has open. Without Repair it writes nothing (a directory
// without a LOCK file is read without one). The error is for a check that
// could not run; what is wrong with the data is in the Report.
func Check(dir string, o CheckOptions) (*Report, error) {
	if o.TruncateCorrupt && !o.Repair {
		return nil, errors.New("logstore: check: TruncateCorrupt needs Repair")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("logstore: check: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("logstore: check: %s is not a directory", dir)
	}
	lock, err := checkLock(dir, o.Repair)
	if err != nil {
		return nil, err
	}
	if lock != nil {
		defer lock.Close()
	}

	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("logstore: check: %w", err)
	}
	stores, indexes := map[uint64]bool{}, map[string]uint64{}
	for _, e := range names {
		base, ext, ok := parseSegmentName(e.Name())
		switch {
		case !ok || !e.Type().IsRegular():
		case ext == storeExt:
			stores[base] = true
		default:
			indexes[e.Name()] = base
		}
	}
	r := &Report{Dir: dir}
	var bases []uint64
	for base := range stores {
		bases = append(bases, base)
	}
	slices.Sort(bases)
	for name, base := range indexes {
		if !stores[base] {
			r.OrphanIndexes = append(r.OrphanIndexes, name)
		}
	}
	slices.Sort(r.OrphanIndexes)

	var lastTime int64
	for i, base := range bases {
		s, err := checkSegment(dir, base, i < len(bases)-1, lastTime)
		if err != nil {
			return nil, err
		}
		lastTime = max(lastTime, s.lastTime)
		if i > 0 {
			prev := r.Segments[i-1]
			// A corrupt segment's record count is not known: no gap is
			// claimed behind it.
			if want := prev.Base + prev.Records; prev.Status != SegmentCorrupt && base != want {
				s.Status, s.BadFile, s.BadPos = SegmentCorrupt, s.StoreFile, 0
				s.Problem = fmt.Sprintf("segment starts at offset %d, but %s ends at offset %d", base, prev.StoreFile, want)
				s.header = false // moved aside whole by TruncateCorrupt
			}
		}
		r.Segments = append(r.Segments, s)
	}
	if o.Repair {
		if err := r.repair(o); err != nil {
			return r, err
		}
	}
	r.summarize()
	return r, nil
}

// checkLock takes the directory's LOCK file as Open does. Without create, a
// missing LOCK file is not made: no process has the log open then.
func checkLock(dir string, create bool) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	if !create {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return lockFile(dir, os.O_RDONLY)
	}
	return lockDir(dir)
}

// summarize sets the report's offsets and metadata from its segments.
func (r *Report) summarize() {
	r.LowestOffset, r.NextOffset, r.Meta = 0, 0, nil
	var live []SegmentReport
	for _, s := range r.Segments {
		if s.movedAside() {
			break
		}
		live = append(live, s)
		if s.Status == SegmentCorrupt && s.Repair == "" {
			break // nothing after it is readable in order
		}
	}
	if len(live) == 0 {
		return
	}
	r.LowestOffset = live[0].Base
	last := live[len(live)-1]
	r.NextOffset = last.Base + last.Records
	for _, s := range live {
		if s.hasMeta {
			r.Meta = s.meta
		}
	}
}

func (s *SegmentReport) movedAside() bool { return strings.HasPrefix(s.Repair, movedPrefix) }

const movedPrefix = "moved to "

// checkSegment scans the store of the segment at base from its header to its
// end, verifying every frame, then compares the indexes with it. prevTime is
// the latest time of the segments before it.
func checkSegment(dir string, base uint64, sealed bool, prevTime int64) (SegmentReport, error) {
	s := SegmentReport{Base: base, StoreFile: segmentName(base) + storeExt, Sealed: sealed, Status: SegmentOK}
	storePath := filepath.Join(dir, s.StoreFile)
	f, err := os.Open(storePath)
	if err != nil {
		return s, fmt.Errorf("logstore: check: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return s, fmt.Errorf("logstore: check: %w", err)
	}
	size := fi.Size()
	s.Bytes = size
	bad := func(status string, pos int64, why string) {
		s.Status, s.BadFile, s.BadPos, s.Problem = status, s.StoreFile, pos, why
	}
	hdr := make([]byte, headerSize)
	switch {
	case size < headerSize && !sealed:
		// A crash while the segment was created: it never held data.
		bad(SegmentTornTail, 0, fmt.Sprintf("store file is %d bytes, shorter than its header (a crash while the segment was created)", size))
	case size < headerSize:
		bad(SegmentCorrupt, 0, fmt.Sprintf("sealed store file is %d bytes, shorter than its header", size))
	default:
		if _, err := f.ReadAt(hdr, 0); err != nil {
			return s, fmt.Errorf("logstore: check: read %s: %w", storePath, err)
		}
		if err := checkHeader(hdr, storeMagic, base); err != nil {
			bad(SegmentCorrupt, 0, "header: "+err.Error())
		} else {
			s.header = true
		}
	}
	tx := newTimeIndexer(prevTime)
	if !s.header {
		if s.Status == SegmentTornTail {
			s.header = true // Repair writes the header: an empty segment
		}
		s.deriveTimes(tx)
		return s, s.checkIndexes(dir)
	}

	// Every frame, in order, keeping whole batches only.
	sc := newScanner(f, headerSize, size)
	good := int64(headerSize)
	var pending []uint32 // positions of the records of the batch being read
	for {
		fr, pos, err := sc.next()
		if err == io.EOF {
			if good < size {
				bad(SegmentCorrupt, good, fmt.Sprintf("the last batch is incomplete (%d bytes without a batch end)", size-good))
			}
			break
		}
		if errors.Is(err, errShortFrame) {
			bad(SegmentCorrupt, sc.pos, fmt.Sprintf("the file ends inside a frame (%d bytes)", size-sc.pos))
			break
		}
		if errors.Is(err, errBadFrame) {
			bad(SegmentCorrupt, sc.pos, err.Error())
			break
		}
		if err != nil {
			return s, fmt.Errorf("logstore: check: read %s: %w", storePath, err)
		}
		if want := base + uint64(len(s.positions)+len(pending)); fr.off != want {
			bad(SegmentCorrupt, pos, fmt.Sprintf("frame holds offset %d, want %d", fr.off, want))
			break
		}
		tx.add(&fr, pos, uint32(len(s.positions)+len(pending)))
		if fr.isRecord() {
			pending = append(pending, uint32(pos))
		}
		if fr.flags&flagBatchEnd != 0 {
			s.positions = append(s.positions, pending...)
			pending = pending[:0]
			good = sc.pos
			s.meta, s.hasMeta = slices.Clone(fr.meta), true
		}
	}
	s.GoodBytes, s.Records = good, uint64(len(s.positions))
	s.deriveTimes(tx)
	if err := s.checkIndexes(dir); err != nil {
		return s, err
	}
	if s.Status == SegmentCorrupt && !sealed {
		// In the active segment, bad bytes are a torn tail unless a whole
		// batch that the index knows of follows them: Open's rule.
		after, err := s.batchAfter(dir, f, size)
		if err != nil {
			return s, err
		}
		if !after {
			s.Status = SegmentTornTail
		} else {
			s.Problem += "; whole batches follow it"
		}
	}
	return s, nil
}

// batchAfter reports whether an index entry points past the bad position at
// a verified frame that holds its offset and ends a batch.
func (s *SegmentReport) batchAfter(dir string, store *os.File, size int64) (bool, error) {
	entries, err := readIndexEntries(filepath.Join(dir, segmentName(s.Base)+indexExt))
	if err != nil || entries == nil {
		return false, err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.rel != uint32(i) || int64(e.pos) <= s.BadPos || int64(e.pos) >= size {
			continue
		}
		fr, _, err := readFrameAt(store, int64(e.pos), size)
		if err == nil && fr.off == s.Base+uint64(i) && fr.isRecord() && fr.flags&flagBatchEnd != 0 {
			return true, nil
		}
	}
	return false, nil
}

// readIndexEntries returns the whole entries of the index at path, or nil
// when it is missing or its header does not verify.
func readIndexEntries(path string) ([]indexEntry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || len(b) < headerSize || string(b[:4]) != indexMagic {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logstore: check: %w", err)
	}
	b = b[headerSize:]
	entries := make([]indexEntry, len(b)/indexEntrySize)
	for i := range entries {
		entries[i] = decodeIndexEntry(b[i*indexEntrySize:])
	}
	return entries, nil
}

// deriveTimes takes the time index entries tx derived from the verified
// batches, ended by a seal entry in a sealed segment that verifies to its
// end. (A corrupt segment's time index is compared up to the corruption, and
// one cut there by TruncateCorrupt becomes the active segment, which has no
// seal entry.)
func (s *SegmentReport) deriveTimes(tx *timeIndexer) {
	s.times, s.lastTime = tx.entries, tx.lastTime
	if s.Sealed && s.Status != SegmentCorrupt {
		s.times = appendTimeEntry(s.times, timeEntry{time: tx.lastTime, rel: uint32(len(s.positions)), marker: true})
	}
}

// checkIndexes compares the segment's index and time index files with the
// store scan.
func (s *SegmentReport) checkIndexes(dir string) error {
	if err := s.checkIndex(dir); err != nil {
		return err
	}
	problem, err := s.checkTimeIndex(dir)
	if err != nil || problem == "" {
		return err
	}
	if s.IndexProblem != "" {
		s.IndexProblem += "; "
	}
	s.IndexProblem += "time index: " + problem
	if s.Status == SegmentOK {
		s.Status = SegmentIndex
	}
	return nil
}

// checkTimeIndex compares the segment's time index file with the entries the
// store scan derived, and says how it differs ("" if it does not). Behind
// corrupt data only the entries derived before it are compared.
func (s *SegmentReport) checkTimeIndex(dir string) (string, error) {
	path := filepath.Join(dir, segmentName(s.Base)+timeIndexExt)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "file is missing", nil
	case err != nil:
		return "", fmt.Errorf("logstore: check: %w", err)
	case len(b) < headerSize:
		return fmt.Sprintf("file is %d bytes, shorter than its header", len(b)), nil
	}
	if err := checkHeader(b, timeIndexMagic, s.Base); err != nil {
		return "header: " + err.Error(), nil
	}
	body, want := b[headerSize:], s.times
	s.TimeIndexEntries = int64(len(body) / timeEntrySize)
	var problems []string
	for i := 0; i < len(want)/timeEntrySize && i < int(s.TimeIndexEntries); i++ {
		got, w := decodeTimeEntry(body[i*timeEntrySize:]), decodeTimeEntry(want[i*timeEntrySize:])
		if got != w {
			problems = append(problems, fmt.Sprintf("entry %d (byte %d) is %s; the store says %s",
				i, headerSize+i*timeEntrySize, got, w))
			break
		}
	}
	n, wantN := s.TimeIndexEntries, int64(len(want)/timeEntrySize)
	switch {
	case n > wantN && s.Status != SegmentCorrupt:
		problems = append(problems, fmt.Sprintf("%d entries past the last verified batch", n-wantN))
	case n < wantN:
		problems = append(problems, fmt.Sprintf("%d entries missing", wantN-n))
	}
	if len(body)%timeEntrySize != 0 {
		problems = append(problems, fmt.Sprintf("a partial entry of %d bytes at the end", len(body)%timeEntrySize))
	}
	return strings.Join(problems, "; "), nil
}

// checkIndex compares the segment's index file with the records the store
// scan verified.
func (s *SegmentReport) checkIndex(dir string) error {
	path := filepath.Join(dir, segmentName(s.Base)+indexExt)
	b, err := os.ReadFile(path)
	problem := ""
	switch {
	case errors.Is(err, os.ErrNotExist):
		problem = "index file is missing"
	case err != nil:
		return fmt.Errorf("logstore: check: %w", err)
	case len(b) < headerSize:
		problem = fmt.Sprintf("index file is %d bytes, shorter than its header", len(b))
	default:
		if err := checkHeader(b, indexMagic, s.Base); err != nil {
			problem = "index header: " + err.Error()
			break
		}
		body := b[headerSize:]
		s.IndexEntries = int64(len(body) / indexEntrySize)
		wrong, first := 0, -1
		for i := 0; i < len(s.positions) && i < int(s.IndexEntries); i++ {
			e := decodeIndexEntry(body[i*indexEntrySize:])
			if e.rel != uint32(i) || e.pos != s.positions[i] {
				if first < 0 {
					first = i
					problem = fmt.Sprintf("entry for offset %d (byte %d) says relative offset %d at store byte %d; the frame is at byte %d",
						s.Base+uint64(i), headerSize+i*indexEntrySize, e.rel, e.pos, s.positions[i])
				}
				wrong++
			}
		}
		if wrong > 1 {
			problem += fmt.Sprintf(" (%d entries wrong)", wrong)
		}
		var more []string
		if n, recs := s.IndexEntries, int64(len(s.positions)); n > recs && s.Status != SegmentCorrupt {
			more = append(more, fmt.Sprintf("%d entries past the last verified record", n-recs))
		} else if n < recs {
			more = append(more, fmt.Sprintf("%d entries missing", recs-n))
		}
		if len(body)%indexEntrySize != 0 {
			more = append(more, fmt.Sprintf("a partial entry of %d bytes at the end", len(body)%indexEntrySize))
		}
		for _, m := range more {
			if problem != "" {
				problem += "; "
			}
			problem += m
		}
	}
	s.IndexProblem = problem
	if problem != "" && s.Status == SegmentOK {
		s.Status = SegmentIndex
	}
	return nil
}

// repair applies o to what the check found.
func (r *Report) repair(o CheckOptions) error {
	for _, name := range r.OrphanIndexes {
		if err := os.Remove(filepath.Join(r.Dir, name)); err != nil {
			return fmt.Errorf("logstore: repair: %w", err)
		}
		r.OrphansRemoved = true
	}
	// Segments from the first corrupt one on are left alone, or, with
	// TruncateCorrupt, cut (that one) and moved aside (the rest).
	firstBad := slices.IndexFunc(r.Segments, func(s SegmentReport) bool { return s.Status == SegmentCorrupt })
	upTo := len(r.Segments)
	if firstBad >= 0 {
		upTo = firstBad
	}
	for i := range r.Segments[:upTo] {
		if err := r.Segments[i].fix(r.Dir); err != nil {
			return err
		}
	}
	if firstBad >= 0 && o.TruncateCorrupt {
		r.MovedTo = filepath.Join(r.Dir, "fsck-"+strconv.FormatInt(time.Now().UnixMilli(), 10))
		if err := os.Mkdir(r.MovedTo, 0o755); err != nil {
			return fmt.Errorf("logstore: repair: %w", err)
		}
		from := firstBad
		if s := &r.Segments[firstBad]; s.header {
			// The whole file stays in MovedTo (a link to it: the cut
			// prefix is a new file).
			path := filepath.Join(r.Dir, s.StoreFile)
			if err := linkOrCopy(path, filepath.Join(r.MovedTo, s.StoreFile)); err != nil {
				return err
			}
			s.DroppedBytes = s.Bytes - s.GoodBytes
			if err := rewritePrefix(path, s.GoodBytes); err != nil {
				return err
			}
			if err := s.rebuildIndex(r.Dir); err != nil {
				return err
			}
			s.Repair = fmt.Sprintf("cut to its good prefix: %d records kept, %d bytes from byte %d dropped (the whole file is in %s)",
				s.Records, s.DroppedBytes, s.GoodBytes, filepath.Base(r.MovedTo))
			from++
		}
		for i := from; i < len(r.Segments); i++ {
			s := &r.Segments[i]
			for _, name := range []string{s.StoreFile, segmentName(s.Base) + indexExt, segmentName(s.Base) + timeIndexExt} {
				err := os.Rename(filepath.Join(r.Dir, name), filepath.Join(r.MovedTo, name))
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("logstore: repair: %w", err)
				}
			}
			s.DroppedBytes, s.header = s.Bytes, false
			s.Repair = movedPrefix + r.MovedTo
		}
		if err := syncDir(r.MovedTo); err != nil {
			return err
		}
	}
	return syncDir(r.Dir)
}

// fix repairs a torn tail or an index that does not match the store.
func (s *SegmentReport) fix(dir string) error {
	switch s.Status {
	case SegmentTornTail:
		path := filepath.Join(dir, s.StoreFile)
		if s.GoodBytes < headerSize {
			// Torn at creation: an empty segment.
			s.GoodBytes = headerSize
			if err := writeFileSynced(path, bytes.NewReader(appendHeader(nil, storeMagic, s.Base))); err != nil {
				return err
			}
		} else if err := rewritePrefix(path, s.GoodBytes); err != nil {
			return err
		}
		s.DroppedBytes = s.Bytes - min(s.Bytes, s.GoodBytes)
		if err := s.rebuildIndex(dir); err != nil {
			return err
		}
		s.Repair = fmt.Sprintf("torn tail truncated: %d bytes from byte %d dropped, index rebuilt (%d entries)", s.DroppedBytes, s.GoodBytes, s.Records)
	case SegmentIndex:
		if err := s.rebuildIndex(dir); err != nil {
			return err
		}
		s.Repair = fmt.Sprintf("index rebuilt from the store (%d entries)", s.Records)
	}
	return nil
}

// rebuildIndex writes the index and the time index of the verified records.
func (s *SegmentReport) rebuildIndex(dir string) error {
	b := appendHeader(nil, indexMagic, s.Base)
	for i, pos := range s.positions {
		b = appendIndexEntry(b, uint32(i), pos)
	}
	s.IndexEntries = int64(len(s.positions))
	if err := writeFileSynced(filepath.Join(dir, segmentName(s.Base)+indexExt), bytes.NewReader(b)); err != nil {
		return err
	}
	t := append(appendHeader(nil, timeIndexMagic, s.Base), s.times...)
	s.TimeIndexEntries = int64(len(s.times) / timeEntrySize)
	return writeFileSynced(filepath.Join(dir, segmentName(s.Base)+timeIndexExt), bytes.NewReader(t))
}

// rewritePrefix replaces the file at path with its first n bytes. It writes
// a new file and renames it over the old one, so a file hard-linked into a
// snapshot keeps its contents there.
func rewritePrefix(path string, n int64) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("logstore: repair: %w", err)
	}
	defer src.Close()
	return writeFileSynced(path, io.NewSectionReader(src, 0, n))
}

// writeFileSynced replaces the file at path with what r holds: write a
// temporary file, fsync, rename, fsync the directory.
func writeFileSynced(path string, r io.Reader) error {
	tmp := path + ".fsck-tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("logstore: repair: %w", err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("logstore: repair: write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}
