package logstore

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

const benchRecordBytes = 256

func benchConfig() Config {
	c := DefaultConfig()
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

func benchRecords(n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = make([]byte, benchRecordBytes)
		for j := range recs[i] {
			recs[i][j] = byte(i + j)
		}
	}
	return recs
}

// BenchmarkAppend compares Append of 256-byte records, one by one and in
// batches, with plain sequential writes of the same bytes to one file, in the
// same run, in files of the same size each fsynced when the next starts.
// MB/s counts record payload bytes.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 1000} {
		recs := benchRecords(batch)
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchAppend(b, batch, func(l *Log, _ int) error {
				_, err := l.Append(recs...)
				return err
			})
		})
		b.Run(fmt.Sprintf("plain-file-write=%d", batch), func(b *testing.B) {
			// The same bytes written with the same discipline as the log: files
			// of MaxStoreBytes, each fsynced when the next one starts.
			dir := b.TempDir()
			maxBytes := benchConfig().MaxStoreBytes
			var f *os.File
			var size int64
			next := func() {
				if f != nil {
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
					f.Close()
				}
				var err error
				if f, err = os.Create(filepath.Join(dir, fmt.Sprint(size))); err != nil {
					b.Fatal(err)
				}
				size = 0
			}
			next()
			defer func() { f.Close() }()
			buf := make([]byte, 0, batch*benchRecordBytes)
			for _, r := range recs {
				buf = append(buf, r...)
			}
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for range b.N {
				if size+int64(len(buf)) > maxBytes {
					next()
				}
				n, err := f.Write(buf)
				if err != nil {
					b.Fatal(err)
				}
				size += int64(n)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkReadBatch reads a log of 256-byte records sequentially in 256 KiB batches.
func BenchmarkReadBatch(b *testing.B) {
	const n = 400_000 // 100 MiB of payload, two segments
	l, err := Open(b.TempDir(), benchConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	recs := benchRecords(1000)
	for range n / len(recs) {
		if _, err := l.Append(recs...); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchRecordBytes)
	b.ResetTimer()
	read, off := 0, uint64(0)
	for read < b.N {
		got, err := l.ReadBatch(off, 256<<10)
		if err != nil {
			b.Fatal(err)
		}
		read += len(got)
		if off += uint64(len(got)); off == n {
			off = 0
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkOpen opens a 1 GiB log of 256-byte records: after a clean close,
// and in the worst state a crash can leave, where the active segment's index
// is lost entirely and its store ends in a torn frame, so the whole active
// segment is scanned and re-indexed.
func BenchmarkOpen(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 1 GiB")
	}
	dir := b.TempDir()
	l, err := Open(dir, benchConfig())
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1000)
	var payload int64
	for payload < 1<<30 {
		if _, err := l.Append(recs...); err != nil {
			b.Fatal(err)
		}
		payload += int64(len(recs) * benchRecordBytes)
	}
	// Leave the active segment almost full, the worst case for a scan.
	for l.cur.Load().active < benchConfig().MaxStoreBytes-300<<10 {
		if _, err := l.Append(recs...); err != nil {
			b.Fatal(err)
		}
	}
	st := l.cur.Load()
	act := st.segs[len(st.segs)-1]
	next := st.next
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("log: %d segments, %d records, active segment %d MiB", len(st.segs), next, st.active>>20)

	open := func(b *testing.B) {
		l, err := Open(dir, benchConfig())
		if err != nil {
			b.Fatal(err)
		}
		if got := l.NextOffset(); got != next {
			b.Fatalf("NextOffset = %d after open, want %d", got, next)
		}
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
	b.Run("clean", func(b *testing.B) {
		for range b.N {
			open(b)
		}
	})
	b.Run("crashed", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			if err := os.Truncate(act.indexPath, 3); err != nil {
				b.Fatal(err)
			}
			f, err := os.OpenFile(act.storePath, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				b.Fatal(err)
			}
			torn := appendFrame(nil, next, flagBatchEnd, 0, nil, recs[0])
			f.Write(torn[:len(torn)/2])
			f.Close()
			b.StartTimer()
			open(b)
		}
	})
}

// benchAppend runs appendOne (the i-th call) b.N times on a fresh log, each a
// batch of batch records.
func benchAppend(b *testing.B, batch int, appendOne func(l *Log, i int) error) {
	l, err := Open(b.TempDir(), benchConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetBytes(int64(batch * benchRecordBytes))
	b.ResetTimer()
	for i := range b.N {
		if err := appendOne(l, i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppendTimed is BenchmarkAppend's Append with AppendTimed, a new
// time each batch.
func BenchmarkAppendTimed(b *testing.B) {
	for _, batch := range []int{1, 1000} {
		recs := benchRecords(batch)
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchAppend(b, batch, func(l *Log, i int) error {
				_, err := l.AppendTimed(nil, int64(1+i), recs...)
				return err
			})
		})
	}
}

// BenchmarkOffsetForTime looks up random times in a log of 400,000 256-byte
// records appended with times in batches of 10 (two segments).
func BenchmarkOffsetForTime(b *testing.B) {
	const n = 400_000
	l, err := Open(b.TempDir(), benchConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	recs := benchRecords(10)
	for i := range n / len(recs) {
		if _, err := l.AppendTimed(nil, int64(1000*(i+1)), recs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		ts := int64(1000 + (i*7919)%(n/len(recs)*1000))
		off, err := l.OffsetForTime(ts)
		if err != nil || off >= n {
			b.Fatalf("OffsetForTime(%d) = %d, %v", ts, off, err)
		}
	}
}
