package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// On-disk format; never change. A new layout gets a new formatVersion.
const (
	storeMagic    = "PLGS"
	indexMagic    = "PLGI"
	formatVersion = uint32(1)

	// headerSize is the size of the header that starts every store and index
	// file: magic [4] | version u32 | base offset u64.
	headerSize = 16

	// frameHeaderSize is length u32 | crc32c u32, in front of every frame body.
	frameHeaderSize = 8
	// bodyFixedSize is offset u64 | flags u8, the start of every frame body.
	bodyFixedSize = 9
	// metaLenSize is the u16 length of the metadata that follows the flags when
	// flagMeta is set.
	metaLenSize = 2
	// maxFrameBody bounds a frame's length field before anything is allocated,
	// whatever the Config of the process that reads it.
	maxFrameBody = 1 << 30

	// indexEntrySize is relative offset u32 | store position u32.
	indexEntrySize = 8
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

	knownFlags = flagBatchEnd | flagMeta | flagNoRecord
)

// MaxMetaBytes is the largest metadata value AppendWithMeta accepts.
const MaxMetaBytes = 1024

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// frame is one decoded frame. meta and payload alias the buffer it was decoded from.
type frame struct {
	off     uint64
	flags   byte
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

// appendFrame encodes one frame onto dst. meta is written when non-nil.
func appendFrame(dst []byte, off uint64, flags byte, meta, payload []byte) []byte {
	if meta != nil {
		flags |= flagMeta
	}
	start := len(dst)
	bodyLen := frameSize(len(payload), meta) - frameHeaderSize
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyLen))
	dst = binary.BigEndian.AppendUint32(dst, 0) // crc, filled in below
	dst = binary.BigEndian.AppendUint64(dst, off)
	dst = append(dst, flags)
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
