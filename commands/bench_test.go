package commands

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
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
			if r.Mode != tt.name || r.LocalNodes != 1 {
				t.Errorf("mode %q, local nodes %d", r.Mode, r.LocalNodes)
			}
		})
	}
}

func TestBench_text(t *testing.T) {
	isolateConfig(t)
	out := mustRun(t, "", "bench", "--local", "1", "--count", "10", "--duration", "60s")
	for _, want := range []string{"produce: unary, 256 B records, concurrency 1, batch 1, local cluster of 1 nodes", "  10 records, 0.0 MB in ", "latency over 10 calls: p50 "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
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
	} {
		_, _, err := run(t, append([]string{"bench"}, args...)...)
		if ExitCode(err) != ExitUsage {
			t.Errorf("bench %v: exit %d (%v), want %d", args, ExitCode(err), err, ExitUsage)
		}
	}
}
