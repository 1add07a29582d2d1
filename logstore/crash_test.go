package logstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash test runs the test binary again as a child that appends to a log
// until it is killed with SIGKILL.
const (
	crashChildEnv = "LOGSTORE_CRASH_CHILD_DIR" // the child's log directory; set only in the child
	crashSeedEnv  = "LOGSTORE_CRASH_CHILD_SEED"
)

// crashConfig has small segments, so the child rolls one every few batches.
func crashConfig(logger *slog.Logger) Config {
	c := DefaultConfig()
	c.MaxStoreBytes = 4 << 10
	c.MaxRecordBytes = 1 << 10
	c.Logger = logger
	return c
}

// crashBatches replays the batch sizes a child run with seed appends.
type crashBatches struct{ rng *rand.Rand }

func newCrashBatches(seed uint64) crashBatches { return crashBatches{seededRand(seed)} }

func (b crashBatches) next() int { return 1 + b.rng.IntN(12) }

// crashMeta is the metadata the child stores with the batch that ends at next.
func crashMeta(next uint64) []byte { return fmt.Appendf(nil, "next=%d", next) }

// crashTime is the time the child stamps the batch that starts at off with:
// growing with the offset, but going back now and then (the log raises it)
// and now and then none.
func crashTime(off uint64) int64 {
	switch {
	case off%7 == 3:
		return 0
	case off%5 == 1:
		return int64(1_000_000+off*10) - 300
	}
	return int64(1_000_000 + off*10)
}

// crashTimes notes the times the records of the batch [off, off+n) get,
// stamped with crashTime(off) after records up to latest.
func crashTimes(times []int64, latest *int64, off uint64, n int) []int64 {
	ts := crashTime(off)
	if ts != 0 {
		ts = max(ts, *latest)
		*latest = ts
	}
	for range n {
		times = append(times, ts)
	}
	return times
}

// TestCrashChild is the child of TestCrash; it does nothing in a normal run.
// From the log's next offset on it appends batches of record(off) with
// crashMeta and crashTime, syncs each, and reports "synced <next offset>" on stdout; before
// an append that will seal the active segment it reports "roll <offset>".
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child process of TestCrash")
	}
	seed, err := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", crashSeedEnv, err)
	}
	c := crashConfig(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	l, err := Open(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	sizes := newCrashBatches(seed)
	for {
		off := l.NextOffset()
		batch := make([][]byte, sizes.next())
		size := 0
		for i := range batch {
			batch[i] = record(off + uint64(i))
			size += frameSize(len(batch[i]), nil)
		}
		if crashTime(off) != 0 {
			size += len(batch) * timeSize
		}
		meta := crashMeta(off + uint64(len(batch)))
		// The same test as AppendWithMeta's; only this goroutine writes.
		act := l.cur.Load().segs[len(l.cur.Load().segs)-1]
		if act.records > 0 && act.size+int64(size+metaOverhead(meta)) > c.MaxStoreBytes {
			fmt.Printf("roll %d\n", off)
		}
		if first, err := l.AppendTimed(meta, crashTime(off), batch...); err != nil || first != off {
			t.Fatalf("AppendTimed at %d = %d, %v", off, first, err)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("synced %d\n", off+uint64(len(batch)))
	}
}

// crashRun is one child process.
type crashRun struct {
	cmd    *exec.Cmd
	out    *bufio.Reader
	stderr bytes.Buffer
	synced uint64 // the last next offset the child reported synced
	lines  int    // "synced" lines read
	rolls  int    // "roll" lines read
	bytes  int    // bytes of output read
}

func startCrashChild(t testing.TB, dir string, seed uint64) *crashRun {
	t.Helper()
	r := &crashRun{}
	r.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=5m")
	r.cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashSeedEnv+"="+strconv.FormatUint(seed, 10))
	r.cmd.Stderr = &r.stderr
	pipe, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.out = bufio.NewReader(pipe)
	return r
}

// readLine reads one line of the child's output and notes what it reports.
func (r *crashRun) readLine(t testing.TB) {
	t.Helper()
	line, err := r.out.ReadString('\n')
	r.bytes += len(line)
	if err != nil {
		r.fail(t, fmt.Errorf("child output ended: %w", err))
	}
	r.parse(t, line)
}

// readByte reads one byte of the child's output; a line it completes counts.
func (r *crashRun) readByte(t testing.TB, line *[]byte) {
	t.Helper()
	b, err := r.out.ReadByte()
	if err != nil {
		r.fail(t, fmt.Errorf("child output ended: %w", err))
	}
	r.bytes++
	*line = append(*line, b)
	if b == '\n' {
		r.parse(t, string(*line))
		*line = (*line)[:0]
	}
}

func (r *crashRun) parse(t testing.TB, line string) {
	t.Helper()
	word, arg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	n, err := strconv.ParseUint(arg, 10, 64)
	switch {
	case err != nil:
		r.fail(t, fmt.Errorf("child wrote %q", line))
	case word == "synced":
		if n < r.synced {
			r.fail(t, fmt.Errorf("child reported synced %d after %d", n, r.synced))
		}
		r.synced = n
		r.lines++
	case word == "roll":
		r.rolls++
	default:
		r.fail(t, fmt.Errorf("child wrote %q", line))
	}
}

func (r *crashRun) fail(t testing.TB, err error) {
	t.Helper()
	r.cmd.Process.Kill()
	r.cmd.Wait()
	t.Fatalf("%v; child stderr:\n%s", err, r.stderr.String())
}

// kill ends the child with SIGKILL and reaps it.
func (r *crashRun) kill(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := r.cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("child ended with %v before it was killed; stderr:\n%s", err, r.stderr.String())
	}
}

// checkRecordsBatched checks that [from, to) holds record(off), reading in
// batches.
func checkRecordsBatched(t testing.TB, l *Log, from, to uint64) {
	t.Helper()
	for off := from; off < to; {
		recs, err := l.ReadBatch(off, 64<<10)
		if err != nil {
			t.Fatalf("ReadBatch(%d): %v", off, err)
		}
		for i, r := range recs {
			if want := record(off + uint64(i)); !bytes.Equal(r, want) {
				t.Fatalf("ReadBatch(%d)[%d] = %q, want %q", off, i, r, want)
			}
		}
		off += uint64(len(recs))
	}
}

// rollState tells how far the child got in starting the newest segment when
// it was killed, or "" if that segment holds records.
func rollState(t testing.TB, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var newest string
	for _, e := range entries {
		if _, ext, ok := parseSegmentName(e.Name()); ok && ext == storeExt {
			newest = e.Name() // ReadDir sorts by name, so by base
		}
	}
	store := fileSize(t, filepath.Join(dir, newest))
	_, err = os.Stat(filepath.Join(dir, strings.TrimSuffix(newest, storeExt)+indexExt))
	switch {
	case store < headerSize:
		return "a new store shorter than its header"
	case os.IsNotExist(err):
		return "a new store without its index"
	case store <= headerSize+int64(frameSize(0, crashMeta(1<<40))+timeSize):
		return "a new segment without records"
	}
	return ""
}

// TestCrash kills a child appending to a log at random moments, then checks
// that the log holds every batch the child reported synced, whole batches only,
// each record exact with its time, with the metadata of its last batch, and
// that OffsetForTime finds records by their times; the next child goes on
// appending to the same log.
func TestCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child process")
	}
	seed := testSeed(t)
	rng := seededRand(seed)
	cycles, minCycles, budget := 100, 20, 60*time.Second
	if testing.Short() {
		cycles, minCycles = 10, 10
	}
	dir := t.TempDir()
	c := crashConfig(quietConfig(t).Logger)
	start := time.Now()
	var next uint64 // where the log ends, so where the next child starts
	var times []int64
	var latest int64 // the latest time stamped on the records that survived
	modes := map[string]int{}
	for cycle := 0; cycle < cycles; cycle++ {
		if cycle >= minCycles && time.Since(start) > budget {
			t.Logf("stopping after %d cycles: %v is over the time budget", cycle, time.Since(start))
			break
		}
		childSeed := seed + uint64(cycle) + 1
		run := startCrashChild(t, dir, childSeed)
		var mode string
		switch m := rng.IntN(3); m {
		case 0: // after a number of synced batches
			n := 1 + rng.IntN(40)
			mode = "after synced batches"
			for run.lines < n {
				run.readLine(t)
			}
		case 1: // after a number of bytes of output, maybe inside a line
			n := 1 + rng.IntN(500)
			mode = "after output bytes"
			var line []byte
			for run.bytes < n {
				run.readByte(t, &line)
			}
		default: // as the child starts to seal a segment
			n := 1 + rng.IntN(3)
			mode = "while sealing a segment"
			for run.rolls < n {
				run.readLine(t)
			}
		}
		run.kill(t)
		modes[mode]++
		if state := rollState(t, dir); state != "" {
			modes["left "+state]++
		}

		l := openLog(t, dir, c)
		got := l.NextOffset()
		if got < run.synced {
			t.Fatalf("cycle %d (%s): NextOffset %d after a crash, but the child synced up to %d", cycle, mode, got, run.synced)
		}
		// The child appended whole batches of sizes replayed from its seed.
		sizes := newCrashBatches(childSeed)
		end := next
		for end < got {
			n := sizes.next()
			times = crashTimes(times, &latest, end, n)
			end += uint64(n)
		}
		if end != got {
			t.Fatalf("cycle %d (%s): NextOffset %d is inside a batch (the child's batch ends at %d)", cycle, mode, got, end)
		}
		if want := crashMeta(got); got > 0 && !bytes.Equal(l.Meta(), want) {
			t.Fatalf("cycle %d (%s): Meta = %q with next offset %d, want %q", cycle, mode, l.Meta(), got, want)
		}
		checkRecordsBatched(t, l, 0, got)
		checkNothingPast(t, l, got)
		checkTimes(t, l, 0, times)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		next = got
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records in %d files after %v; cycles by kill moment: %v", next, len(entries), time.Since(start), modes)
}
