package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testConfig is DefaultConfig with small segments and logs sent to t.Log.
func testConfig(t testing.TB) Config {
	t.Helper()
	c := DefaultConfig()
	c.MaxStoreBytes = 4 << 10
	c.MaxRecordBytes = 1 << 10
	c.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return c
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func openLog(t testing.TB, dir string, c Config) *Log {
	t.Helper()
	l, err := Open(dir, c)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// newTestLog opens a log of testConfig in a new temporary directory.
func newTestLog(t testing.TB) (l *Log, dir string, c Config) {
	t.Helper()
	dir, c = t.TempDir(), testConfig(t)
	return openLog(t, dir, c), dir, c
}

func record(i uint64) []byte {
	return fmt.Appendf(nil, "record-%06d-%s", i, bytes.Repeat([]byte{'x'}, int(i%97)))
}

func appendN(t testing.TB, l *Log, from, n uint64) {
	t.Helper()
	for i := from; i < from+n; i++ {
		off, err := l.Append(record(i))
		if err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		if off != i {
			t.Fatalf("Append(%d) got offset %d", i, off)
		}
	}
}

func checkRecords(t testing.TB, l *Log, from, to uint64) {
	t.Helper()
	for i := from; i < to; i++ {
		got, err := l.Read(i)
		if err != nil {
			t.Fatalf("Read(%d): %v", i, err)
		}
		if want := record(i); !bytes.Equal(got, want) {
			t.Fatalf("Read(%d) = %q, want %q", i, got, want)
		}
	}
}

func TestAppendReadReopen(t *testing.T) {
	l, dir, c := newTestLog(t)
	appendN(t, l, 0, 500)
	if got := l.NextOffset(); got != 500 {
		t.Fatalf("NextOffset = %d, want 500", got)
	}
	checkRecords(t, l, 0, 500)
	if n := len(l.cur.Load().segs); n < 5 {
		t.Fatalf("%d segments after 500 records of 4 KiB segments, want several", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := l.Read(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}

	l2 := openLog(t, dir, c)
	if got := l2.NextOffset(); got != 500 {
		t.Fatalf("NextOffset after reopen = %d, want 500", got)
	}
	checkRecords(t, l2, 0, 500)
	appendN(t, l2, 500, 10)
	checkRecords(t, l2, 0, 510)
}

func TestReadBatch(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig(t))
	appendN(t, l, 0, 300)
	var next uint64
	for next < 300 {
		recs, err := l.ReadBatch(next, 1000)
		if err != nil {
			t.Fatalf("ReadBatch(%d): %v", next, err)
		}
		for j, r := range recs {
			if want := record(next + uint64(j)); !bytes.Equal(r, want) {
				t.Fatalf("ReadBatch(%d)[%d] = %q, want %q", next, j, r, want)
			}
		}
		next += uint64(len(recs))
	}
	if _, err := l.ReadBatch(300, 1000); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("ReadBatch at the end: %v, want ErrOffsetOutOfRange", err)
	}
}

func TestMetaSurvivesReopenAndRoll(t *testing.T) {
	l, dir, c := newTestLog(t)
	for i := uint64(0); i < 200; i++ {
		if _, err := l.AppendWithMeta(fmt.Appendf(nil, "applied=%d", i), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, l, 200, 50) // plain appends keep the metadata
	l.Close()
	l = openLog(t, dir, c)
	if got := string(l.Meta()); got != "applied=199" {
		t.Fatalf("Meta after reopen = %q, want applied=199", got)
	}
	if _, err := l.AppendWithMeta([]byte("only-meta")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, dir, c)
	if got := string(l.Meta()); got != "only-meta" {
		t.Fatalf("Meta after metadata-only append = %q", got)
	}
	checkRecords(t, l, 0, 250)
}

func TestBadInput(t *testing.T) {
	l, dir, c := newTestLog(t)
	appendN(t, l, 0, 3)
	big := make([]byte, c.MaxRecordBytes+1)
	_, err := l.Append([]byte("ok"), big)
	var tooLarge *RecordTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Index != 1 || !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("Append(oversize) = %v, want RecordTooLargeError for record 1", err)
	}
	if got := l.NextOffset(); got != 3 {
		t.Fatalf("oversize batch changed NextOffset to %d", got)
	}
	for _, off := range []uint64{3, 1 << 40, ^uint64(0)} {
		_, err := l.Read(off)
		var oor *OutOfRangeError
		if !errors.As(err, &oor) || oor.Lowest != 0 || oor.Next != 3 {
			t.Fatalf("Read(%d) = %v, want OutOfRangeError{Lowest 0, Next 3}", off, err)
		}
	}

	if _, err := Open(dir, c); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of the same dir: %v, want ErrLocked", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Open(file, c); err == nil {
		t.Fatal("Open of a regular file succeeded")
	}
	bad := c
	bad.MaxStoreBytes = 1
	if _, err := Open(t.TempDir(), bad); err == nil {
		t.Fatal("Open with MaxStoreBytes 1 succeeded")
	}
}

func TestWait(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig(t))
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), 2) }()
	appendN(t, l, 0, 2)
	select {
	case err := <-done:
		t.Fatalf("Wait(2) returned %v with only offsets 0..1 written", err)
	default:
	}
	appendN(t, l, 2, 1)
	if err := <-done; err != nil {
		t.Fatalf("Wait(2): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- l.Wait(ctx, 10) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v", err)
	}
	go func() { done <- l.Wait(context.Background(), 10) }()
	l.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait across Close: %v", err)
	}
}

func TestRetention(t *testing.T) {
	c := testConfig(t)
	c.RetainBytes = 16 << 10
	l := openLog(t, t.TempDir(), c)
	appendN(t, l, 0, 2000)
	low := l.LowestOffset()
	if low == 0 {
		t.Fatal("retention by size dropped nothing")
	}
	if _, err := l.Read(low - 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read below lowest: %v", err)
	}
	checkRecords(t, l, low, 2000)

	c.RetainBytes, c.RetainAge = 0, time.Hour
	dir := t.TempDir()
	l2 := openLog(t, dir, c)
	now := time.Unix(1_000_000, 0)
	l2.now = func() time.Time { return now }
	appendN(t, l2, 0, 200)
	now = now.Add(2 * time.Hour)
	if err := l2.Retain(); err != nil {
		t.Fatal(err)
	}
	if n := len(l2.cur.Load().segs); n != 1 || l2.LowestOffset() == 0 {
		t.Fatalf("age retention kept %d segments (lowest offset %d), want only the active one", n, l2.LowestOffset())
	}
	checkRecords(t, l2, l2.LowestOffset(), 200)
}

func TestCheckpointReplace(t *testing.T) {
	c := testConfig(t)
	l := openLog(t, t.TempDir(), c)
	for i := uint64(0); i < 300; i++ {
		l.AppendWithMeta(fmt.Appendf(nil, "%d", i), record(i))
	}
	cp := filepath.Join(t.TempDir(), "cp")
	if err := l.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 300, 10) // after the checkpoint: not in it

	other := openLog(t, t.TempDir(), c)
	appendN(t, other, 0, 5)
	if err := other.Replace(cp); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if got := other.NextOffset(); got != 300 {
		t.Fatalf("NextOffset after Replace = %d, want 300", got)
	}
	if got := string(other.Meta()); got != "299" {
		t.Fatalf("Meta after Replace = %q, want 299", got)
	}
	checkRecords(t, other, 0, 300)
	if _, err := os.Stat(cp); !os.IsNotExist(err) {
		t.Fatalf("checkpoint dir still there after Replace: %v", err)
	}
	appendN(t, other, 300, 5)
	checkRecords(t, other, 0, 305)
}

// A failed write makes the log refuse appends with the first error, and what
// was appended before it stays readable and survives a reopen.
func TestWriteErrorsAreSticky(t *testing.T) {
	l, dir, c := newTestLog(t)
	appendN(t, l, 0, 10)
	// Fault injection: the active store's file is closed under the writer.
	st := l.cur.Load()
	st.segs[len(st.segs)-1].store.Close()
	_, err := l.Append(record(10))
	if err == nil {
		t.Fatal("Append on a failed file succeeded")
	}
	if _, err2 := l.Append(record(10)); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second Append = %v, want the first error again (%v)", err2, err)
	}
	if err2 := l.Sync(); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("Sync = %v, want the first error again", err2)
	}
	if got := l.NextOffset(); got != 10 {
		t.Fatalf("NextOffset = %d after a failed append, want 10", got)
	}
	l.Close()
	l = openLog(t, dir, c)
	if got := l.NextOffset(); got != 10 {
		t.Fatalf("NextOffset after reopen = %d, want 10", got)
	}
	checkRecords(t, l, 0, 10)
}

func TestOpenFailsCleanlyWhereNoDirectoryCanBe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "log"), testConfig(t)); err == nil || !strings.Contains(err.Error(), "file/log") {
		t.Fatalf("Open beneath a regular file = %v, want an error naming the path", err)
	}
}

// TestActiveStoreBlocksAreReserved: the active store's blocks are reserved
// ahead of its end without changing its size, and what a segment did not
// use is given back when it is sealed and when the log closes, with every
// record as written.
func TestActiveStoreBlocksAreReserved(t *testing.T) {
	dir := t.TempDir()
	if err := canReserve(dir); err != nil {
		t.Skipf("the file system of %s cannot reserve blocks: %v", dir, err)
	}
	c := testConfig(t)
	c.MaxStoreBytes = 2 * reserveChunk
	l := openLog(t, dir, c)
	// allocated returns a store's size and the bytes of its blocks.
	allocated := func(base uint64) (size, blocks int64) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, segmentName(base)+storeExt), &st); err != nil {
			t.Fatal(err)
		}
		return st.Size, st.Blocks * 512
	}
	const slack = 64 << 10 // a file system may round up to blocks of its own
	var next uint64
	appendBatch := func(n int) {
		t.Helper()
		batch := make([][]byte, n)
		for i := range batch {
			batch[i] = record(next + uint64(i))
		}
		first, err := l.Append(batch...)
		if err != nil || first != next {
			t.Fatalf("Append of %d at %d: first %d, %v", n, next, first, err)
		}
		next += uint64(n)
	}

	appendBatch(100)
	if size, blocks := allocated(0); blocks < reserveChunk || size > slack {
		t.Fatalf("after one small batch the store is %d bytes with %d bytes of blocks, want its blocks reserved %d bytes ahead", size, blocks, reserveChunk)
	}
	// Past the first chunk, so that the reserve reaches the segment's limit,
	// then a batch too large for what is left seals the segment half full.
	for size, _ := allocated(0); size < reserveChunk+slack; size, _ = allocated(0) {
		appendBatch(100)
	}
	sealed := next
	appendBatch(60_000)
	if n := l.Stats().Segments; n != 2 {
		t.Fatalf("%d segments, want the large batch to have sealed the first", n)
	}
	if size, blocks := allocated(0); blocks > size+slack {
		t.Errorf("sealed store: %d bytes with %d bytes of blocks, want its reserve given back", size, blocks)
	}
	appendBatch(100)
	if size, blocks := allocated(sealed); blocks < size+reserveChunk/2 {
		t.Errorf("the new active store is %d bytes with %d bytes of blocks, want blocks reserved ahead", size, blocks)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if size, blocks := allocated(sealed); blocks > size+slack {
		t.Errorf("active store after Close: %d bytes with %d bytes of blocks, want its reserve given back", size, blocks)
	}
	l = openLog(t, dir, c)
	checkRecords(t, l, 0, next)
}

// canReserve reports whether the file system of dir reserves blocks.
func canReserve(dir string) error {
	f, err := os.CreateTemp(dir, "reserve")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 1<<20)
}
