package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
)

// concurrentRecords is how many records the writer of a concurrency test
// appends.
func concurrentRecords() uint64 {
	if testing.Short() {
		return 2000
	}
	return 6000
}

// group runs a test's goroutines; the first failure cancels ctx so that the
// others stop waiting.
type group struct {
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func newGroup(t testing.TB) *group {
	t.Helper()
	g := &group{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	t.Cleanup(g.cancel)
	return g
}

// goErr runs f in a goroutine and reports its error with t.Error.
func (g *group) goErr(t testing.TB, name string, f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			t.Errorf("%s: %v", name, err)
			g.cancel()
		}
	}()
}

// writeRecords appends record(off) for off in [NextOffset, total) in batches
// of random size.
func writeRecords(l *Log, rng *rand.Rand, total uint64) error {
	for off := l.NextOffset(); off < total; {
		batch := make([][]byte, min(1+rng.Uint64N(20), total-off))
		for i := range batch {
			batch[i] = record(off + uint64(i))
		}
		first, err := l.Append(batch...)
		if err != nil {
			return err
		}
		if first != off {
			return fmt.Errorf("Append returned %d, want %d", first, off)
		}
		off += uint64(len(batch))
	}
	return nil
}

// checkServed checks records that a read of off returned.
func checkServed(off uint64, recs ...[]byte) error {
	for i, r := range recs {
		if want := record(off + uint64(i)); !bytes.Equal(r, want) {
			return fmt.Errorf("read of %d: record %d is %.40q, want %.40q", off, off+uint64(i), r, want)
		}
	}
	return nil
}

// follow reads the log from off to total as a consumer does, waiting for each
// offset, with Read or ReadBatch at random. An offset dropped by retention
// (an OutOfRangeError below Lowest) makes it go on from Lowest when allowed;
// any other error is returned.
func follow(ctx context.Context, l *Log, rng *rand.Rand, total uint64, retained bool) (skipped uint64, err error) {
	for off := uint64(0); off < total; {
		if err := l.Wait(ctx, off); err != nil {
			return skipped, fmt.Errorf("Wait(%d): %w", off, err)
		}
		var recs [][]byte
		if rng.IntN(3) == 0 {
			var r []byte
			if r, err = l.Read(off); err == nil {
				recs = [][]byte{r}
			}
		} else {
			recs, err = l.ReadBatch(off, rng.IntN(8<<10))
		}
		var oor *OutOfRangeError
		switch {
		case err == nil:
			if err := checkServed(off, recs...); err != nil {
				return skipped, err
			}
			off += uint64(len(recs))
		case retained && errors.As(err, &oor) && oor.Off == off && off < oor.Lowest && oor.Lowest <= oor.Next:
			skipped += oor.Lowest - off
			off = oor.Lowest
		default:
			return skipped, fmt.Errorf("read of %d (readable since Wait returned): %w", off, err)
		}
	}
	return skipped, nil
}

func TestConcurrentReadersWriter(t *testing.T) {
	seed := testSeed(t)
	l := openLog(t, t.TempDir(), quietConfig(t))
	total := concurrentRecords()
	g := newGroup(t)
	g.goErr(t, "writer", func() error { return writeRecords(l, seededRand(seed), total) })
	// Sync runs beside the appends, woken by them.
	g.goErr(t, "syncer", func() error {
		for off := uint64(0); off < total; off += 97 {
			if err := l.Wait(g.ctx, off); err != nil {
				return err
			}
			if err := l.Sync(); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range 4 {
		rng := seededRand(seed + uint64(i) + 1)
		g.goErr(t, fmt.Sprintf("reader %d", i), func() error {
			_, err := follow(g.ctx, l, rng, total, false)
			return err
		})
	}
	g.wg.Wait()
	if t.Failed() {
		return
	}
	checkRecordsBatched(t, l, 0, total)
	// A reader waiting past the end is released by Close.
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), total) }()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait across Close: %v, want ErrClosed", err)
	}
}

// TestConcurrentRetention has retention drop segments while readers follow
// the log, read at random offsets, and checkpoints are taken: every read gives
// the right records or an OutOfRangeError below the lowest offset.
func TestConcurrentRetention(t *testing.T) {
	seed := testSeed(t)
	c := quietConfig(t)
	c.RetainBytes = 12 << 10
	l := openLog(t, t.TempDir(), c)
	total := concurrentRecords()
	g := newGroup(t)
	writerDone := make(chan struct{})
	g.goErr(t, "writer", func() error {
		defer close(writerDone)
		return writeRecords(l, seededRand(seed), total)
	})
	// A follower from the start, and one that starts late: its first offsets
	// are gone.
	for i, start := range []uint64{0, total / 3} {
		rng := seededRand(seed + uint64(i) + 1)
		g.goErr(t, fmt.Sprintf("follower %d", i), func() error {
			if err := l.Wait(g.ctx, start); err != nil {
				return err
			}
			skipped, err := follow(g.ctx, l, rng, total, true)
			t.Logf("follower %d, started when offset %d was written: %d records dropped before it read them", i, start, skipped)
			if err == nil && start > 0 && skipped == 0 {
				err = fmt.Errorf("started after offset %d was written, yet read every record from 0", start)
			}
			return err
		})
	}
	// Readers of the oldest records, the ones the next roll drops, until the
	// writer is done.
	for i := range 2 {
		rng := seededRand(seed + uint64(i) + 10)
		g.goErr(t, fmt.Sprintf("oldest-records reader %d", i), func() error {
			reads, outOfRange, lowest := 0, 0, uint64(0)
			for ; ; reads++ {
				select {
				case <-writerDone:
					t.Logf("oldest-records reader %d: %d reads, %d found their offset dropped", i, reads, outOfRange)
					return nil
				default:
				}
				low, next := l.LowestOffset(), l.NextOffset()
				if low < lowest {
					return fmt.Errorf("LowestOffset went back from %d to %d", lowest, low)
				}
				lowest = low
				if next == low {
					continue
				}
				off := low + rng.Uint64N(min(next-low, 64))
				recs, err := l.ReadBatch(off, rng.IntN(4<<10))
				var oor *OutOfRangeError
				switch {
				case err == nil:
					if err := checkServed(off, recs...); err != nil {
						return err
					}
				case errors.As(err, &oor) && oor.Off == off && off < oor.Lowest && oor.Lowest >= low:
					outOfRange++ // dropped since LowestOffset was read
				default:
					return fmt.Errorf("ReadBatch(%d) with offsets [%d, %d) just before: %w", off, low, next, err)
				}
			}
		})
	}
	// Checkpoints taken while the writer appends and retention drops hold a
	// consistent log.
	checkpoints := make([]string, 4)
	for i := range checkpoints {
		checkpoints[i] = filepath.Join(t.TempDir(), "checkpoint")
	}
	g.goErr(t, "checkpointer", func() error {
		for i, dir := range checkpoints {
			if err := l.Wait(g.ctx, uint64(i+1)*total/uint64(len(checkpoints)+1)); err != nil {
				return err
			}
			if err := l.Checkpoint(dir); err != nil {
				return err
			}
		}
		return nil
	})
	g.wg.Wait()
	if t.Failed() {
		return
	}
	if l.LowestOffset() == 0 {
		t.Fatal("retention dropped nothing")
	}
	checkRecordsBatched(t, l, l.LowestOffset(), total)
	for _, dir := range checkpoints {
		cp := openLog(t, dir, c)
		low, next := cp.LowestOffset(), cp.NextOffset()
		if next <= low {
			t.Fatalf("checkpoint holds offsets [%d, %d)", low, next)
		}
		checkRecordsBatched(t, cp, low, next)
		checkNothingPast(t, cp, next)
		cp.Close()
	}
}
