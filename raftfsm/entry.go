package raftfsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A Raft entry's data is one batch of records, in one of two kinds:
//
//	kind 1 (written before kind 2 existed; still decoded):
//	+------+-----------------+------------------------------------+
//	| kind | count (uvarint) | count × ( length (uvarint) | value ) |
//	| u8=1 |                 |                                    |
//	+------+-----------------+------------------------------------+
//
//	kind 2 (every entry written now):
//	+------+-----------+--------------+----------+----------+-------+------------------------+
//	| kind | timestamp | producer len | producer | sequence | count | count × (length|value) |
//	| u8=2 | uvarint   | uvarint      | bytes    | uvarint  | uvar. |                        |
//	+------+-----------+--------------+----------+----------+-------+------------------------+
//
// timestamp is the leader's clock when it built the entry (unix nanoseconds;
// 0: none). producer and sequence identify the batch for exactly-once
// produce (an empty producer: none; see producers.go). An entry with a
// producer carries exactly that producer's one batch.
const (
	entryRecords = byte(1) // on-disk format; never change
	entryStamped = byte(2) // on-disk format; never change
)

// MaxProducerIDBytes bounds a producer id.
const MaxProducerIDBytes = 256

// entryHeaderMax is the most a kind 2 entry without a producer id takes
// besides its records: kind, timestamp, the id's length, sequence, count.
const entryHeaderMax = 1 + binary.MaxVarintLen64 + 1 + 2*binary.MaxVarintLen64

var errBadEntry = errors.New("raftfsm: malformed entry")

// entry is a decoded Raft entry. Its records alias the entry's data.
type entry struct {
	ts       int64  // the leader's unix nanoseconds when it built the entry; 0: none
	producer string // empty: no producer
	seq      uint64
	recs     [][]byte
}

// producerSize is what producer id p adds to an entry's size.
func producerSize(p string) int {
	if p == "" {
		return 0
	}
	return uvarintLen(uint64(len(p))) - 1 + len(p)
}

// entrySize bounds the encoded size of an entry holding recs without a
// producer id (producerSize adds one).
func entrySize(recs [][]byte) int {
	n := entryHeaderMax
	for _, r := range recs {
		n += uvarintLen(uint64(len(r))) + len(r)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendEntry encodes e as a kind 2 entry onto dst.
func appendEntry(dst []byte, e entry) []byte {
	dst = append(dst, entryStamped)
	dst = binary.AppendUvarint(dst, uint64(max(e.ts, 0)))
	dst = binary.AppendUvarint(dst, uint64(len(e.producer)))
	dst = append(dst, e.producer...)
	dst = binary.AppendUvarint(dst, e.seq)
	return appendRecords(dst, e.recs)
}

// appendRecords encodes the count and records that end both kinds.
func appendRecords(dst []byte, recs [][]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	for _, r := range recs {
		dst = binary.AppendUvarint(dst, uint64(len(r)))
		dst = append(dst, r...)
	}
	return dst
}

// decodeEntry decodes data (either kind), appending its records to recs,
// whose storage the returned entry reuses. The records alias data.
func decodeEntry(recs [][]byte, data []byte) (entry, error) {
	e := entry{recs: recs}
	if len(data) == 0 {
		return e, fmt.Errorf("%w: empty", errBadEntry)
	}
	kind := data[0]
	data = data[1:]
	switch kind {
	case entryRecords:
	case entryStamped:
		ts, n := binary.Uvarint(data)
		if n <= 0 || ts > 1<<63-1 {
			return e, fmt.Errorf("%w: bad timestamp", errBadEntry)
		}
		e.ts, data = int64(ts), data[n:]
		l, n := binary.Uvarint(data)
		if n <= 0 || l > MaxProducerIDBytes || l > uint64(len(data)-n) {
			return e, fmt.Errorf("%w: bad producer id", errBadEntry)
		}
		e.producer, data = string(data[n:n+int(l)]), data[n+int(l):]
		if e.seq, n = binary.Uvarint(data); n <= 0 {
			return e, fmt.Errorf("%w: bad sequence", errBadEntry)
		}
		data = data[n:]
	default:
		return e, fmt.Errorf("%w: unknown kind %d", errBadEntry, kind)
	}
	count, n := binary.Uvarint(data)
	if n <= 0 || count > uint64(len(data)) { // every record takes at least one byte
		return e, fmt.Errorf("%w: bad record count", errBadEntry)
	}
	data = data[n:]
	for i := uint64(0); i < count; i++ {
		l, n := binary.Uvarint(data)
		if n <= 0 || l > uint64(len(data)-n) {
			return e, fmt.Errorf("%w: record %d of %d is cut short", errBadEntry, i, count)
		}
		e.recs = append(e.recs, data[n:n+int(l):n+int(l)])
		data = data[n+int(l):]
	}
	if len(data) != 0 {
		return e, fmt.Errorf("%w: %d bytes after the last record", errBadEntry, len(data))
	}
	return e, nil
}
