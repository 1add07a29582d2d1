package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// On-disk format; never change. A new layout gets a new formatVersion.
const (
	storeMagic     = "PLGS"
	indexMagic     = "PLGI"
	timeIndexMagic = "PLGT"
	formatVersion  = uint32(1)

	// headerSize is the size of the header that starts every store and index
	// file: magic [4] | version u32 | base offset u64.
	headerSize = 16

	// frameHeaderSize is length u32 | crc32c u32, in front of every frame body.
	frameHeaderSize = 8
	// bodyFixedSize is offset u64 | flags u8, the start of every frame body.
	bodyFixedSize = 9
	// timeSize is the time i64 (unix nanoseconds, > 0) that follows the flags
	// when flagTime is set, before any metadata.
	timeSize = 8
	// metaLenSize is the u16 length of the metadata that follows the flags (and
	// the time) when flagMeta is set.
	metaLenSize = 2
	// maxFrameBody bounds a frame's length field before anything is allocated,
	// whatever the Config of the process that reads it.
	maxFrameBody = 1 << 30

	// indexEntrySize is relative offset u32 | store position u32.
	indexEntrySize = 8

	// timeEntrySize is time i64 | relative offset u32, the top bit of which
	// is timeMarker.
	timeEntrySize = 12
	// timeMarker, in a time entry's relative offset, marks an entry of a batch
	// without time (or the end of a sealed segment, at relative offset =
	// records): its time is the latest time stamped before it.
	timeMarker = 1 << 31
	// timeIndexInterval is how many store bytes after the batch of the last
	// time entry a batch without time gets a marker entry: it bounds the
	// store that recovery scans to rebuild the time index's tail.
	timeIndexInterval = 64 << 10
)

// Frame flags; on-disk format; never change.
const (
	// flagBatchEnd marks the last frame of one Append: recovery keeps a batch
	// whole or drops it whole.
	flagBatchEnd = 1 << 0
	// flagMeta says the body carries the log's metadata (metaLen u16 | meta).
	flagMeta = 1 << 1
	// flagNoRecord marks a frame that carries only metadata and takes no offset.
	flagNoRecord = 1 << 2
	// flagTime says the body carries a time (time i64) after the flags: the
	// record's, or on a segment's first, metadata-only frame the latest time
	// stamped before the segment began.
	flagTime = 1 << 3

	knownFlags = flagBatchEnd | flagMeta | flagNoRecord | flagTime
)

// MaxMetaBytes is the largest metadata value AppendWithMeta accepts.
const MaxMetaBytes = 1024

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// frame is one decoded frame. meta and payload alias the buffer it was decoded from.
type frame struct {
	off     uint64
	flags   byte
	time    int64 // 0 without flagTime
	meta    []byte
	payload []byte
}

func (f *frame) isRecord() bool { return f.flags&flagNoRecord == 0 }

// frameSize is the encoded size of a frame with the given payload and meta.
func frameSize(payload int, meta []byte) int {
	n := frameHeaderSize + bodyFixedSize + payload
	if meta != nil {
		n += metaLenSize + len(meta)
	}
	return n
}

// appendFrame encodes one frame onto dst. ts is written when not 0, meta when
// non-nil.
func appendFrame(dst []byte, off uint64, flags byte, ts int64, meta, payload []byte) []byte {
	if meta != nil {
		flags |= flagMeta
	}
	flags &^= flagTime
	start := len(dst)
	bodyLen := frameSize(len(payload), meta) - frameHeaderSize
	if ts != 0 {
		flags |= flagTime
		bodyLen += timeSize
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyLen))
	dst = binary.BigEndian.AppendUint32(dst, 0) // crc, filled in below
	dst = binary.BigEndian.AppendUint64(dst, off)
	dst = append(dst, flags)
	if ts != 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	}
	if meta != nil {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(meta)))
		dst = append(dst, meta...)
	}
	dst = append(dst, payload...)
	body := dst[start+frameHeaderSize:]
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(body, crcTable))
	return dst
}

var (
	// errShortFrame: the buffer ends inside the frame (a torn tail when at the
	// end of a file).
	errShortFrame = errors.New("short frame")
	// errBadFrame: the bytes cannot be a frame written by this package.
	errBadFrame = errors.New("bad frame")
)

// frameLen reads a frame's total encoded length from its header, bounded.
func frameLen(b []byte) (int, error) {
	if len(b) < frameHeaderSize {
		return 0, errShortFrame
	}
	n := binary.BigEndian.Uint32(b)
	if n < bodyFixedSize || n > maxFrameBody {
		return 0, fmt.Errorf("%w: length %d", errBadFrame, n)
	}
	return frameHeaderSize + int(n), nil
}

// decodeFrame decodes the frame at the start of b and returns its encoded size.
// It verifies the checksum and the structure of the body.
func decodeFrame(b []byte) (frame, int, error) {
	n, err := frameLen(b)
	if err != nil {
		return frame{}, 0, err
	}
	if len(b) < n {
		return frame{}, 0, errShortFrame
	}
	body := b[frameHeaderSize:n]
	if got, want := crc32.Checksum(body, crcTable), binary.BigEndian.Uint32(b[4:]); got != want {
		return frame{}, 0, fmt.Errorf("%w: crc32c %08x, header says %08x", errBadFrame, got, want)
	}
	f := frame{off: binary.BigEndian.Uint64(body), flags: body[8]}
	if f.flags&^knownFlags != 0 {
		return frame{}, 0, fmt.Errorf("%w: unknown flags %#x", errBadFrame, f.flags)
	}
	rest := body[bodyFixedSize:]
	if f.flags&flagTime != 0 {
		if len(rest) < timeSize {
			return frame{}, 0, fmt.Errorf("%w: time missing", errBadFrame)
		}
		if f.time = int64(binary.BigEndian.Uint64(rest)); f.time <= 0 {
			return frame{}, 0, fmt.Errorf("%w: time %d", errBadFrame, f.time)
		}
		rest = rest[timeSize:]
	}
	if f.flags&flagMeta != 0 {
		if len(rest) < metaLenSize {
			return frame{}, 0, fmt.Errorf("%w: metadata length missing", errBadFrame)
		}
		ml := int(binary.BigEndian.Uint16(rest))
		if ml > MaxMetaBytes || len(rest) < metaLenSize+ml {
			return frame{}, 0, fmt.Errorf("%w: metadata length %d", errBadFrame, ml)
		}
		f.meta = rest[metaLenSize : metaLenSize+ml]
		rest = rest[metaLenSize+ml:]
	}
	if !f.isRecord() && len(rest) != 0 {
		return frame{}, 0, fmt.Errorf("%w: metadata frame with a payload", errBadFrame)
	}
	f.payload = rest
	return f, n, nil
}

// appendHeader encodes a file header.
func appendHeader(dst []byte, magic string, base uint64) []byte {
	dst = append(dst, magic...)
	dst = binary.BigEndian.AppendUint32(dst, formatVersion)
	return binary.BigEndian.AppendUint64(dst, base)
}

// checkHeader verifies a file header against the expected magic and base.
func checkHeader(b []byte, magic string, base uint64) error {
	if len(b) < headerSize {
		return fmt.Errorf("header is %d bytes, want %d", len(b), headerSize)
	}
	if string(b[:4]) != magic {
		return fmt.Errorf("magic %q, want %q", b[:4], magic)
	}
	if v := binary.BigEndian.Uint32(b[4:]); v != formatVersion {
		return fmt.Errorf("format version %d, this build reads %d", v, formatVersion)
	}
	if got := binary.BigEndian.Uint64(b[8:]); got != base {
		return fmt.Errorf("base offset %d, file name says %d", got, base)
	}
	return nil
}

// indexEntry is one decoded index entry.
type indexEntry struct {
	rel uint32
	pos uint32
}

func appendIndexEntry(dst []byte, rel, pos uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, rel)
	return binary.BigEndian.AppendUint32(dst, pos)
}

func decodeIndexEntry(b []byte) indexEntry {
	return indexEntry{rel: binary.BigEndian.Uint32(b), pos: binary.BigEndian.Uint32(b[4:])}
}

// timeEntry is one decoded time index entry: the batch of records from rel on
// is stamped with time, or, for a marker, has no time and time is the latest
// stamped before it.
type timeEntry struct {
	time   int64
	rel    uint32
	marker bool
}

func (e timeEntry) String() string {
	if e.marker {
		return fmt.Sprintf("a marker at relative offset %d carrying time %d", e.rel, e.time)
	}
	return fmt.Sprintf("time %d at relative offset %d", e.time, e.rel)
}

func appendTimeEntry(dst []byte, e timeEntry) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.time))
	rel := e.rel
	if e.marker {
		rel |= timeMarker
	}
	return binary.BigEndian.AppendUint32(dst, rel)
}

func decodeTimeEntry(b []byte) timeEntry {
	rel := binary.BigEndian.Uint32(b[8:])
	return timeEntry{time: int64(binary.BigEndian.Uint64(b)), rel: rel &^ timeMarker, marker: rel&timeMarker != 0}
}

// timeEntryFor returns the time index entry of a batch whose records start
// at relative offset rel and store position pos, stamped with ts (0: without
// time), and whether it takes one. A batch with time always does; one without
// takes a marker, carrying lastTime (the latest time stamped before it), when
// it starts timeIndexInterval bytes or more after the batch of the last entry
// (lastEntryPos; the header's end before any entry). Appends, recovery and
// Check all decide with this function, so a rebuilt index is the written one.
func timeEntryFor(ts, lastTime int64, rel uint32, pos, lastEntryPos int64) (timeEntry, bool) {
	if ts != 0 {
		return timeEntry{time: ts, rel: rel}, true
	}
	if pos-lastEntryPos >= timeIndexInterval {
		return timeEntry{time: lastTime, rel: rel, marker: true}, true
	}
	return timeEntry{}, false
}

// timeIndexer derives a segment's time index entries from its frames in
// order, as appends write them: entries for batches whose first record is at
// or after from, and the latest time of whole batches.
type timeIndexer struct {
	from      uint32
	rel       uint32 // relative offset of the next record, for scans that need it
	entries   []byte // encoded entries derived
	n         int    // entries in entries
	lastTime  int64  // the latest time of a whole batch so far
	lastEntry int64  // store position of the last entry's batch
	// The batch being read.
	inBatch   bool
	batchPos  int64 // position of its first record
	batchRel  uint32
	batchTime int64 // of its first record
	batchMax  int64 // the latest time of its frames
}

// newTimeIndexer returns a timeIndexer for a segment's frames from its first
// on, after segments whose latest time is prevTime.
func newTimeIndexer(prevTime int64) *timeIndexer {
	return &timeIndexer{lastTime: prevTime, lastEntry: headerSize}
}

// add notes the verified frame f at pos; rel is the relative offset of its
// record, if it holds one.
func (x *timeIndexer) add(f *frame, pos int64, rel uint32) {
	x.batchMax = max(x.batchMax, f.time)
	if f.isRecord() && !x.inBatch {
		x.inBatch, x.batchPos, x.batchRel, x.batchTime = true, pos, rel, f.time
	}
	if f.flags&flagBatchEnd == 0 {
		return
	}
	x.lastTime = max(x.lastTime, x.batchMax)
	if x.inBatch && x.batchRel >= x.from {
		if e, ok := timeEntryFor(x.batchTime, x.lastTime, x.batchRel, x.batchPos, x.lastEntry); ok {
			x.entries = appendTimeEntry(x.entries, e)
			x.n++
			x.lastEntry = x.batchPos
		}
	}
	x.inBatch, x.batchMax = false, 0
}
