package raftfsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A Raft entry's data is one batch of records:
//
//	+------+-----------------+------------------------------------+
//	| kind | count (uvarint) | count × ( length (uvarint) | value ) |
//	| u8   |                 |                                    |
//	+------+-----------------+------------------------------------+
//
// kind 1 is a plain batch. New kinds (records with timestamps, a producer id and
// sequence) get new numbers; entries already in Raft logs keep decoding.
const (
	entryRecords = byte(1) // on-disk format; never change
)

var errBadEntry = errors.New("raftfsm: malformed entry")

// entrySize is the encoded size of an entry holding recs.
func entrySize(recs [][]byte) int {
	n := 1 + binary.MaxVarintLen64
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

// appendEntry encodes recs as one entry onto dst.
func appendEntry(dst []byte, recs [][]byte) []byte {
	dst = append(dst, entryRecords)
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	for _, r := range recs {
		dst = binary.AppendUvarint(dst, uint64(len(r)))
		dst = append(dst, r...)
	}
	return dst
}

// decodeEntry appends the records of an entry to recs. The records alias data.
func decodeEntry(recs [][]byte, data []byte) ([][]byte, error) {
	if len(data) == 0 || data[0] != entryRecords {
		return recs, fmt.Errorf("%w: unknown kind", errBadEntry)
	}
	data = data[1:]
	count, n := binary.Uvarint(data)
	if n <= 0 || count > uint64(len(data)) { // every record takes at least one byte
		return recs, fmt.Errorf("%w: bad record count", errBadEntry)
	}
	data = data[n:]
	for i := uint64(0); i < count; i++ {
		l, n := binary.Uvarint(data)
		if n <= 0 || l > uint64(len(data)-n) {
			return recs, fmt.Errorf("%w: record %d of %d is cut short", errBadEntry, i, count)
		}
		recs = append(recs, data[n:n+int(l):n+int(l)])
		data = data[n+int(l):]
	}
	if len(data) != 0 {
		return recs, fmt.Errorf("%w: %d bytes after the last record", errBadEntry, len(data))
	}
	return recs, nil
}
