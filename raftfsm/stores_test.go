package raftfsm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// TestRestartOverEachStore restarts a replica on each kind of Raft store
// twice, with appends before and between: Raft replays its log every time,
// and the FSM must apply nothing twice.
func TestRestartOverEachStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind string) {
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

// forEachStore runs test as a subtest on each kind of Raft store.
func forEachStore(t *testing.T, test func(t *testing.T, kind string)) {
	for _, kind := range []string{RaftLogStoreSegments, RaftLogStoreWAL, RaftLogStoreBolt} {
		t.Run(kind, func(t *testing.T) { test(t, kind) })
	}
}

// TestRaftStoreKindIsKept opens a data directory made with one kind of store
// with the other configured: it keeps the kind it was made with.
func TestRaftStoreKindIsKept(t *testing.T) {
	tc := newStoreCluster(t, RaftLogStoreBolt)
	appendValues(t, tc.leader(), 0, 10)
	tc.stop(0)
	conf := tc.conf
	tc.conf = func(i int) Config {
		c := conf(i)
		c.RaftLogStore = RaftLogStoreWAL
		return c
	}
	tc.start(0, false)
	tc.checkLog(0, 10)
	appendValues(t, tc.leader(), 10, 5)
	tc.checkLog(0, 15)
	if _, ok := tc.nodes[0].stores.(walStores); ok {
		t.Fatal("the replica made with bolt opened a WAL")
	}
	if _, err := os.Stat(filepath.Join(tc.dirs[0], "raft", walDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a WAL directory appeared beside raft.db: %v", err)
	}
}

// newStoreCluster starts a single replica on the given kind of Raft store.
func newStoreCluster(t *testing.T, kind string) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, cut: map[[2]int]bool{}}
	tc.dirs = []string{t.TempDir()}
	tc.nodes, tc.trans = make([]*Log, 1), make([]*raft.InmemTransport, 1)
	tc.conf = func(i int) Config {
		c := testConfig()
		c.RaftLogStore = kind
		return c
	}
	tc.start(0, true)
	t.Cleanup(tc.close)
	return tc
}
