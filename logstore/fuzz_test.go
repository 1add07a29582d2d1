package logstore

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
)

// Seeds beyond those in testdata/fuzz: frames of every kind.
func frameSeeds() [][]byte {
	return [][]byte{
		appendFrame(nil, 0, flagBatchEnd, 0, nil, []byte("hello")),
		appendFrame(nil, 1<<40, 0, 0, nil, nil),
		appendFrame(nil, 7, flagBatchEnd, 0, []byte("meta"), []byte("payload")),
		appendFrame(nil, 7, flagBatchEnd, 0, []byte{}, nil),
		appendFrame(nil, 9, flagBatchEnd|flagNoRecord, 0, []byte("only meta"), nil),
		appendFrame(nil, 9, flagBatchEnd|flagNoRecord, 0, nil, nil),
		appendFrame(appendFrame(nil, 3, 0, 0, nil, []byte("a")), 4, flagBatchEnd, 0, nil, []byte("b")),
		appendFrame(nil, 0, flagBatchEnd, 0, make([]byte, MaxMetaBytes), bytes.Repeat([]byte{0xff}, 300)),
		appendFrame(nil, 11, flagBatchEnd, 1_700_000_000_000_000_000, nil, []byte("timed")),
		appendFrame(nil, 11, flagBatchEnd, 1, []byte("meta"), []byte("timed with meta")),
		appendFrame(nil, 12, flagBatchEnd|flagNoRecord, 1<<62, nil, nil),
	}
}

// FuzzDecodeFrame: decodeFrame never panics, fails only with errShortFrame or
// errBadFrame, and a frame it accepts re-encodes to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range frameSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := decodeFrame(b)
		if err != nil {
			if !errors.Is(err, errShortFrame) && !errors.Is(err, errBadFrame) {
				t.Fatalf("decodeFrame: unexpected error %v", err)
			}
			return
		}
		if n < frameHeaderSize+bodyFixedSize || n > len(b) {
			t.Fatalf("decodeFrame of %d bytes says the frame is %d bytes", len(b), n)
		}
		if l, err := frameLen(b); err != nil || l != n {
			t.Fatalf("frameLen = %d, %v; decodeFrame said %d", l, err, n)
		}
		if !fr.isRecord() && len(fr.payload) != 0 {
			t.Fatalf("metadata-only frame with a %d-byte payload", len(fr.payload))
		}
		if (fr.flags&flagMeta != 0) != (fr.meta != nil) {
			t.Fatalf("flags %#x but meta %q", fr.flags, fr.meta)
		}
		if (fr.flags&flagTime != 0) != (fr.time > 0) || fr.time < 0 {
			t.Fatalf("flags %#x but time %d", fr.flags, fr.time)
		}
		if re := appendFrame(nil, fr.off, fr.flags, fr.time, fr.meta, fr.payload); !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoded frame differs:\n got %x\nwant %x", re, b[:n])
		}
	})
}

// Modes of FuzzRecover: how the fuzzed bytes become a segment.
const (
	fuzzStoreHeader = 1 << iota // prepend a valid header to the store bytes
	fuzzIndexHeader             // prepend a valid header to the index bytes
	fuzzNoIndex                 // write no index file
	fuzzAfterSealed             // the fuzzed segment follows a valid sealed one
	fuzzTimeIndex               // write the index bytes as the time index too
)

// sealedSegment makes a log of two segments, of records with times and
// without, and returns the files of the first, sealed one (its time index
// too), and the base of the second.
func sealedSegment(t testing.TB) (store, index, timeIndex []byte, next uint64) {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir, quietConfig(t))
	var off uint64
	for ; len(l.cur.Load().segs) < 2; off++ {
		if _, err := l.AppendTimed([]byte("sealed"), int64(off%3)*int64(100+off), record(off)); err != nil {
			t.Fatal(err)
		}
	}
	st := l.cur.Load()
	next = st.segs[1].base
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files := readDirFiles(t, dir)
	return files[storeName(0)], files[indexName(0)], files[timeIndexName(0)], next
}

// readResult is what reading one offset gave: the record or an error.
type readResult struct {
	rec []byte
	err error
}

// checkOffsetForTime checks, on a log recovered from any bytes, that
// OffsetForTime fails only with ErrCorrupt and otherwise returns an offset in
// [LowestOffset, NextOffset] whose record, if any, has a time at or after the
// one asked for.
func checkOffsetForTime(t testing.TB, l *Log) {
	t.Helper()
	probes := []int64{-1, 0, 1, 1 << 62}
	for off := l.LowestOffset(); off < l.NextOffset(); off++ {
		if recs, err := l.ReadRecords(off, 0); err == nil {
			probes = append(probes, recs[0].Time, recs[0].Time+1)
		}
	}
	for _, ts := range probes {
		got, err := l.OffsetForTime(ts)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OffsetForTime(%d): %v, want an offset or ErrCorrupt", ts, err)
			}
			continue
		}
		if got < l.LowestOffset() || got > l.NextOffset() {
			t.Fatalf("OffsetForTime(%d) = %d, outside [%d, %d]", ts, got, l.LowestOffset(), l.NextOffset())
		}
		if got == l.NextOffset() || ts <= 0 {
			continue
		}
		if recs, err := l.ReadRecords(got, 0); err == nil && recs[0].Time < ts {
			t.Fatalf("OffsetForTime(%d) = %d, whose record has time %d", ts, got, recs[0].Time)
		}
	}
}

// readAll reads every offset of l, checking that an error is ErrCorrupt.
func readAll(t testing.TB, l *Log) []readResult {
	t.Helper()
	var res []readResult
	for off := l.LowestOffset(); off < l.NextOffset(); off++ {
		rec, err := l.Read(off)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read(%d) in [%d, %d): %v, want a record or ErrCorrupt", off, l.LowestOffset(), l.NextOffset(), err)
		}
		res = append(res, readResult{rec, err})
		if recs, berr := l.ReadBatch(off, 1<<20); berr != nil {
			if !errors.Is(berr, ErrCorrupt) {
				t.Fatalf("ReadBatch(%d): %v, want records or ErrCorrupt", off, berr)
			}
		} else if err == nil && !bytes.Equal(recs[0], rec) {
			t.Fatalf("ReadBatch(%d) starts with %q, Read gave %q", off, recs[0], rec)
		}
	}
	return res
}

// FuzzRecover writes arbitrary bytes as the active segment's store and index
// and opens the log: Open never panics; it fails with ErrCorrupt, or the log
// it opens reads back the same (records or ErrCorrupt) when opened again, and
// the second Open changes no file.
func FuzzRecover(f *testing.F) {
	sealedStore, sealedIndex, sealedTimes, sealedNext := sealedSegment(f)
	f.Add([]byte{}, []byte{}, byte(fuzzStoreHeader|fuzzIndexHeader))
	f.Add(frameSeeds()[2], []byte{}, byte(fuzzStoreHeader|fuzzNoIndex))
	f.Add(sealedStore, sealedIndex, byte(0))
	f.Add(sealedStore, sealedTimes, byte(fuzzTimeIndex|fuzzNoIndex))
	f.Add(sealedStore, sealedTimes[:len(sealedTimes)-timeEntrySize-3], byte(fuzzTimeIndex|fuzzNoIndex))
	c := DefaultConfig()
	c.MaxStoreBytes = 4 << 10
	c.MaxRecordBytes = 1 << 10
	c.Logger = slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, store, index []byte, mode byte) {
		dir := t.TempDir()
		base := uint64(0)
		if mode&fuzzAfterSealed != 0 {
			base = sealedNext
			writeFile(t, dir, storeName(0), sealedStore)
			writeFile(t, dir, indexName(0), sealedIndex)
			writeFile(t, dir, timeIndexName(0), sealedTimes)
		}
		if mode&fuzzStoreHeader != 0 {
			store = append(appendHeader(nil, storeMagic, base), store...)
		}
		if mode&fuzzTimeIndex != 0 {
			times := index
			if mode&fuzzIndexHeader != 0 {
				times = append(appendHeader(nil, timeIndexMagic, base), index...)
			}
			writeFile(t, dir, timeIndexName(base), times)
		}
		if mode&fuzzIndexHeader != 0 {
			index = append(appendHeader(nil, indexMagic, base), index...)
		}
		writeFile(t, dir, storeName(base), store)
		if mode&fuzzNoIndex == 0 {
			writeFile(t, dir, indexName(base), index)
		}

		l, err := Open(dir, c)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			return
		}
		low, next, meta := l.LowestOffset(), l.NextOffset(), l.Meta()
		first := readAll(t, l)
		checkOffsetForTime(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		files := readDirFiles(t, dir)

		l, err = Open(dir, c)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		defer l.Close()
		if l.LowestOffset() != low || l.NextOffset() != next || !bytes.Equal(l.Meta(), meta) {
			t.Fatalf("second Open: offsets [%d, %d) meta %q, first had [%d, %d) meta %q",
				l.LowestOffset(), l.NextOffset(), l.Meta(), low, next, meta)
		}
		for i, r := range readAll(t, l) {
			if !bytes.Equal(r.rec, first[i].rec) || (r.err == nil) != (first[i].err == nil) {
				t.Fatalf("offset %d: second Open reads %q, %v; first read %q, %v", low+uint64(i), r.rec, r.err, first[i].rec, first[i].err)
			}
		}
		for name, b := range readDirFiles(t, dir) {
			if name != "LOCK" && !bytes.Equal(b, files[name]) {
				t.Fatalf("second Open changed %s", name)
			}
		}
		// The recovered log takes appends.
		if off, err := l.Append([]byte("after")); err != nil || off != next {
			t.Fatalf("Append after recovery = %d, %v; want %d", off, err, next)
		}
		if rec, err := l.Read(next); err != nil || string(rec) != "after" {
			t.Fatalf("Read(%d) after Append = %q, %v", next, rec, err)
		}
	})
}
