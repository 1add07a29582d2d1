package raftfsm

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// TestRestartOverEachStore restarts a replica on each kind of Raft store
// twice, with appends before and between: Raft replays its log every time,
// and the FSM must apply nothing twice.
func TestRestartOverEachStore(t *testing.T) {
	for _, kind := range []string{RaftLogStoreWAL, RaftLogStoreBolt} {
		t.Run(kind, func(t *testing.T) {
			tc := newStoreCluster(t, kind)
			appendValues(t, tc.leader(), 0, 300)
			tc.stop(0)
			tc.start(0, false)
			tc.checkLog(0, 300)
			appendValues(t, tc.leader(), 300, 200)
			// A snapshot and compaction in between, then more entries that
			// only the store's log holds.
			if err := tc.nodes[0].raft.Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
			appendValues(t, tc.leader(), 500, 100)
			tc.stop(0)
			tc.start(0, true) // Bootstrap is ignored: the node has state
			tc.checkLog(0, 600)
			appendValues(t, tc.leader(), 600, 1)
			tc.checkLog(0, 601)
		})
	}
}

// TestRaftStoreKindIsKept refuses to open a data directory with the other
// kind of store than the one it was made with.
func TestRaftStoreKindIsKept(t *testing.T) {
	tc := newStoreCluster(t, RaftLogStoreWAL)
	appendValues(t, tc.leader(), 0, 10)
	tc.stop(0)
	c := tc.conf(0)
	c.RaftLogStore = RaftLogStoreBolt
	_, c.Transport = raft.NewInmemTransport("")
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "keep the store the data was made with") {
		t.Fatalf("New with the other store kind: %v; want an error", err)
	}
	tc.start(0, false)
	tc.checkLog(0, 10)
}

// newStoreCluster starts a single replica on the given kind of Raft store.
func newStoreCluster(t *testing.T, kind string) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, cut: map[[2]int]bool{}}
	tc.dirs = []string{t.TempDir()}
	tc.nodes, tc.trans = make([]*Log, 1), make([]*raft.InmemTransport, 1)
	tc.conf = func(i int) Config {
		c := testConfig(t, tc.dirs[i], i)
		c.RaftLogStore = kind
		return c
	}
	tc.start(0, true)
	t.Cleanup(tc.close)
	return tc
}
