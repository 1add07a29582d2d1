package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// writeFault fails the next append's writes through the Log's file seam:
// storeBytes, indexBytes and timeBytes are how many bytes of each write to
// the store, the index and the time index reach the file before ENOSPC (-1:
// the whole write, and no error for that file).
type writeFault struct {
	storeBytes, indexBytes, timeBytes int
	on                                bool
}

func (w *writeFault) install(l *Log) {
	l.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		if !w.on {
			return f.WriteAt(b, off)
		}
		keep := w.indexBytes
		switch {
		case bytes.HasSuffix([]byte(f.Name()), []byte(storeExt)):
			keep = w.storeBytes
		case bytes.HasSuffix([]byte(f.Name()), []byte(timeIndexExt)):
			keep = w.timeBytes
		}
		if keep < 0 || keep >= len(b) {
			return f.WriteAt(b, off)
		}
		n, err := f.WriteAt(b[:keep], off)
		if err != nil {
			return n, err
		}
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
}

func metaOf(next uint64) []byte { return fmt.Appendf(nil, "next=%d", next) }

// A write that fails (the disk is full) makes the log refuse appends with
// that error; Recover brings it back with a tail of whole batches, and
// appends work again without reopening. What the failed batch left in the
// files decides whether it is kept: only whole, with its time.
func TestRecoverAfterFailedWrite(t *testing.T) {
	const batch = 5 // records in the batch whose write fails
	for _, tc := range []struct {
		name                              string
		storeBytes, indexBytes, timeBytes int
		kept                              bool // the failed batch survives Recover
	}{
		{"nothing written", 0, -1, -1, false},
		{"torn in the first frame", 7, -1, -1, false},
		{"torn in the last frame", -2, -1, -1, false}, // all but the last 3 bytes
		{"store whole, index not written", -1, 0, -1, true},
		{"store whole, index torn", -1, 13, -1, true},
		{"store and index whole, time index not written", -1, -1, 0, true},
		{"store and index whole, time index torn", -1, -1, 7, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, dir, c := newTestLog(t)
			var fault writeFault
			fault.install(l)
			// Enough to have sealed segments behind the active one; batches
			// with time, and without.
			var times []int64
			batchTime := func(off uint64) int64 { return int64(min(off%3, 1)) * int64(1000+off) }
			for off := uint64(0); off < 100; off += 4 {
				if _, err := l.AppendTimed(metaOf(off+4), batchTime(off), record(off), record(off+1), record(off+2), record(off+3)); err != nil {
					t.Fatal(err)
				}
				times = append(times, batchTime(off), batchTime(off), batchTime(off), batchTime(off))
			}
			if len(l.cur.Load().segs) < 2 {
				t.Fatal("want sealed segments before the failure")
			}

			recs := make([][]byte, batch)
			size := 0
			for i := range recs {
				recs[i] = record(100 + uint64(i))
				size += frameSize(len(recs[i]), nil)
			}
			fault.storeBytes, fault.indexBytes, fault.timeBytes, fault.on = tc.storeBytes, tc.indexBytes, tc.timeBytes, true
			if tc.storeBytes == -2 {
				fault.storeBytes = size + metaOverhead(metaOf(105)) + batch*timeSize - 3
			}
			_, err := l.AppendTimed(metaOf(100+batch), 5000, recs...)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("AppendTimed with a failing write = %v, want ENOSPC", err)
			}
			fault.on = false
			if _, err2 := l.Append(record(100)); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("Append after the failure = %v, want the first error again (%v)", err2, err)
			}
			if got := l.Err(); got == nil || got.Error() != err.Error() {
				t.Fatalf("Err = %v, want %v", got, err)
			}
			// Readers are not affected by a failed write.
			checkRecords(t, l, 0, 100)

			if err := l.Recover(); err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if err := l.Err(); err != nil {
				t.Fatalf("Err after Recover = %v, want nil", err)
			}
			next, meta := uint64(100), metaOf(100)
			if tc.kept {
				next, meta = 100+batch, metaOf(100+batch)
				times = append(times, 5000, 5000, 5000, 5000, 5000)
			}
			if got := l.NextOffset(); got != next {
				t.Fatalf("NextOffset after Recover = %d, want %d", got, next)
			}
			if got := l.Meta(); !bytes.Equal(got, meta) {
				t.Fatalf("Meta after Recover = %q, want %q", got, meta)
			}
			checkRecords(t, l, 0, next)
			checkTimes(t, l, 0, times)
			if _, err := l.Read(next); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("Read(%d) past the recovered end = %v, want out of range", next, err)
			}

			// Appends work again, at the recovered end, through a roll.
			appendN(t, l, next, 60)
			if err := l.Sync(); err != nil {
				t.Fatalf("Sync after Recover: %v", err)
			}
			checkRecords(t, l, 0, next+60)
			if err := l.Recover(); err != nil {
				t.Fatalf("Recover of a healthy log: %v", err)
			}
			if got := l.NextOffset(); got != next+60 {
				t.Fatalf("NextOffset after a Recover with nothing to do = %d, want %d", got, next+60)
			}

			// What Recover made is what Open finds.
			l.Close()
			l = openLog(t, dir, c)
			if got := l.NextOffset(); got != next+60 {
				t.Fatalf("NextOffset after reopen = %d, want %d", got, next+60)
			}
			checkRecords(t, l, 0, next+60)
			checkTimes(t, l, 0, append(times, make([]int64, 60)...))
		})
	}
}

// A reader that loaded the state before the failure reads on through
// Recover, and a waiter wakes when the recovered log grows.
func TestRecoverKeepsReadersAndWaiters(t *testing.T) {
	c := testConfig(t)
	l := openLog(t, t.TempDir(), c)
	var fault writeFault
	fault.install(l)
	appendN(t, l, 0, 20)
	old := l.cur.Load()
	act := old.segs[len(old.segs)-1]
	if !act.acquire() {
		t.Fatal("cannot hold the active segment")
	}
	defer act.release()

	fault.storeBytes, fault.indexBytes, fault.timeBytes, fault.on = 3, -1, -1, true
	if _, err := l.Append(record(20)); err == nil {
		t.Fatal("Append with a failing write succeeded")
	}
	fault.on = false
	waitErr := make(chan error, 1)
	go func() { waitErr <- l.Wait(t.Context(), 20) }()
	if err := l.Recover(); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	// The segment loaded before Recover is still open and reads the same.
	recs, err := readSegment(act, uint32(20-act.base-1), uint32(20-act.base), old.active, 0, 1)
	if err != nil || !bytes.Equal(recs[0].Value, record(19)) {
		t.Fatalf("reading the pre-Recover segment: %+v, %v", recs, err)
	}
	appendN(t, l, 20, 1)
	if err := <-waitErr; err != nil {
		t.Fatalf("Wait across Recover: %v", err)
	}
}
