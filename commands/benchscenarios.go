package commands

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
)

// benchScenario is one workload of a scenario set: the load of one bench run
// on a local cluster of nodes, and which phase the table reports.
type benchScenario struct {
	name    string // the workload column
	nodes   int
	o       benchOptions
	consume bool // report the consume phase, not produce
}

// benchScenarioSets are the sets --scenarios names. Counts and durations
// bound every run; a run ends at whichever comes first.
var benchScenarioSets = map[string][]benchScenario{
	"standard": {
		{name: "unary produce, 1 node, 1 client", nodes: 1,
			o: benchOptions{mode: benchUnary, recordSize: 256, count: 3000, duration: 5 * time.Second, concurrency: 1, batch: 1}},
		{name: "unary produce, 3 nodes, 1 client", nodes: 3,
			o: benchOptions{mode: benchUnary, recordSize: 256, count: 1500, duration: 5 * time.Second, concurrency: 1, batch: 1}},
		{name: "ProduceStream, 3 nodes, window 1024", nodes: 3,
			o: benchOptions{mode: benchStream, recordSize: 256, count: 200_000, duration: 5 * time.Second, concurrency: 1, batch: 1024}},
		{name: "ProduceBatch of 2000, 3 nodes", nodes: 3,
			o: benchOptions{mode: benchBatch, recordSize: 256, count: 300_000, duration: 5 * time.Second, concurrency: 1, batch: 2000}},
		// Read back at several times the rate it was written: records
		// enough that reading them takes about a second.
		{name: "ConsumeBatchStream of 500k records, 3 nodes", nodes: 3, consume: true,
			o: benchOptions{mode: benchBatch, recordSize: 256, count: 500_000, duration: 15 * time.Second, concurrency: 1, batch: 2000, consume: true, consumeRPC: consumeBatch}},
		// One message a record: fewer records take as long.
		{name: "ConsumeStream of 200k records from a follower, 3 nodes", nodes: 3, consume: true,
			o: benchOptions{mode: benchBatch, recordSize: 256, count: 200_000, duration: 15 * time.Second, concurrency: 1, batch: 2000, consume: true, consumeRPC: consumeStream}},
	},
}

func init() {
	// quick: the standard workloads with 200 records each, to check the
	// harness in seconds (its figures mean little).
	var quick []benchScenario
	for _, sc := range benchScenarioSets["standard"] {
		sc.o.count = min(sc.o.count, 200)
		quick = append(quick, sc)
	}
	benchScenarioSets["quick"] = quick
}

// benchSample is one scenario's figures from one run: records/s and the
// p50 latency in ms (0 for consume), on the cluster and on the floor; err
// says why the run failed.
type benchSample struct {
	rate, p50, floorRate, floorP50 float64
	err                            string
}

// runScenarios runs the scenario set name --runs times, each scenario on a
// fresh local cluster and then on a fresh floor, and prints the medians as a
// markdown table (also to --markdown).
func runScenarios(c *cli.Context, name string) error {
	set, ok := benchScenarioSets[name]
	if !ok {
		return UsageError{Err: fmt.Errorf("bench: --scenarios %q: want standard or quick", name)}
	}
	for _, f := range []string{"local", "floor", "compare-floor", "mode", "count", "duration", "concurrency", "batch", "record-size", "consume", "consume-rpc", "json", "pprof-addr"} {
		if c.IsSet(f) {
			return UsageError{Err: fmt.Errorf("bench: --scenarios sets the load itself; --%s does not go with it", f)}
		}
	}
	runs := c.Int("runs")
	if runs < 1 || runs > 9 {
		return UsageError{Err: fmt.Errorf("bench: --runs %d: want 1 to 9", runs)}
	}
	store := c.String("raft-log-store")
	// Progress lines and the nodes' error logs share stderr.
	stderr := &lockedWriter{w: c.App.ErrWriter}
	loadBefore := loadAverage()
	began := time.Now().UTC()
	samples := make([][]benchSample, len(set))
	for run := range runs {
		for i, sc := range set {
			// A run that fails (a leadership change under load, say) is
			// listed and left out of the medians; the set goes on.
			var s benchSample
			res, err := benchLocal(c, sc.o, sc.nodes, store, stderr)
			if err == nil {
				var fl BenchResult
				if fl, err = benchFloor(c, sc.o); err == nil {
					s = sampleOf(sc, res, fl)
				} else {
					err = fmt.Errorf("on the floor: %w", err)
				}
			}
			if c.Context.Err() != nil {
				return c.Context.Err()
			}
			if err != nil {
				s.err = err.Error()
				fmt.Fprintf(stderr, "run %d/%d: %s: failed: %v\n", run+1, runs, sc.name, err)
			} else {
				fmt.Fprintf(stderr, "run %d/%d: %s: %.0f records/s, floor %.0f records/s\n", run+1, runs, sc.name, s.rate, s.floorRate)
			}
			samples[i] = append(samples[i], s)
		}
	}
	var b bytes.Buffer
	writeScenarioTable(&b, scenarioReport{
		name: name, set: set, samples: samples, runs: runs, store: store, version: c.App.Version,
		began: began, took: time.Since(began), loadBefore: loadBefore, loadAfter: loadAverage(),
		cpus: runtime.NumCPU(), model: cpuModel(),
	})
	if _, err := c.App.Writer.Write(b.Bytes()); err != nil {
		return err
	}
	if path := c.String("markdown"); path != "" {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("bench: --markdown: %w", err)
		}
	}
	for i, sc := range set {
		if len(succeeded(samples[i])) == 0 {
			return fmt.Errorf("bench: every run of %q failed; the last: %s", sc.name, samples[i][len(samples[i])-1].err)
		}
	}
	return nil
}

// succeeded returns the samples of the runs that did not fail.
func succeeded(ss []benchSample) []benchSample {
	var ok []benchSample
	for _, s := range ss {
		if s.err == "" {
			ok = append(ok, s)
		}
	}
	return ok
}

// lockedWriter serializes writes to w; after detach it drops them.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return len(p), nil
	}
	return l.w.Write(p)
}

// detach makes every later Write a no-op; a Write in progress ends first.
func (l *lockedWriter) detach() {
	l.mu.Lock()
	l.w = nil
	l.mu.Unlock()
}

func sampleOf(sc benchScenario, res, fl BenchResult) benchSample {
	if sc.consume {
		var s benchSample
		if res.Consume != nil {
			s.rate = res.Consume.RecordsPerSec
		}
		if fl.Consume != nil {
			s.floorRate = fl.Consume.RecordsPerSec
		}
		return s
	}
	s := benchSample{rate: res.Produce.RecordsPerSec, floorRate: fl.Produce.RecordsPerSec}
	if l := res.Produce.Latency; l != nil {
		s.p50 = l.P50
	}
	if l := fl.Produce.Latency; l != nil {
		s.floorP50 = l.P50
	}
	return s
}

// median returns the median of what f picks from ss (the mean of the two
// middle values for an even count).
func median(ss []benchSample, f func(benchSample) float64) float64 {
	if len(ss) == 0 {
		return 0
	}
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// scenarioReport is what the markdown table is written from.
type scenarioReport struct {
	name                  string // of the scenario set
	set                   []benchScenario
	samples               [][]benchSample // per scenario, per run
	runs                  int
	store, version, model string
	began                 time.Time
	took                  time.Duration
	loadBefore, loadAfter string
	cpus                  int
}

func writeScenarioTable(w io.Writer, r scenarioReport) {
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "Written by `proglogctl bench --scenarios %s --runs %d --markdown FILE` (which `make bench` runs), proglogctl %s, on %s (took %s).\n\n",
		r.name, r.runs, r.version, r.began.Format("2006-01-02 15:04 MST"), r.took.Round(time.Second))
	fmt.Fprintf(w, "- Machine: %d CPUs (`nproc`), %s, %s/%s, %s.\n", r.cpus, r.model, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(w, "- Load average (1, 5, 15 min) before: %s; after: %s. Other work shares these CPUs, so the figures are noisy; compare the ratios, measured back to back.\n", r.loadBefore, r.loadAfter)
	fmt.Fprintf(w, "- proglogctl: `bench --local N`, a fresh in-process cluster per run (mTLS, fsync on, Raft log store %s), 256-byte records, one client, loopback.\n", r.store)
	fmt.Fprintf(w, "- floor: `bench --floor`, the same load against an in-memory log.v1 server with a node's TLS (no Raft, no disk, no ACL), run right after: what gRPC and TLS cost here.\n")
	fmt.Fprintf(w, "- Figures are medians of %d runs; ratio is proglogctl's records/s over the floor's (per run, then the median). A run that failed is listed below and left out.\n\n", r.runs)
	fmt.Fprintf(w, "| workload | proglogctl | floor | ratio |\n|---|---|---|---|\n")
	for i, sc := range r.set {
		ss := succeeded(r.samples[i])
		name := sc.name
		if len(ss) < len(r.samples[i]) {
			name = fmt.Sprintf("%s (%d of %d runs)", name, len(ss), len(r.samples[i]))
		}
		if len(ss) == 0 {
			fmt.Fprintf(w, "| %s | failed | — | — |\n", name)
			continue
		}
		rate, floorRate := median(ss, func(s benchSample) float64 { return s.rate }), median(ss, func(s benchSample) float64 { return s.floorRate })
		ratio := median(ss, func(s benchSample) float64 {
			if s.floorRate == 0 {
				return 0
			}
			return s.rate / s.floorRate
		})
		cell := func(rate, p50 float64) string {
			if sc.consume || p50 == 0 {
				return fmt.Sprintf("%s records/s", thousands(rate))
			}
			return fmt.Sprintf("%s records/s, p50 %.2f ms", thousands(rate), p50)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.2f |\n", name,
			cell(rate, median(ss, func(s benchSample) float64 { return s.p50 })),
			cell(floorRate, median(ss, func(s benchSample) float64 { return s.floorP50 })), ratio)
	}
	fmt.Fprintf(w, "\nEach run, records/s (proglogctl / floor):\n\n| workload | runs |\n|---|---|\n")
	for i, sc := range r.set {
		var runs []string
		for _, s := range r.samples[i] {
			if s.err != "" {
				runs = append(runs, "failed: "+markdownCell(s.err))
				continue
			}
			runs = append(runs, fmt.Sprintf("%s / %s", thousands(s.rate), thousands(s.floorRate)))
		}
		fmt.Fprintf(w, "| %s | %s |\n", sc.name, strings.Join(runs, "; "))
	}
}

// markdownCell makes s fit in a table cell: one line, no column bars.
func markdownCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// thousands formats v rounded to an integer with commas between thousands.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String()
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown CPU
// model".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU model"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU model"
}

// loadAverage returns the 1, 5 and 15 minute load averages of /proc/loadavg,
// or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], ", ")
	}
	return "unknown"
}
