package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
)

// On-disk format; never change (see the package documentation).
const (
	segmentMagic  = "plraftl1"
	headerSize    = 16 // magic, then the first index (uint64)
	frameHeader   = 8  // payload length (uint32), chained CRC (uint32)
	entryFixed    = 8 + 8 + 1 + 8 + 4 + 4
	segmentSuffix = ".seg"
	lockFile      = "LOCK"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DefaultSegmentBytes is the size a segment file is made with (zero-filled);
// a batch larger than that gets a segment of its own size.
const DefaultSegmentBytes = 8 << 20

// maxRecycled bounds the files of compacted segments kept to be reused as
// new segments (recycle): with raftfsm's defaults a snapshot comes after
// 32–128 MiB of entries, and the compaction after it frees up to that many
// segments of the default size at once.
const maxRecycled = 16

// ErrInUse is returned by Open when another process has the directory open.
var ErrInUse = errors.New("raftlog: the directory is in use by another process")

// Options tunes a Store.
type Options struct {
	// SegmentBytes is the size of a new segment file; 0 means
	// DefaultSegmentBytes.
	SegmentBytes int64
	// Logger receives what recovery found; nil discards it.
	Logger *slog.Logger
}

// segment is one file of consecutive entries from first. offs[i] is where
// entry first+i's frame starts; end is where the next frame goes; crc is
// the chained CRC of the last frame (of the header when there is none).
// Once published, offs only grows (writer) or is cut (DeleteRange), both
// under Store.mu.
type segment struct {
	first uint64
	path  string
	f     *os.File
	offs  []int64
	end   int64
	size  int64
	crc   uint32
}

func (s *segment) next() uint64 { return s.first + uint64(len(s.offs)) }

// Store is Raft's log store and stable store in one directory. Its methods
// are safe for concurrent use: writeMu serializes the writers (StoreLogs,
// DeleteRange, Set), mu guards the published state, so GetLog never waits
// for an fsync.
type Store struct {
	dir    string
	opts   Options
	logger *slog.Logger
	lock   *os.File

	writeMu sync.Mutex
	buf     []byte // the frames of the batch being written; writeMu
	// err is set by a write or fsync that failed: what reached the disk is
	// unknown, so every later write fails with it until the store is opened
	// again (which recovers as at start).
	err error

	// spareMu guards the spare segment file made ahead (makeSpare), which
	// spareWG waits for, and the files of compacted segments kept to be
	// spares again (recycle).
	spareMu     sync.Mutex
	spare       *os.File
	making      bool
	spareClosed bool
	spareWG     sync.WaitGroup
	recycled    []recycledFile

	mu     sync.RWMutex
	segs   []*segment // oldest first; the last one is written to
	first  uint64     // 0 when the log is empty
	last   uint64
	stable map[string][]byte
	closed bool
}

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
)

// Open opens (or creates) the store in dir, recovering the log as it was
// at the last write that returned: the last segment is read up to its
// first frame that is incomplete, fails its checksum or does not follow;
// an earlier segment that ends short of the next one's first entry is
// corruption, and Open refuses it.
func Open(dir string, o Options) (*Store, error) {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrInUse, dir)
		}
		return nil, fmt.Errorf("raftlog: lock %s: %w", dir, err)
	}
	s := &Store{dir: dir, opts: o, logger: logger, lock: lock}
	if err := s.load(); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// load reads the stable store and every segment.
func (s *Store) load() error {
	var err error
	if s.stable, err = readStable(s.dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.dir, StableFile)); errors.Is(err, fs.ErrNotExist) {
		// Written at once, so the directory marks a Raft state as the
		// other stores' files do (raftfsm.HasRaftState).
		if err := writeStable(s.dir, s.stable); err != nil {
			return err
		}
	}
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	var lastTerm uint64
	for _, de := range names {
		if strings.HasSuffix(de.Name(), ".tmp") {
			// A segment or stable file whose making did not finish.
			if err := os.Remove(filepath.Join(s.dir, de.Name())); err != nil {
				return fmt.Errorf("raftlog: %w", err)
			}
			continue
		}
		first, ok := segmentFirst(de.Name())
		if !ok {
			continue
		}
		prev := s.lastSegment()
		if prev != nil && first != prev.next() {
			return fmt.Errorf("raftlog: %s starts at index %d but the segment before it ends at %d: entries are missing (corruption)", de.Name(), first, prev.next()-1)
		}
		seg, t, err := openSegment(filepath.Join(s.dir, de.Name()), first, lastTerm)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		lastTerm = t
	}
	// Only the last segment may end short: anything after its tail is a
	// write that never returned.
	for i, seg := range s.segs[:max(len(s.segs)-1, 0)] {
		if seg.next() != s.segs[i+1].first {
			return fmt.Errorf("raftlog: %s is damaged after index %d (its next segment starts at %d)", seg.path, seg.next()-1, s.segs[i+1].first)
		}
	}
	if seg := s.lastSegment(); seg != nil && seg.end < seg.size && !zeroFrom(seg.f, seg.end) {
		s.logger.Debug("Raft's log: bytes after the last complete entry are ignored (a write that never completed, entries deleted, or the older frames of a reused file)", "segment", seg.path, "offset", seg.end, "last_index", seg.next()-1)
	}
	for _, seg := range s.segs {
		if len(seg.offs) > 0 {
			if s.first == 0 {
				s.first = seg.first
			}
			s.last = seg.next() - 1
		}
	}
	return nil
}

// segmentFirst parses a segment file name: its first index.
func segmentFirst(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(base) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 64)
	return n, err == nil
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentSuffix) }

func (s *Store) lastSegment() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// openSegment reads a segment file and indexes its valid frames: each
// complete, with its chained checksum, the next index and a term no lower
// than the one before (lastTerm, the previous segment's last). It returns
// the term of its last entry.
func openSegment(path string, first, lastTerm uint64) (*segment, uint64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("raftlog: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("raftlog: %w", err)
	}
	if len(data) < headerSize || string(data[:8]) != segmentMagic || binary.LittleEndian.Uint64(data[8:16]) != first {
		f.Close()
		return nil, 0, fmt.Errorf("raftlog: %s: not a segment of index %d (bad header)", path, first)
	}
	seg := &segment{first: first, path: path, f: f, size: int64(len(data)), crc: crc32.Checksum(data[:headerSize], castagnoli)}
	pos := int64(headerSize)
	for pos+frameHeader <= int64(len(data)) {
		n := int64(binary.LittleEndian.Uint32(data[pos:]))
		if n < entryFixed || pos+frameHeader+n > int64(len(data)) {
			break
		}
		payload := data[pos+frameHeader : pos+frameHeader+n]
		c := crc32.Update(seg.crc, castagnoli, payload)
		if c != binary.LittleEndian.Uint32(data[pos+4:]) {
			break
		}
		index, term := binary.LittleEndian.Uint64(payload), binary.LittleEndian.Uint64(payload[8:])
		if index != seg.next() || term < lastTerm {
			break
		}
		seg.offs = append(seg.offs, pos)
		seg.crc, lastTerm = c, term
		pos += frameHeader + n
	}
	seg.end = pos
	return seg, lastTerm, nil
}

// zeroFrom reports whether the file holds only zero bytes from off (within
// the first page after it, which is where a torn write would show).
func zeroFrom(f *os.File, off int64) bool {
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, off)
	for _, c := range b[:n] {
		if c != 0 {
			return false
		}
	}
	return true
}

// IsMonotonic tells Raft that this store holds one run of consecutive
// indexes: after restoring a snapshot it removes all older entries rather
// than leaving a gap.
func (s *Store) IsMonotonic() bool { return true }

// FirstIndex implements raft.LogStore: 0 when the log is empty.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first, nil
}

// LastIndex implements raft.LogStore: 0 when the log is empty.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// GetLog implements raft.LogStore.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	if s.first == 0 || index < s.first || index > s.last {
		return raft.ErrLogNotFound
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].next() > index })
	seg := s.segs[i]
	k := index - seg.first
	off, end := seg.offs[k], seg.end
	if k+1 < uint64(len(seg.offs)) {
		end = seg.offs[k+1]
	}
	b := make([]byte, end-off)
	if _, err := seg.f.ReadAt(b, off); err != nil {
		return fmt.Errorf("raftlog: read index %d: %w", index, err)
	}
	return decodeEntry(b[frameHeader:], out)
}

var errClosed = errors.New("raftlog: store closed")

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: the entries, which must follow the
// last one, are written with one write and one fdatasync before it
// returns. Entries that leave a gap after the last one (Raft writes them
// only past a snapshot it restored) start the log anew.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.makeSpare() // a store only read (fsck) never makes one
	for i, l := range logs[1:] {
		if l.Index != logs[i].Index+1 {
			return fmt.Errorf("raftlog: StoreLogs: index %d follows %d", l.Index, logs[i].Index)
		}
	}
	s.mu.RLock()
	last, closed := s.last, s.closed
	s.mu.RUnlock()
	switch {
	case closed:
		return errClosed
	case last != 0 && logs[0].Index <= last:
		return fmt.Errorf("raftlog: StoreLogs: index %d is not after the last one, %d (DeleteRange it first)", logs[0].Index, last)
	case last != 0 && logs[0].Index > last+1:
		s.logger.Info("Raft's log starts again after a snapshot", "from_index", logs[0].Index, "last_index", last)
		if err := s.deleteAll(); err != nil {
			return err
		}
	}
	size := int64(0)
	for _, l := range logs {
		size += frameHeader + entrySize(l)
	}
	seg := s.lastSegment()
	if seg == nil || seg.end+size > seg.size || seg.next() != logs[0].Index {
		var err error
		if seg, err = s.newSegment(logs[0].Index, max(s.opts.SegmentBytes, headerSize+size)); err != nil {
			return err
		}
	}
	buf, offs, crc := s.buf[:0], make([]int64, 0, len(logs)), seg.crc
	for _, l := range logs {
		offs = append(offs, seg.end+int64(len(buf)))
		buf, crc = appendFrame(buf, l, crc)
	}
	s.buf = buf
	if _, err := seg.f.WriteAt(buf, seg.end); err != nil {
		s.err = fmt.Errorf("raftlog: write to %s failed, the store refuses writes until it is opened again: %w", seg.path, err)
		return s.err
	}
	if err := unix.Fdatasync(int(seg.f.Fd())); err != nil {
		s.err = fmt.Errorf("raftlog: fdatasync of %s failed, the store refuses writes until it is opened again: %w", seg.path, err)
		return s.err
	}
	if cap(s.buf) > 4*int(s.opts.SegmentBytes) {
		s.buf = nil // one huge batch does not pin its buffer
	}
	s.mu.Lock()
	seg.offs = append(seg.offs, offs...)
	seg.end += int64(len(buf))
	seg.crc = crc
	if s.first == 0 {
		s.first = logs[0].Index
	}
	s.last = logs[len(logs)-1].Index
	s.mu.Unlock()
	return nil
}

// newSegment makes an empty segment file for entries from first, of size
// bytes, zero-filled and synced before it is named (so an fdatasync of a
// write into it carries no metadata), and publishes it as the last one. A
// segment of SegmentBytes is the spare one made ahead (takeSpare) when it
// is ready: only its header is written then. An empty last segment it
// replaces is removed. It starts making the next spare.
func (s *Store) newSegment(first uint64, size int64) (*segment, error) {
	defer s.makeSpare()
	path := filepath.Join(s.dir, segmentName(first))
	header := headerBytes(first)
	var f *os.File
	var err error
	spare := s.takeSpare(size)
	if spare != nil {
		f = spare
		_, err = f.WriteAt(header, 0)
		if err == nil {
			err = unix.Fdatasync(int(f.Fd()))
		}
		if err == nil {
			err = os.Rename(filepath.Join(s.dir, spareFile), path)
		}
	} else {
		f, err = createZeroed(path+".tmp", header, size)
		if err == nil {
			err = os.Rename(path+".tmp", path)
		}
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		if spare != nil {
			os.Remove(filepath.Join(s.dir, spareFile))
		} else {
			os.Remove(path + ".tmp")
		}
		return nil, fmt.Errorf("raftlog: new segment for index %d: %w", first, err)
	}
	seg := &segment{first: first, path: path, f: f, end: headerSize, size: size, crc: crc32.Checksum(header, castagnoli)}
	s.mu.Lock()
	var empty *segment
	if last := s.lastSegment(); last != nil && len(last.offs) == 0 {
		empty, s.segs = last, s.segs[:len(s.segs)-1]
	}
	s.segs = append(s.segs, seg)
	s.mu.Unlock()
	switch {
	case empty == nil:
	case empty.path == path: // renamed over: only its file is left to close
		if err := empty.f.Close(); err != nil {
			return seg, fmt.Errorf("raftlog: %w", err)
		}
	default:
		// Synced, so a crash cannot leave it before the new one.
		if err := removeSegments([]*segment{empty}); err != nil {
			return seg, err
		}
		return seg, syncDir(s.dir)
	}
	return seg, nil
}

// spareFile is the next segment, made ahead: SegmentBytes of zeros,
// synced, so a full segment is followed by the next without writing
// megabytes of zeros on the write path. Open removes a leftover one.
const spareFile = "spare.tmp"

// makeSpare starts making the spare segment file on a goroutine of its own
// unless one is ready or being made, or the store is closed.
func (s *Store) makeSpare() {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	if s.spare != nil || s.making || s.spareClosed {
		return
	}
	if n := len(s.recycled); n > 0 {
		r := s.recycled[n-1]
		s.recycled = s.recycled[:n-1]
		if err := os.Rename(r.path, filepath.Join(s.dir, spareFile)); err == nil {
			s.spare = r.f
			return
		}
		r.f.Close()
		os.Remove(r.path)
	}
	s.making = true
	s.spareWG.Go(func() {
		f, err := createZeroed(filepath.Join(s.dir, spareFile), nil, s.opts.SegmentBytes)
		s.spareMu.Lock()
		defer s.spareMu.Unlock()
		s.making = false
		switch {
		case err != nil:
			// A full disk, say: the next segment is made on the write
			// path, which reports what fails.
			os.Remove(filepath.Join(s.dir, spareFile))
			s.logger.Debug("Raft's log: making the next segment ahead failed", "err", err)
		case s.spareClosed:
			f.Close()
			os.Remove(filepath.Join(s.dir, spareFile))
		default:
			s.spare = f
		}
	})
}

// takeSpare returns the spare segment file when it is ready and size is
// its size, else nil.
func (s *Store) takeSpare(size int64) *os.File {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	f := s.spare
	if f == nil || size != s.opts.SegmentBytes {
		return nil
	}
	s.spare = nil
	return f
}

// createZeroed creates path with header, then zeros up to size, synced.
func createZeroed(path string, header []byte, size int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	err = writeZeroed(f, header, size)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeZeroed writes header, then zeros up to size.
func writeZeroed(f *os.File, header []byte, size int64) error {
	if _, err := f.Write(header); err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for left := size - int64(len(header)); left > 0; {
		n := min(left, int64(len(zeros)))
		if _, err := f.Write(zeros[:n]); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// DeleteRange implements raft.LogStore. Raft deletes either a head (to
// compact after a snapshot), a tail (entries that conflict with the
// leader's), or everything; a range strictly inside the log is refused.
// A head is dropped whole segments at a time on disk (the entries before
// the new first index that share its segment come back after a restart,
// which Raft tolerates: they are committed entries older than a snapshot).
func (s *Store) DeleteRange(min, max uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	first, last, closed := s.first, s.last, s.closed
	s.mu.RUnlock()
	switch {
	case closed:
		return errClosed
	case first == 0 || max < first || min > last || min > max:
		return nil
	case min <= first && max >= last:
		return s.deleteAll()
	case min <= first:
		return s.deleteHead(max + 1)
	case max >= last:
		return s.deleteTail(min)
	}
	return fmt.Errorf("raftlog: DeleteRange(%d, %d) inside the log [%d, %d]: only a head or a tail can be deleted", min, max, first, last)
}

// deleteAll removes every segment, oldest first, so that a crash leaves
// consecutive entries.
func (s *Store) deleteAll() error {
	s.mu.Lock()
	segs := s.segs
	s.segs, s.first, s.last = nil, 0, 0
	s.mu.Unlock()
	return removeSegments(segs)
}

// deleteHead makes from the first index, removing the segments wholly
// before it.
func (s *Store) deleteHead(from uint64) error {
	s.mu.Lock()
	k := 0
	for k < len(s.segs)-1 && s.segs[k].next() <= from {
		k++
	}
	gone := slices.Clone(s.segs[:k])
	s.segs = s.segs[k:]
	s.first = from
	s.mu.Unlock()
	return s.removeHead(gone)
}

// recycledFile is a compacted segment's file, kept open under a .tmp name
// (which Open removes) until it is the spare again.
type recycledFile struct {
	path string
	f    *os.File
}

// removeHead removes a compacted head's segments, oldest first (a crash
// leaves consecutive entries), keeping the files of those of SegmentBytes,
// up to maxRecycled, to be the next spares instead of zero-filled files: a
// segment made from one is written over its old frames, which Open never
// reads back (their indexes are below the new segment's first). Only a head
// is recycled: a tail cut off may be followed by the same entries again,
// and then its old frames would chain on.
func (s *Store) removeHead(segs []*segment) error {
	for i, seg := range segs {
		if !s.recycle(seg) {
			if err := removeSegments(segs[i : i+1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// recycle renames seg's file to be kept for reuse and reports whether it
// did.
func (s *Store) recycle(seg *segment) bool {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	if s.spareClosed || seg.size != s.opts.SegmentBytes || len(s.recycled) == maxRecycled {
		return false
	}
	path := filepath.Join(s.dir, fmt.Sprintf("recycled-%020d.tmp", seg.first))
	if err := os.Rename(seg.path, path); err != nil {
		return false
	}
	s.recycled = append(s.recycled, recycledFile{path, seg.f})
	return true
}

// deleteTail cuts the log before index from (first < from <= last): in
// the segment that held from, a zero frame length is written and synced at
// the cut, and the later segments are removed, newest first, and the
// directory synced before it returns, so none of the cut entries comes
// back. (New entries written over the cut ones could not be followed by
// them anyway: their chained checksums differ.)
func (s *Store) deleteTail(from uint64) error {
	s.mu.Lock()
	k := len(s.segs) - 1
	for s.segs[k].first > from {
		k--
	}
	gone := slices.Clone(s.segs[k+1:])
	slices.Reverse(gone)
	seg := s.segs[k]
	s.segs = s.segs[:k+1]
	cut := from - seg.first
	crc := crc32.Checksum(headerBytes(seg.first), castagnoli)
	if cut > 0 {
		var b [4]byte
		if _, err := seg.f.ReadAt(b[:], seg.offs[cut-1]+4); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("raftlog: %w", err)
		}
		crc = binary.LittleEndian.Uint32(b[:])
	}
	seg.end, seg.offs, seg.crc = seg.offs[cut], seg.offs[:cut], crc
	s.last = from - 1
	s.mu.Unlock()
	// The cut frames stay valid on disk: if the next entries went to a new
	// segment (they did not fit here), Open would read them again and find
	// this segment overlapping the next. A zero length at the cut ends it.
	var zero [frameHeader]byte
	_, err := seg.f.WriteAt(zero[:], seg.end)
	if err == nil {
		err = unix.Fdatasync(int(seg.f.Fd()))
	}
	if err != nil {
		s.err = fmt.Errorf("raftlog: cutting %s failed, the store refuses writes until it is opened again: %w", seg.path, err)
		return s.err
	}
	if err := removeSegments(gone); err != nil {
		return err
	}
	return syncDir(s.dir)
}

func headerBytes(first uint64) []byte {
	b := make([]byte, headerSize)
	copy(b, segmentMagic)
	binary.LittleEndian.PutUint64(b[8:], first)
	return b
}

// removeSegments closes and removes segment files, in order.
func removeSegments(segs []*segment) error {
	var errs []error
	for _, seg := range segs {
		errs = append(errs, seg.f.Close())
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	return nil
}

// Close closes the files and releases the directory.
func (s *Store) Close() error {
	s.spareMu.Lock()
	s.spareClosed = true
	if s.spare != nil {
		s.spare.Close()
		s.spare = nil
		os.Remove(filepath.Join(s.dir, spareFile))
	}
	for _, r := range s.recycled {
		r.f.Close()
		os.Remove(r.path)
	}
	s.recycled = nil
	s.spareMu.Unlock()
	s.spareWG.Wait()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, seg := range s.segs {
		errs = append(errs, seg.f.Close())
	}
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

// entrySize is the bytes of l's frame payload.
func entrySize(l *raft.Log) int64 { return entryFixed + int64(len(l.Data)+len(l.Extensions)) }

// appendFrame appends l's frame, its checksum chained from crc, and returns
// the new chain value.
func appendFrame(dst []byte, l *raft.Log, crc uint32) ([]byte, uint32) {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(entrySize(l)))
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, l.Index)
	dst = binary.LittleEndian.AppendUint64(dst, l.Term)
	dst = append(dst, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(at))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	crc = crc32.Update(crc, castagnoli, dst[start+frameHeader:])
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	return dst, crc
}

// decodeEntry decodes a frame's payload into out; out's slices share b.
func decodeEntry(b []byte, out *raft.Log) error {
	if len(b) < entryFixed {
		return errors.New("raftlog: short entry")
	}
	out.Index = binary.LittleEndian.Uint64(b)
	out.Term = binary.LittleEndian.Uint64(b[8:])
	out.Type = raft.LogType(b[16])
	out.AppendedAt = time.Time{}
	if at := int64(binary.LittleEndian.Uint64(b[17:])); at != 0 {
		out.AppendedAt = time.Unix(0, at)
	}
	n := int(binary.LittleEndian.Uint32(b[25:]))
	if 29+n+4 > len(b) {
		return errors.New("raftlog: entry data overruns its frame")
	}
	out.Data = b[29 : 29+n : 29+n]
	m := int(binary.LittleEndian.Uint32(b[29+n:]))
	if 33+n+m != len(b) {
		return errors.New("raftlog: entry extensions do not fill its frame")
	}
	out.Extensions = nil
	if m > 0 {
		out.Extensions = b[33+n:]
	}
	if n == 0 {
		out.Data = nil
	}
	return nil
}

// syncDir fsyncs a directory, so the names made or removed in it last.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
