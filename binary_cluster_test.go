package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

func TestBinaryThreeNodeCluster(t *testing.T) {
	c := startCluster(t, 3)

	// Produce through a follower (it forwards), then read from every node.
	leader := c.leader(c.procs...)
	var follower *proc
	for _, p := range c.procs {
		if p != leader {
			follower = p
		}
	}
	fc := logv1.NewLogClient(c.dial(follower.rpcAddr))
	acked := map[uint64]string{}
	produce := func(cl logv1.LogClient, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			v := fmt.Sprintf("record-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := cl.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
			cancel()
			if err != nil {
				t.Fatalf("Produce(%s): %v", v, err)
			}
			acked[resp.Offset] = v
		}
	}
	produce(fc, 0, 50)
	checkAll := func(procs ...*proc) {
		t.Helper()
		for _, p := range procs {
			cl := logv1.NewLogClient(c.dial(p.rpcAddr))
			for off, want := range acked {
				var got string
				waitFor(t, 20*time.Second, fmt.Sprintf("offset %d on %s", off, p.name), func() bool {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					resp, err := cl.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
					if err != nil {
						return false
					}
					got = string(resp.Record.Value)
					return true
				})
				if got != want {
					t.Fatalf("%s offset %d = %q, want %q", p.name, off, got, want)
				}
			}
		}
	}
	checkAll(c.procs...)

	// Kill the leader: the others elect a new one and lose nothing.
	c.signal(leader, syscall.SIGKILL)
	var rest []*proc
	for _, p := range c.procs {
		if p != leader {
			rest = append(rest, p)
		}
	}
	newLeader := c.leader(rest...)
	produce(logv1.NewLogClient(c.dial(newLeader.rpcAddr)), 50, 20)
	checkAll(rest...)

	// Restart the old leader: it rejoins and catches up.
	c.start(leader)
	waitFor(t, 30*time.Second, leader.name+" serving again", func() bool { return c.serving(leader) })
	checkAll(leader)
	t.Logf("%d acknowledged records on every node after a leader kill and restart", len(acked))

	// SIGTERM stops a node gracefully: it exits 0.
	p := c.procs[2]
	if err := c.signal(p, syscall.SIGTERM); err != nil {
		t.Fatalf("%s after SIGTERM: %v\n%s", p.name, err, p.out)
	}
}

// Three nodes started at once, the joiners before their seed (as compose,
// systemd or a script may start them), form a cluster. Stopped one after
// another with SIGTERM and no flags, they stay voters: two of them started
// again, the first while its seed is down, elect a leader and take a write
// while the third stays down.
func TestBinaryStartTogetherStopIsRestart(t *testing.T) {
	c := newCluster(t, 3)
	for _, p := range slices.Backward(c.procs) {
		c.start(p)
	}
	waitFor(t, 60*time.Second, "3 voters", func() bool { return c.voters(c.procs[0].rpcAddr) == 3 })
	for _, p := range c.procs {
		waitFor(t, 30*time.Second, p.name+" serving", func() bool { return c.serving(p) })
	}

	for _, p := range c.procs {
		if err := c.signal(p, syscall.SIGTERM); err != nil {
			t.Fatalf("%s after SIGTERM: %v; want exit 0", p.name, err)
		}
	}
	seed, joiner := c.procs[0], c.procs[1]
	c.start(joiner)
	c.start(seed)
	l := c.leader(seed, joiner)
	if v := c.voters(l.rpcAddr); v != 3 {
		t.Errorf("%d voters after every node was stopped, want 3: nobody left", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, errOut, code := c.runClient(ctx, "produce", "--timeout", "20s", "after-restart"); code != 0 {
		t.Fatalf("produce with two of three nodes back: exit %d, %q, %s", code, out, errOut)
	}
}

// tail follows the log across a rolling SIGKILL of every node, the leader
// first, while records are produced: it prints every record once, in order,
// exactly as the log holds them.
func TestBinaryTailAcrossNodeKills(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// History: tail -n 3 starts at the eighth of ten records.
	history := []string{"produce"}
	for i := range 10 {
		history = append(history, fmt.Sprintf("h-%d", i))
	}
	if out, errOut, code := c.runClient(ctx, history...); code != 0 || out != "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n" {
		t.Fatalf("produce h-0..h-9: exit %d, %q, %s; want offsets 0 to 9", code, out, errOut)
	}
	const from = 7
	acked := map[uint64]string{7: "h-7", 8: "h-8", 9: "h-9"}

	tailOut := &lineLog{}
	tail := c.startClient("tail", tailOut, "tail", "-n", "3", "--output", "json")
	waitFor(t, 20*time.Second, "tail to print the last 3 of 10 records", func() bool { return len(tailOut.lines()) >= 3 })

	prod := startProducer(t, c)
	// progress waits for the producer to have more records acknowledged.
	progress := func(when string) {
		t.Helper()
		n := prod.ackedCount(t)
		waitFor(t, 30*time.Second, "5 more acknowledged records "+when, func() bool { return prod.ackedCount(t) >= n+5 })
	}
	progress("before any kill")

	// Kill the leader, then each other node, restarting each before the
	// next: tail's stream is served by one node until that node dies, and
	// every node dies once, so the stream is broken at least once; each
	// kill of a leader also changes the leader.
	first := c.leader(c.procs...)
	order := []*proc{first}
	for _, p := range c.procs {
		if p != first {
			order = append(order, p)
		}
	}
	var killed []string
	for i, p := range order {
		name := p.name
		if i == 0 {
			name += " (leader)"
		}
		killed = append(killed, name)
		c.signal(p, syscall.SIGKILL)
		progress("with " + name + " killed")
		c.start(p)
		waitFor(t, 30*time.Second, p.name+" serving again", func() bool { return c.serving(p) })
		progress("after " + p.name + " restarted")
	}
	prodAcked, unknown, notProduced := prod.halt(t)
	var last uint64
	for off, v := range prodAcked {
		acked[off] = v
		last = max(last, off)
	}

	waitFor(t, 30*time.Second, fmt.Sprintf("tail to print offset %d, the last acknowledged", last), func() bool {
		recs := parseRecords(t, "tail", tailOut.lines())
		return len(recs) > 0 && recs[len(recs)-1].Offset >= last
	})
	if err := c.signal(tail, syscall.SIGTERM); err != nil {
		t.Fatalf("tail after SIGTERM: %v; want exit 0\n%s", err, tail.out)
	}
	got := parseRecords(t, "tail", tailOut.lines()) // complete: Wait has copied all of stdout

	if probs := sequenceProblems(from, got); len(probs) > 0 {
		t.Errorf("tail's offsets do not run one by one from %d:\n\t%s", from, strings.Join(probs, "\n\t"))
	}
	end := got[len(got)-1].Offset + 1
	out, errOut, code := c.runClient(ctx, "consume", "--from", strconv.Itoa(from), "--to", strconv.FormatUint(end, 10), "--output", "json")
	if code != 0 {
		t.Fatalf("consume --from %d --to %d: exit %d: %s", from, end, code, errOut)
	}
	want := parseRecords(t, "consume", strings.Split(strings.TrimSuffix(out, "\n"), "\n"))
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w jsonRecord
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("tail and consume --from %d --to %d differ (%d and %d records), first at line %d: tail %+v, consume %+v",
					from, end, len(got), len(want), i+1, g, w)
				break
			}
		}
	}
	if probs := ackedProblems(acked, got); len(probs) > 0 {
		t.Errorf("acknowledged records wrong in tail's output:\n\t%s", strings.Join(probs, "\n\t"))
	}
	for _, r := range got {
		if slices.Contains(notProduced, r.Value) {
			t.Errorf("%q is at offset %d, but produce said it was not produced", r.Value, r.Offset)
		}
	}
	t.Logf("tail printed offsets %d..%d across SIGKILLs of %s; %d records acknowledged, %d produce runs of unknown outcome, %d not produced",
		from, end-1, strings.Join(killed, ", "), len(acked), len(unknown), len(notProduced))
}
