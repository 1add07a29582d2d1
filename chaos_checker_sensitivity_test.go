package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The chaos checkers on hand-made histories: each broken history is caught by
// the checkers meant for it, and a correct one passes them all. No processes.

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func produced(client, node int, v string, off uint64, call, ret int) chaosOp {
	return chaosOp{Client: client, Node: node, Kind: opProduce, Value: v, Off: off, Outcome: outOK, Call: ms(call), Return: ms(ret)}
}

func produceUnknown(client, node int, v string, call, ret int) chaosOp {
	return chaosOp{Client: client, Node: node, Kind: opProduce, Value: v, Outcome: outUnknown, Call: ms(call), Return: ms(ret)}
}

func consumed(client, node int, off uint64, v string, call, ret int) chaosOp {
	return chaosOp{Client: client, Node: node, Kind: opConsume, Value: v, Off: off, Outcome: outOK, Call: ms(call), Return: ms(ret)}
}

func consumeOOR(client, node int, off uint64, call, ret int) chaosOp {
	return chaosOp{Client: client, Node: node, Kind: opConsume, Off: off, Outcome: outOutOfRange, Call: ms(call), Return: ms(ret)}
}

func consumeDropped(client, node int, off uint64, call, ret int) chaosOp {
	return chaosOp{Client: client, Node: node, Kind: opConsume, Off: off, Outcome: outDropped, Call: ms(call), Return: ms(ret)}
}

func threeLogs(logs ...[]string) finalLogs {
	f := finalLogs{names: []string{"node-0", "node-1", "node-2"}, base: make([]uint64, 3), logs: logs, errs: make([]error, len(logs))}
	for len(f.logs) < 3 {
		f.logs = append(f.logs, slices.Clone(logs[0]))
		f.errs = append(f.errs, nil)
	}
	return f
}

// retained is final with retention having dropped the offsets below base on
// every node.
func retained(final finalLogs, base uint64) finalLogs {
	f := final
	f.base, f.logs = make([]uint64, len(final.logs)), make([][]string, len(final.logs))
	for i, log := range final.logs {
		f.base[i], f.logs[i] = base, log[base:]
	}
	return f
}

// goodHistory: three producers on three nodes, reads on followers that see
// what was acknowledged before them, an unknown produce that took effect and
// one that did not, and out-of-range reads past the end.
func goodHistory() ([]chaosOp, finalLogs) {
	hist := []chaosOp{
		produced(0, 0, "p0-0", 0, 0, 10),
		produced(1, 1, "p1-0", 1, 5, 12),       // forwarded by a follower
		produceUnknown(2, 2, "p2-0", 6, 2000),  // took effect at 2
		consumed(3, 1, 0, "p0-0", 11, 13),      // after its ack
		consumeOOR(4, 2, 3, 14, 15),            // past the end
		consumed(5, 2, 1, "p1-0", 13, 20),      // after its ack
		produced(0, 1, "p0-1", 3, 30, 40),      //
		consumed(3, 0, 2, "p2-0", 41, 45),      // the unknown one, seen
		consumeOOR(4, 1, 4, 41, 42),            //
		produceUnknown(1, 0, "p1-1", 50, 2000), // never took effect
		consumed(5, 2, 3, "p0-1", 60, 61),      //
	}
	return hist, threeLogs([]string{"p0-0", "p1-0", "p2-0", "p0-1"})
}

func TestChaosCheckersPassCorrectHistory(t *testing.T) {
	hist, final := goodHistory()
	checkAllPass(t, hist, final)
}

// TestChaosCheckersPassRetainedHistory: retention dropped offsets 0 and 1
// after the run; a read during the run was told offset 0 was dropped.
func TestChaosCheckersPassRetainedHistory(t *testing.T) {
	hist, final := goodHistory()
	checkAllPass(t, append(hist, consumeDropped(3, 1, 0, 70, 71)), retained(final, 2))
	// Offset 2 was written by an unknown produce no read saw before
	// retention dropped it; the density of offset 3 shows it filled.
	var unseen []chaosOp
	for _, op := range hist {
		if op.Kind == opConsume && op.Value == "p2-0" {
			continue
		}
		unseen = append(unseen, op)
	}
	checkAllPass(t, unseen, retained(final, 3))
}

func checkAllPass(t *testing.T, hist []chaosOp, final finalLogs) {
	t.Helper()
	for name, probs := range map[string][]string{
		"lost":        checkLost(hist, final),
		"unique":      checkUnique(hist, final),
		"convergence": checkConvergence(final),
		"liveness":    checkLiveness([]offsetsSample{{At: ms(100), Next: []int64{4, 4, 4}, Leader: 1}}, final.names, 15*time.Second),
		"faults":      checkFaults([]faultRecord{{Kind: "kill-leader", Fired: true, Effective: true}}, 1),
	} {
		if len(probs) > 0 {
			t.Errorf("%s checker failed a correct history: %v", name, probs)
		}
	}
	if res, probs := checkLinearizable(hist, final, 10*time.Second); res != porcupine.Ok {
		t.Errorf("linearizability checker failed a correct history: %v %v", res, probs)
	}
}

func TestChaosCheckersCatchBrokenHistories(t *testing.T) {
	good, goodFinal := goodHistory()
	type verdicts struct{ lost, unique, convergence, linearizable bool } // true: must fail
	for _, tc := range []struct {
		name  string
		hist  []chaosOp
		final finalLogs
		want  verdicts
	}{{
		// The leader answered before the record was committed; a new
		// leader never had it. A read saw it in between.
		name: "acknowledged before commit, then lost",
		hist: append(slices.Clone(good), produced(2, 0, "p2-1", 4, 70, 80), consumed(3, 0, 4, "p2-1", 81, 82)),
		// final: unchanged, without offset 4
		final: goodFinal,
		want:  verdicts{lost: true, linearizable: true},
	}, {
		// A follower answers OUT_OF_RANGE for an offset acknowledged before
		// the read began: it had not applied it yet.
		name:  "follower reads out of range an acknowledged offset",
		hist:  append(slices.Clone(good), consumeOOR(4, 2, 3, 45, 46)),
		final: goodFinal,
		want:  verdicts{linearizable: true},
	}, {
		// Density: offset 4 was acknowledged, then a read of offset 3 (whose
		// own produce is still unknown) says out of range. Only filled(3)
		// sees this.
		name: "out of range below an acknowledged offset",
		hist: append(slices.Clone(good), produceUnknown(2, 1, "p2-1", 70, 3000), produced(0, 2, "p0-2", 5, 71, 80),
			consumeOOR(3, 1, 4, 90, 91)),
		final: threeLogs([]string{"p0-0", "p1-0", "p2-0", "p0-1", "p2-1", "p0-2"}),
		want:  verdicts{linearizable: true},
	}, {
		// One node lost an fsynced-and-acknowledged tail in a restart.
		name:  "lost fsync on one node",
		hist:  good,
		final: threeLogs([]string{"p0-0", "p1-0", "p2-0", "p0-1"}, []string{"p0-0", "p1-0", "p2-0", "p0-1"}, []string{"p0-0", "p1-0"}),
		want:  verdicts{lost: true, convergence: true, linearizable: true},
	}, {
		// The unknown produce was appended twice (a retry that was not
		// deduplicated).
		name:  "duplicate",
		hist:  good,
		final: threeLogs([]string{"p0-0", "p1-0", "p2-0", "p0-1", "p2-0"}),
		want:  verdicts{unique: true, linearizable: true},
	}, {
		// An exactly-once produce whose first attempt timed out after
		// appending was sent again and appended again instead of being
		// answered with its first offset.
		name: "retried exactly-once produce appended twice",
		hist: append(slices.Clone(good), func() chaosOp {
			op := produced(0, 2, "p0-2", 5, 70, 2100)
			op.Retries = 1
			return op
		}()),
		final: threeLogs([]string{"p0-0", "p1-0", "p2-0", "p0-1", "p0-2", "p0-2"}),
		want:  verdicts{unique: true, linearizable: true},
	}, {
		// Offset 3 read as one value during the run and another at the end.
		name:  "offset with two values",
		hist:  append(slices.Clone(good), consumed(5, 0, 3, "p1-1", 62, 63)),
		final: goodFinal,
		want:  verdicts{unique: true, linearizable: true},
	}, {
		// Nodes that disagree on a record.
		name:  "diverged nodes",
		hist:  good,
		final: threeLogs([]string{"p0-0", "p1-0", "p2-0", "p0-1"}, []string{"p0-0", "p1-0", "p2-0", "p0-1"}, []string{"p0-0", "p1-0", "p2-0", "p1-1"}),
		want:  verdicts{lost: true, unique: true, convergence: true, linearizable: true},
	}, {
		// Retention dropped offsets 0 and 1, and one node lost offset 3.
		name:  "lost after retention",
		hist:  good,
		final: retained(threeLogs([]string{"p0-0", "p1-0", "p2-0", "p0-1"}, []string{"p0-0", "p1-0", "p2-0", "p0-1"}, []string{"p0-0", "p1-0", "p2-0"}), 2),
		want:  verdicts{lost: true, convergence: true, linearizable: true},
	}, {
		// A node says offset 6 was dropped by retention, but it was never
		// written.
		name:  "dropped but never written",
		hist:  append(slices.Clone(good), consumeDropped(3, 1, 6, 70, 71)),
		final: goodFinal,
		want:  verdicts{linearizable: true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := verdicts{
				lost:        len(checkLost(tc.hist, tc.final)) > 0,
				unique:      len(checkUnique(tc.hist, tc.final)) > 0,
				convergence: len(checkConvergence(tc.final)) > 0,
			}
			res, probs := checkLinearizable(tc.hist, tc.final, 10*time.Second)
			got.linearizable = res != porcupine.Ok
			if got != tc.want {
				t.Errorf("failed checkers (lost, unique, convergence, linearizable) = %+v, want %+v", got, tc.want)
			}
			if tc.want.linearizable && !strings.Contains(strings.Join(probs, "\n"), "not linearizable") {
				t.Errorf("linearizability problems %q name no offset", probs)
			}
		})
	}
}

func TestChaosLivenessAndFaultCheckers(t *testing.T) {
	names := []string{"node-0", "node-1", "node-2"}
	for _, tc := range []struct {
		name    string
		samples []offsetsSample
		fail    bool
	}{
		{"caught up in time", []offsetsSample{{At: ms(10), Next: []int64{9, 4, 9}, Leader: 0}, {At: ms(900), Next: []int64{9, 9, 9}, Leader: 0}}, false},
		{"a follower wedged", []offsetsSample{{At: ms(10), Next: []int64{9, 4, 9}, Leader: 0}, {At: 15 * time.Second, Next: []int64{9, 4, 9}, Leader: 0}}, true},
		{"caught up too late", []offsetsSample{{At: ms(10), Next: []int64{9, 4, 9}, Leader: 0}, {At: 16 * time.Second, Next: []int64{9, 9, 9}, Leader: 0}}, true},
		{"a node unreachable", []offsetsSample{{At: ms(10), Next: []int64{9, -1, 9}, Leader: 0}}, true},
		{"no leader", []offsetsSample{{At: ms(10), Next: []int64{9, 9, 9}, Leader: -1}}, true},
		{"no samples", nil, true},
	} {
		if probs := checkLiveness(tc.samples, names, 15*time.Second); (len(probs) > 0) != tc.fail {
			t.Errorf("%s: liveness problems %q, want failure %v", tc.name, probs, tc.fail)
		}
	}
	faults := []faultRecord{{Kind: "kill-follower", Fired: true}, {Kind: "pause", Effective: true}}
	if probs := checkFaults(faults, 1); len(probs) == 0 {
		t.Errorf("no effective fault passed the faults checker")
	}
}

// TestSoakProblems: flat samples pass, and so does a node that holds less at
// the end; a node whose RSS, goroutines or disk grows by more than the bound
// between minute 2 and the end is reported.
func TestSoakProblems(t *testing.T) {
	series := func(grow func(at time.Duration) (rss, gr, disk int64)) []soakSample {
		var ss []soakSample
		for at := time.Duration(0); at <= 5*time.Minute; at += time.Second {
			rss, gr, disk := grow(at)
			ss = append(ss, soakSample{at: at, rss: []int64{rss}, goroutines: []int64{gr}, fds: []int{20}, disk: []int64{disk / 2}, log: []int64{disk / 2}})
		}
		return ss
	}
	flat := series(func(time.Duration) (int64, int64, int64) { return 40 << 20, 80, 8 << 20 })
	if p, _ := soakProblems(flat, 2*time.Minute, 0.2); len(p) > 0 {
		t.Fatalf("flat samples: %v", p)
	}
	// Restarted at 3:30: less of everything, and down (-1) for a few seconds.
	restarted := series(func(at time.Duration) (int64, int64, int64) {
		switch {
		case at < 210*time.Second:
			return 40 << 20, 80, 8 << 20
		case at < 215*time.Second:
			return -1, -1, 8 << 20
		default:
			return 20 << 20, 50, 8 << 20
		}
	})
	if p, _ := soakProblems(restarted, 2*time.Minute, 0.2); len(p) > 0 {
		t.Fatalf("a node restarted near the end: %v", p)
	}
	// Leadership moved to node 1 at 3:30: its goroutines rose, node 0's fell.
	moved := series(func(time.Duration) (int64, int64, int64) { return 40 << 20, 80, 8 << 20 })
	for i := range moved {
		moved[i].rss, moved[i].goroutines = append(moved[i].rss, 40<<20), append(moved[i].goroutines, 50)
		moved[i].disk, moved[i].log, moved[i].raftStore = append(moved[i].disk, 4<<20), append(moved[i].log, 4<<20), append(moved[i].raftStore, 1<<20)
		if moved[i].at >= 210*time.Second {
			moved[i].goroutines = []int64{50, 80}
		}
	}
	if p, _ := soakProblems(moved, 2*time.Minute, 0.2); len(p) > 0 {
		t.Fatalf("leadership moved: %v", p)
	}
	// One high sample at the end decides nothing.
	spike := series(func(at time.Duration) (int64, int64, int64) {
		if at == 4*time.Minute {
			return 400 << 20, 800, 80 << 20
		}
		return 40 << 20, 80, 8 << 20
	})
	if p, _ := soakProblems(spike, 2*time.Minute, 0.2); len(p) > 0 {
		t.Fatalf("one high sample: %v", p)
	}
	for _, tc := range []struct {
		name string
		grow func(at time.Duration) (int64, int64, int64)
	}{
		{"RSS", func(at time.Duration) (int64, int64, int64) { return 40<<20 + int64(at/time.Second)<<18, 80, 8 << 20 }},
		{"goroutines", func(at time.Duration) (int64, int64, int64) { return 40 << 20, 80 + int64(at/time.Second), 8 << 20 }},
		{"disk", func(at time.Duration) (int64, int64, int64) { return 40 << 20, 80, 8<<20 + int64(at/time.Second)<<16 }},
	} {
		p, _ := soakProblems(series(tc.grow), 2*time.Minute, 0.2)
		if len(p) != 1 || !strings.Contains(p[0], tc.name) {
			t.Errorf("%s growing: problems %v, want one naming %s", tc.name, p, tc.name)
		}
	}
}
