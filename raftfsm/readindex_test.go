package raftfsm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

func TestReadIndex(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.appendValues(0, 100)
	li := tc.leaderIndex()
	l := tc.nodes[li]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ri, err := l.ReadIndex(ctx)
	if err != nil || ri != 100 {
		t.Fatalf("leader ReadIndex = %d, %v; want 100", ri, err)
	}
	for i, n := range tc.nodes {
		if i == li {
			continue
		}
		_, err := n.ReadIndex(ctx)
		var nl *replica.NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderAddr != string(tc.trans[li].LocalAddr()) {
			t.Fatalf("%s ReadIndex: %v; want a replica.NotLeaderError naming %s", nodeID(i), err, tc.trans[li].LocalAddr())
		}
	}

	// Nothing committed since the last barrier: a heartbeat round confirms
	// the leadership, and no entry is added.
	last := l.raft.LastIndex()
	if ri, err := l.ReadIndex(ctx); err != nil || ri != 100 {
		t.Fatalf("second ReadIndex = %d, %v; want 100", ri, err)
	}
	if got := l.raft.LastIndex(); got != last {
		t.Fatalf("a ReadIndex with nothing committed since the last added entries: last index %d, was %d", got, last)
	}

	// After a write, a barrier (one entry) makes sure every committed entry
	// is applied here.
	tc.appendValues(100, 1)
	last = l.raft.LastIndex()
	if ri, err := l.ReadIndex(ctx); err != nil || ri != 101 {
		t.Fatalf("ReadIndex after a write = %d, %v; want 101", ri, err)
	}
	if got := l.raft.LastIndex(); got != last+1 {
		t.Fatalf("ReadIndex after a write: last index %d, want %d (one barrier)", got, last+1)
	}

	cancelled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := l.ReadIndex(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadIndex with a cancelled context: %v", err)
	}
	tc.stop(li)
	if _, err := l.ReadIndex(ctx); !errors.Is(err, replica.ErrClosed) {
		t.Fatalf("ReadIndex after Close: %v, want replica.ErrClosed", err)
	}
}

// TestReadIndexOnDeposedLeader cuts the leader off while the others elect a
// new one and write more: the old leader, which may still believe it leads,
// must not give its own (stale) end as a read index.
func TestReadIndexOnDeposedLeader(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.appendValues(0, 10)
	old := tc.leaderIndex()
	var rest []int
	for i := range tc.nodes {
		if i != old {
			rest = append(rest, i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A barrier first, so that the old leader would answer from a
	// verification alone if it could.
	if ri, err := tc.nodes[old].ReadIndex(ctx); err != nil || ri != 10 {
		t.Fatalf("ReadIndex before the partition = %d, %v", ri, err)
	}

	tc.partition(old)
	start := time.Now()
	// A heartbeat answered just before the cut may still confirm a read
	// index (see ReadIndex); once those are in, it must refuse, within the
	// bound of ctx.
	confirmed := 0
	for {
		ri, err := tc.nodes[old].ReadIndex(ctx)
		if errors.Is(err, replica.ErrNotLeader) {
			break
		}
		if err != nil || ri != 10 {
			t.Fatalf("ReadIndex on a leader cut off from its quorum = %d, %v; want 10 or a replica.NotLeaderError", ri, err)
		}
		// Each follower has at most a heartbeat and an append in flight.
		if confirmed++; confirmed > 2*len(rest) {
			t.Fatalf("a leader cut off from its quorum confirmed %d read indexes; answers in flight at the cut explain at most %d", confirmed, 2*len(rest))
		}
	}
	t.Logf("the cut-off leader refused a read index after %v (%d confirmed by answers in flight)", time.Since(start), confirmed)

	tc.appendValues(10, 10, rest...)
	nl := tc.leader(rest...)
	if ri, err := nl.ReadIndex(ctx); err != nil || ri != 20 {
		t.Fatalf("new leader ReadIndex = %d, %v; want 20", ri, err)
	}
	if _, err := tc.nodes[old].ReadIndex(ctx); !errors.Is(err, replica.ErrNotLeader) {
		t.Fatalf("ReadIndex on the old leader after the election: %v; want a replica.NotLeaderError", err)
	}
}
