package commands

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBench_local(t *testing.T) {
	isolateConfig(t)
	tests := []struct {
		name string
		args []string
	}{
		{name: "unary", args: []string{"--mode", "unary", "--concurrency", "3"}},
		{name: "batch", args: []string{"--mode", "batch", "--batch", "7", "--concurrency", "2"}},
		{name: "stream", args: []string{"--mode", "stream", "--batch", "16", "--concurrency", "2"}},
		{name: "unary", args: []string{"--mode", "unary", "--keep-going"}},
	}
	const count = 50
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"bench", "--local", "1", "--count", strconv.Itoa(count), "--duration", "60s", "--record-size", "33", "--consume", "--json"}, tt.args...)
			out := mustRun(t, "", args...)
			var r BenchResult
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if r.Produce.Records != count || r.Produce.Bytes != count*33 {
				t.Errorf("produced %d records, %d bytes; want %d, %d", r.Produce.Records, r.Produce.Bytes, count, count*33)
			}
			if r.Produce.Latency == nil || r.Produce.Latency.Calls == 0 || r.Produce.Latency.P50 <= 0 || r.Produce.Latency.Max < r.Produce.Latency.P99 {
				t.Errorf("latency = %+v", r.Produce.Latency)
			}
			if r.Consume == nil || r.Consume.Records != count || r.Consume.Bytes != count*33 {
				t.Errorf("consume = %+v, want %d records", r.Consume, count)
			}
			// Nothing failed, so the longest wait for an acknowledgement is
			// at most the whole run, and with one worker making one call at
			// a time at least the slowest call.
			if r.Produce.FailedCalls != 0 || r.Produce.MaxGapMs <= 0 || r.Produce.MaxGapMs > r.Produce.Seconds*1000 ||
				(r.Produce.Latency != nil && r.Concurrency == 1 && tt.name != "stream" && r.Produce.MaxGapMs < r.Produce.Latency.Max) {
				t.Errorf("max gap %.3f ms, failed calls %d, over %.3f s with max latency %+v", r.Produce.MaxGapMs, r.Produce.FailedCalls, r.Produce.Seconds, r.Produce.Latency)
			}
			if r.Mode != tt.name || r.LocalNodes != 1 {
				t.Errorf("mode %q, local nodes %d", r.Mode, r.LocalNodes)
			}
			// The one node reported its RSS (this process's) and disk use
			// (at least Raft's zero-filled segment) at least at the end.
			if len(r.Servers) != 1 || r.Servers[0].Samples == 0 || r.Servers[0].RSSBytes == 0 ||
				r.Servers[0].MaxRSSBytes < r.Servers[0].RSSBytes || r.Servers[0].DiskBytes < 64<<10 {
				t.Errorf("servers = %+v, want one that reported its RSS and disk bytes", r.Servers)
			}
		})
	}
}

func TestBench_text(t *testing.T) {
	isolateConfig(t)
	out := mustRun(t, "", "bench", "--local", "1", "--count", "10", "--duration", "60s")
	for _, want := range []string{"produce: unary, 256 B records, concurrency 1, batch 1, local cluster of 1 nodes", "  10 records, 0.0 MB in ", "latency over 10 calls: p50 ",
		"server dev-0: rss ", "× the 0.0 MB produced)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestPrintServers: a server's disk is set against the run's payload by
// what it grew in the run, so a cluster that already held a log is not
// charged for it.
func TestPrintServers(t *testing.T) {
	var b strings.Builder
	printServers(&b, []BenchServer{{ID: "n0", Samples: 3, RSSBytes: 70e6, MaxRSSBytes: 80e6, FirstDiskBytes: 1000e6, DiskBytes: 2150e6}}, 1000e6)
	const want = "server n0: rss 70.0 MB (max 80.0 MB over 3 samples), disk 2150.0 MB (+1150.0 MB in the run, 1.15× the 1000.0 MB produced)\n"
	if b.String() != want {
		t.Errorf("printServers wrote\n%q, want\n%q", b.String(), want)
	}
}

func TestBench_usage(t *testing.T) {
	isolateConfig(t)
	for _, args := range [][]string{
		{"--mode", "nope"},
		{"--duration", "0s"},
		{"--duration", "2h"},
		{"--count", "-1"},
		{"--mode", "batch", "--batch", "100000"},
		{"--local", "10"},
		{"--pprof-addr", "0.0.0.0:0", "--local", "1"},
		{"--floor", "--local", "1"},
		{"--floor", "--compare-floor"},
		{"--runs", "2"},
		{"--markdown", "x.md"},
		{"--scenarios", "nope"},
		{"--scenarios", "quick", "--local", "1"},
		{"--scenarios", "quick", "--runs", "0"},
		{"--mode", "stream", "--keep-going"},
	} {
		_, _, err := run(t, append([]string{"bench"}, args...)...)
		if ExitCode(err) != ExitUsage {
			t.Errorf("bench %v: exit %d (%v), want %d", args, ExitCode(err), err, ExitUsage)
		}
	}
}

func TestBench_floor(t *testing.T) {
	isolateConfig(t)
	tests := []struct {
		name string
		args []string
	}{
		{name: "unary", args: []string{"--mode", "unary"}},
		{name: "batch", args: []string{"--mode", "batch", "--batch", "7"}},
		{name: "stream", args: []string{"--mode", "stream", "--batch", "16", "--concurrency", "2"}},
		{name: "unary", args: []string{"--mode", "unary", "--keep-going"}},
		{name: "ConsumeStream", args: []string{"--mode", "batch", "--batch", "7", "--consume-rpc", "stream"}},
	}
	const count = 50
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustRun(t, "", append([]string{"bench", "--floor", "--count", strconv.Itoa(count), "--duration", "60s", "--record-size", "33", "--consume", "--json"}, tt.args...)...)
			var r BenchResult
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if !r.Floor || r.LocalNodes != 0 || r.FloorRun != nil || len(r.Servers) != 0 {
				t.Errorf("floor %v, local nodes %d, floor run %v, servers %v: want a run on the floor alone", r.Floor, r.LocalNodes, r.FloorRun, r.Servers)
			}
			if r.Produce.Records != count || r.Produce.RecordsPerSec <= 0 || r.Produce.Latency == nil || r.Produce.Latency.P50 <= 0 {
				t.Errorf("produce = %+v, latency %+v; want %d records at a positive rate", r.Produce, r.Produce.Latency, count)
			}
			if r.Consume == nil || r.Consume.Records != count || r.Consume.Bytes != count*33 || r.Consume.RecordsPerSec <= 0 {
				t.Errorf("consume = %+v, want %d records of 33 bytes", r.Consume, count)
			}
			want := "ConsumeBatchStream"
			if tt.name == "ConsumeStream" {
				want = "ConsumeStream from " + floorID
			}
			if r.ConsumedWith != want {
				t.Errorf("consumed with %q, want %q", r.ConsumedWith, want)
			}
		})
	}
}

// TestBenchConsumeStreamFromAFollower reads back with ConsumeStream from
// one server of three: a follower, so not the one GetServers calls leader.
func TestBenchConsumeStreamFromAFollower(t *testing.T) {
	isolateConfig(t)
	const count = 40
	out := mustRun(t, "", "bench", "--local", "3", "--mode", "batch", "--batch", "8", "--count", strconv.Itoa(count), "--duration", "60s",
		"--record-size", "20", "--consume", "--consume-rpc", "stream", "--json")
	var r BenchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if r.Consume == nil || r.Consume.Records != count || r.Consume.Bytes != count*20 {
		t.Fatalf("consume = %+v, want %d records of 20 bytes", r.Consume, count)
	}
	if !strings.HasPrefix(r.ConsumedWith, "ConsumeStream from dev-") {
		t.Fatalf("consumed with %q, want ConsumeStream from one of the nodes", r.ConsumedWith)
	}
}

func TestBench_compareFloor(t *testing.T) {
	isolateConfig(t)
	out := mustRun(t, "", "bench", "--local", "1", "--compare-floor", "--count", "30", "--duration", "60s", "--consume", "--json")
	var r BenchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	fl, q := r.FloorRun, r.RatioToFloor
	if r.Floor || r.LocalNodes != 1 || fl == nil || !fl.Floor || q == nil {
		t.Fatalf("floor %v, local nodes %d, floor run %+v, ratio %+v: want a local run compared with a floor run", r.Floor, r.LocalNodes, fl, q)
	}
	if fl.Produce.Records != 30 || fl.Consume == nil || fl.Consume.Records != 30 {
		t.Errorf("floor run = %+v", fl)
	}
	near := func(got, want float64) bool { return got > 0 && math.Abs(got-want) <= 1e-9*want }
	if !near(q.ProduceRecordsPerSec, r.Produce.RecordsPerSec/fl.Produce.RecordsPerSec) ||
		!near(q.ProduceP50, r.Produce.Latency.P50/fl.Produce.Latency.P50) ||
		!near(q.ConsumeRecordsPerSec, r.Consume.RecordsPerSec/fl.Consume.RecordsPerSec) {
		t.Errorf("ratio = %+v, not the run's figures over the floor's (%+v, %+v)", q, r.Produce, fl.Produce)
	}

	text := mustRun(t, "", "bench", "--local", "1", "--compare-floor", "--count", "10", "--duration", "60s")
	for _, want := range []string{"local cluster of 1 nodes", "floor (in-memory log.v1 server, TLS as a node's)", "ratio to the floor: produce "} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

func TestBench_scenarios(t *testing.T) {
	isolateConfig(t)
	md := filepath.Join(t.TempDir(), "BENCH.md")
	out := mustRun(t, "", "bench", "--scenarios", "quick", "--runs", "1", "--markdown", md)
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != out {
		t.Errorf("--markdown file differs from stdout:\n%s\n---\n%s", b, out)
	}
	for _, want := range []string{"| workload | proglogctl | floor | ratio |", "CPUs (`nproc`)", "Load average", "medians of 1 runs"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) != 4 || strings.HasPrefix(line, "| workload") {
			continue
		}
		rows++
		ratio, err := strconv.ParseFloat(strings.TrimSuffix(cells[3], " |"), 64)
		if err != nil || ratio <= 0 || !strings.Contains(cells[1], "records/s") || !strings.Contains(cells[2], "records/s") {
			t.Errorf("row %q: want figures on both sides and a positive ratio", line)
		}
	}
	if want := len(benchScenarioSets["quick"]); rows != want {
		t.Errorf("%d rows of figures, want %d:\n%s", rows, want, out)
	}
}

func TestRatioTo(t *testing.T) {
	lat := func(p50, p99 float64) *BenchLatency { return &BenchLatency{Calls: 1, P50: p50, P99: p99} }
	tests := []struct {
		name    string
		run, fl BenchResult
		want    BenchRatio
	}{
		{name: "produce and consume",
			run:  BenchResult{Produce: BenchPhase{RecordsPerSec: 500, Latency: lat(2, 8)}, Consume: &BenchPhase{RecordsPerSec: 80}},
			fl:   BenchResult{Produce: BenchPhase{RecordsPerSec: 2000, Latency: lat(0.5, 1)}, Consume: &BenchPhase{RecordsPerSec: 100}},
			want: BenchRatio{ProduceRecordsPerSec: 0.25, ProduceP50: 4, ProduceP99: 8, ConsumeRecordsPerSec: 0.8}},
		{name: "no consume, no floor latency",
			run:  BenchResult{Produce: BenchPhase{RecordsPerSec: 500, Latency: lat(2, 8)}},
			fl:   BenchResult{Produce: BenchPhase{RecordsPerSec: 1000}},
			want: BenchRatio{ProduceRecordsPerSec: 0.5}},
		{name: "nothing on the floor",
			run:  BenchResult{Produce: BenchPhase{RecordsPerSec: 500}},
			want: BenchRatio{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ratioTo(tt.run, tt.fl); *got != tt.want {
				t.Errorf("ratioTo = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestMedianAndThousands(t *testing.T) {
	rate := func(s benchSample) float64 { return s.rate }
	for _, tt := range []struct {
		rates []float64
		want  float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{9, 1, 5}, 5}, {[]float64{4, 1, 2, 3}, 2.5}} {
		var ss []benchSample
		for _, r := range tt.rates {
			ss = append(ss, benchSample{rate: r})
		}
		if got := median(ss, rate); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.rates, got, tt.want)
		}
	}
	for v, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 122456.7: "122,457", 1234567: "1,234,567"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestScenarioTable_failedRuns(t *testing.T) {
	set := []benchScenario{{name: "half"}, {name: "none", consume: true}}
	var b strings.Builder
	writeScenarioTable(&b, scenarioReport{
		name: "standard", set: set, runs: 2, store: "bolt", version: "test", cpus: 2, model: "cpu",
		samples: [][]benchSample{
			{{rate: 100, p50: 2, floorRate: 400, floorP50: 0.5}, {err: "leadership lost | again\nline"}},
			{{err: "boom"}, {err: "boom"}},
		},
	})
	out := b.String()
	for _, want := range []string{
		"| half (1 of 2 runs) | 100 records/s, p50 2.00 ms | 400 records/s, p50 0.50 ms | 0.25 |",
		"| none (0 of 2 runs) | failed | — | — |",
		"| half | 100 / 400; failed: leadership lost \\| again line |",
		"| none | failed: boom; failed: boom |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchServeFloor serves the floor from one command and runs a bench
// against it from another, as two processes would: the load reaches the
// floor, and the floor stops when its command is interrupted.
func TestBenchServeFloor(t *testing.T) {
	isolateConfig(t)
	mustRun(t, "", "gencert")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newSyncBuffer()
	served := make(chan error, 1)
	go func() {
		m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: io.Discard, Version: "test"}
		served <- m.Run(ctx, []string{"proglogctl", "bench", "--serve-floor", "127.0.0.1:0"})
	}()
	var addr string
	waitFor(t, 10*time.Second, "the floor to say where it serves", func() bool {
		_, rest, ok := strings.Cut(out.String(), "serving the floor on ")
		addr, _, _ = strings.Cut(rest, " ")
		return ok && strings.Contains(rest, " until interrupted")
	})
	const count = 30
	res := mustRun(t, "", "bench", "--addr", "proglog://"+addr, "--count", strconv.Itoa(count), "--duration", "60s", "--record-size", "10", "--consume", "--json")
	var r BenchResult
	if err := json.Unmarshal([]byte(res), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, res)
	}
	if r.Produce.Records != count || r.Consume == nil || r.Consume.Records != count {
		t.Fatalf("produce %+v, consume %+v: want %d records each way", r.Produce, r.Consume, count)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("bench --serve-floor ended with %v, want nil when interrupted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bench --serve-floor still runs 10 s after its interrupt")
	}
}
