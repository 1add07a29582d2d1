package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

func TestResolveFrom(t *testing.T) {
	tests := []struct {
		name         string
		from         int64
		lowest, next uint64
		want         uint64
	}{
		{"absolute", 5, 0, 10, 5},
		{"last three", -3, 0, 10, 7},
		{"more than retained", -30, 4, 10, 4},
		{"below retained", 2, 4, 10, 4},
		{"empty log", -1, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolveFrom(tt.from, tt.lowest, tt.next); got != tt.want {
				t.Fatalf("resolveFrom(%d, %d, %d) = %d, want %d", tt.from, tt.lowest, tt.next, got, tt.want)
			}
		})
	}
}

func TestRecordWriterGolden(t *testing.T) {
	recs := []*logv1.Record{{Offset: 7, Value: []byte("héllo")}, {Offset: 8, Value: []byte{0xff, 0x00}, Timestamp: 1_796_216_400_000_000_123}, {Offset: 9, Value: []byte("\x1b[31mred\\\r\n\u0085")}}
	tests := []struct {
		name, format string
		delim        string
		terminal     bool
		want         string
	}{
		{"text", "text", "\n", false, "7\théllo\n8\t\xff\x00\n9\t\x1b[31mred\\\r\n\u0085\n"},
		{"text on a terminal", "text", "\n", true, "7\théllo\n8\t\\xff\\x00\n9\t\\x1b[31mred\\\\\\r\\n\\u0085\n"},
		{"raw", "raw", "\n", true, "héllo\n\xff\x00\n\x1b[31mred\\\r\n\u0085\n"},
		{"raw NUL", "raw", "\x00", false, "héllo\x00\xff\x00\x00\x1b[31mred\\\r\n\u0085\x00"},
		{"json", "json", "\n", true, `{"offset":7,"value":"héllo"}` + "\n" + `{"offset":8,"time":"2026-12-02T13:00:00.000000123Z","value":"/wA=","encoding":"base64"}` + "\n" + `{"offset":9,"value":"\u001b[31mred\\\r\n` + "\u0085" + `"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := recordWriter(tt.format, []byte(tt.delim), tt.terminal)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			for _, r := range recs {
				if err := w(&b, r); err != nil {
					t.Fatal(err)
				}
			}
			if b.String() != tt.want {
				t.Fatalf("%s output = %q, want %q", tt.format, b.String(), tt.want)
			}
		})
	}
	if _, err := recordWriter("yaml", nil, false); ExitCode(err) != ExitUsage {
		t.Fatalf("unknown format: %v, want a usage error", err)
	}
}

// rawRecords returns records of random bytes other than NUL (so that
// `produce -0` splits a file of them back into the same records) that are
// hard on raw output: newlines (the default delimiter) and CRs in most,
// an empty one, and a few of hundreds of KiB, so that together they fill
// consume's output buffer several times over and end part way through it.
func rawRecords(r *rand.Rand) [][]byte {
	var recs [][]byte
	for i := range 2_000 {
		n := r.IntN(300)
		switch {
		case i == 7:
			n = 0
		case i%200 == 3:
			n = 250_000 + r.IntN(200_000)
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(1 + r.UintN(255))
			if r.IntN(20) == 0 {
				b[j] = '\n'
			}
		}
		recs = append(recs, b)
	}
	recs = append(recs, []byte("the last record\n\r\n"))
	return recs
}

// joinRecords is recs[:n], each followed by delim.
func joinRecords(recs [][]byte, n int, delim string) string {
	var b strings.Builder
	for _, r := range recs[:n] {
		b.Write(r)
		b.WriteString(delim)
	}
	return b.String()
}

// TestConsumeRawExact reads records back with consume -o raw: the output is
// every value and its delimiter byte for byte (values that hold the
// delimiter too), to the last record, whether the read ends at the end of
// the log, at --count, or is following and interrupted once everything
// was printed. Several MiB go through the output buffer, ending part way
// through it.
func TestConsumeRawExact(t *testing.T) {
	recs := produceRawRecords(t, rand.New(rand.NewPCG(3, 4)))
	all := len(recs)
	if total := len(joinRecords(recs, all, "\n")); total < 3*outputBufferBytes || total%outputBufferBytes == 0 {
		t.Fatalf("the records make %d bytes of output: want several output buffers and a part of one", total)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"to the end", []string{"--from", "0"}, joinRecords(recs, all, "\n")},
		{"every retained record", nil, joinRecords(recs, all, "\n")},
		{"count", []string{"--from", "0", "--count", "1203"}, joinRecords(recs, 1203, "\n")},
		{"to", []string{"--to", "1601"}, joinRecords(recs, 1601, "\n")},
		{"NUL", []string{"-0"}, joinRecords(recs, all, "\x00")},
		{"two-byte delimiter", []string{"--delimiter", `\r\n`}, joinRecords(recs, all, "\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustRun(t, "", append([]string{"consume", "-o", "raw"}, tc.args...)...)
			if got != tc.want {
				t.Fatalf("consume -o raw %v printed %d bytes that differ from the %d expected (first difference at byte %d)", tc.args, len(got), len(tc.want), firstDifference(got, tc.want))
			}
		})
	}

	t.Run("follow", func(t *testing.T) {
		want := joinRecords(recs, all, "\n")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out, errOut := newSyncBuffer(), newSyncBuffer()
		done := make(chan error, 1)
		go func() {
			m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: errOut}
			done <- m.Run(ctx, []string{"proglogctl", "consume", "--from", "0", "--follow", "-o", "raw"})
		}()
		// Written while following, before any interrupt: each batch is
		// flushed as it arrives.
		waitFor(t, 30*time.Second, fmt.Sprintf("consume --follow to print the %d bytes of every record", len(want)), func() bool {
			return len(out.String()) >= len(want)
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("consume --follow: %v\n%s", err, errOut.String())
		}
		if got := out.String(); got != want {
			t.Fatalf("consume --follow -o raw printed %d bytes that differ from the %d expected (first difference at byte %d)", len(got), len(want), firstDifference(got, want))
		}
		if m := nextOffsetRE.FindStringSubmatch(errOut.String()); m == nil || m[1] != strconv.Itoa(all) {
			t.Fatalf("consume --follow said %q on stderr, want next offset %d", errOut.String(), all)
		}
	})
}

// firstDifference is the index of the first byte where a and b differ (the
// shorter one's length when one is a prefix of the other).
func firstDifference(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// brokenPipe is a stdout whose reader went away after limit bytes: every
// write after that fails with EPIPE, as a write to a closed pipe does.
type brokenPipe struct {
	limit int
	n     int
}

func (p *brokenPipe) Write(b []byte) (int, error) {
	if p.n+len(b) > p.limit {
		n := max(p.limit-p.n, 0)
		p.n += n
		return n, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.EPIPE}
	}
	p.n += len(b)
	return len(b), nil
}

// produceRawRecords starts a dev cluster of one node and produces
// rawRecords(rnd) to it with produce -0 --file.
func produceRawRecords(t *testing.T, rnd *rand.Rand) [][]byte {
	t.Helper()
	startDev(t, 1)
	recs := rawRecords(rnd)
	path := filepath.Join(t.TempDir(), "records")
	if err := os.WriteFile(path, []byte(joinRecords(recs, len(recs), "\x00")), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", "produce", "-q", "-0", "--file", path)
	return recs
}

// TestConsumeBrokenPipe: a consume whose stdout fails (its reader went
// away) ends at once with the write's error, exit code 1, reading or
// following.
func TestConsumeBrokenPipe(t *testing.T) {
	produceRawRecords(t, rand.New(rand.NewPCG(5, 6)))
	for _, tc := range []struct {
		name  string
		args  []string
		limit int
	}{
		{"read, at once", nil, 0},
		{"read, after a few buffers", nil, 2*outputBufferBytes + 1},
		{"follow, at once", []string{"--follow"}, 0},
		{"follow, after a few batches", []string{"--follow"}, 2*outputBufferBytes + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errOut bytes.Buffer
			out := &brokenPipe{limit: tc.limit}
			m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: &errOut}
			err := m.Run(nodetest.Context(t), append([]string{"proglogctl", "consume", "--from", "0", "-o", "raw"}, tc.args...))
			if !errors.Is(err, syscall.EPIPE) || ExitCode(err) != ExitError {
				t.Fatalf("consume to a broken pipe: %v (exit %d), want EPIPE and exit %d\n%s", err, ExitCode(err), ExitError, errOut.String())
			}
			if out.n != tc.limit {
				t.Fatalf("%d bytes reached the pipe, want the %d it took", out.n, tc.limit)
			}
		})
	}
}

// BenchmarkConsumeRaw runs `consume -o raw` of 200,000 records of 256 bytes
// (written with produce --file) against a dev cluster of one node in this
// process, output discarded: the client's read and write path, with the
// server beside it. Compare runs with benchstat; -cpuprofile with
// -focus 'commands|discovery' shows the client's part.
func BenchmarkConsumeRaw(b *testing.B) {
	const n, size = 200_000, 256
	startDev(b, 1)
	var file bytes.Buffer
	line := bytes.Repeat([]byte{'x'}, size)
	for i := range n {
		copy(line, strconv.Itoa(i))
		file.Write(line)
		file.WriteByte('\n')
	}
	path := filepath.Join(b.TempDir(), "records")
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	mustRun(b, "", "produce", "-q", "--file", path)
	b.SetBytes(int64(file.Len()))
	b.ResetTimer()
	for b.Loop() {
		var out countingWriter
		m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard}
		if err := m.Run(context.Background(), []string{"proglogctl", "consume", "--from", "0", "--count", strconv.Itoa(n), "-o", "raw"}); err != nil {
			b.Fatal(err)
		}
		if out.n != int64(file.Len()) {
			b.Fatalf("consume printed %d bytes, want %d", out.n, file.Len())
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// countingWriter counts the bytes written to it and drops them.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
