package raftfsm

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// retentionConfig is testConfig with small segments and a retention of
// three of them.
func retentionConfig(_ int, _ string, c *Config) {
	c.Store.MaxStoreBytes = 16 << 10
	c.Store.MaxRecordBytes = 4 << 10
	c.MaxEntryBytes = 8 << 10
	c.Store.RetainBytes = 48 << 10
}

// segmentFiles lists the store files of node i's local log.
func (tc *testCluster) segmentFiles(i int) []string {
	tc.t.Helper()
	entries, err := os.ReadDir(tc.nodes[i].store.Dir())
	if err != nil {
		tc.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".store") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// TestRetentionIsTheSameOnEveryReplica: retention drops whole segments, and
// since every replica cuts its segments at the same entries, every replica
// holds the same segments and the same lowest offset; a follower that was
// down while the others produced many times the retention and compacted
// Raft's log catches up through a snapshot, which carries the retained log,
// and ends with the same segments as well.
func TestRetentionIsTheSameOnEveryReplica(t *testing.T) {
	tc := newTestClusterWith(t, 3, retentionConfig)
	conf := tc.conf(0)
	tc.appendValues(0, 50)
	lagger := (tc.leaderIndex() + 1) % 3
	tc.waitApplied(lagger, 50)
	laggerLast := tc.nodes[lagger].raft.LastIndex()
	tc.stop(lagger)
	others := []int{(lagger + 1) % 3, (lagger + 2) % 3}

	// About ten times the retention (a record takes some 30 bytes).
	const n = 16000
	tc.appendValues(50, n, others...) // leadership may move between the two on a loaded machine
	for _, i := range others {
		tc.waitApplied(i, 50+n)
		st := tc.nodes[i].Stats().Store
		if st.LowestOffset == 0 || st.DroppedSegments == 0 {
			t.Fatalf("%s retained everything: %+v", nodeID(i), st)
		}
		if st.Bytes > conf.Store.RetainBytes+conf.Store.MaxStoreBytes {
			t.Fatalf("%s holds %d bytes, retention is %d and a segment %d", nodeID(i), st.Bytes, conf.Store.RetainBytes, conf.Store.MaxStoreBytes)
		}
		if err := tc.nodes[i].raft.Snapshot().Error(); err != nil {
			t.Fatalf("Snapshot on %s: %v", nodeID(i), err)
		}
		if first, err := tc.nodes[i].stores.FirstIndex(); err != nil || first <= laggerLast+1 {
			t.Fatalf("%s's Raft log was not compacted past the lagger's last index %d: first index %d, %v", nodeID(i), laggerLast, first, err)
		}
	}
	a, b := others[0], others[1]
	if fa, fb := tc.segmentFiles(a), tc.segmentFiles(b); !slices.Equal(fa, fb) {
		t.Fatalf("the replicas cut their segments differently:\n%s: %v\n%s: %v", nodeID(a), fa, nodeID(b), fb)
	}

	tc.start(lagger, false)
	tc.checkLog(lagger, 50+n)
	// The log is readable a moment before the install is counted.
	waitFor(t, 10*time.Second, "the lagging follower to count the snapshot it installed", func() bool {
		return tc.nodes[lagger].Stats().Snapshots.Restored == 1
	})
	// Three more segments' worth on every replica, the lagger included.
	appendValues(t, tc.leader(), 50+n, 2000)
	for i := range tc.nodes {
		tc.checkLog(i, 50+n+2000)
	}
	want := tc.nodes[a].Stats().Store
	for i := range tc.nodes {
		got := tc.nodes[i].Stats().Store
		if got.LowestOffset != want.LowestOffset || got.NextOffset != want.NextOffset || got.Bytes != want.Bytes {
			t.Errorf("%s holds [%d, %d) in %d bytes, %s [%d, %d) in %d bytes", nodeID(i), got.LowestOffset, got.NextOffset, got.Bytes,
				nodeID(a), want.LowestOffset, want.NextOffset, want.Bytes)
		}
		if got, want := tc.segmentFiles(i), tc.segmentFiles(a); !slices.Equal(got, want) {
			t.Errorf("%s's segments %v differ from %s's %v", nodeID(i), got, nodeID(a), want)
		}
	}
	leader := tc.leader()
	s := leader.Stats()
	if s.State != "Leader" || s.Term == 0 || s.CommitIndex < s.AppliedIndex || s.LastIndex < s.CommitIndex || s.Snapshots.Taken == 0 && leader != tc.nodes[a] && leader != tc.nodes[b] {
		t.Fatalf("leader replica.Stats = %+v", s)
	}
}

// TestRetentionByAgeWithoutWrites: an age limit drops old segments of a log
// nobody writes to any more, as the replica applies retention on a ticker
// (sealing a segment is what applies it otherwise).
func TestRetentionByAgeWithoutWrites(t *testing.T) {
	tc := newTestClusterWith(t, 1, func(i int, dir string, c *Config) {
		retentionConfig(i, dir, c)
		c.Store.RetainBytes = 0
		c.Store.RetainAge = time.Second
	})
	tc.appendValues(0, 2000) // several sealed segments
	l := tc.nodes[0]
	// Sealing the last segments applied the limit when they were fresh;
	// only the ticker drops them once they are older than it.
	waitFor(t, 20*time.Second, "the age limit to drop every sealed segment of an idle log", func() bool {
		return l.Stats().Store.Segments == 1
	})
	if st := l.Stats().Store; st.DroppedSegments == 0 || st.LowestOffset == 0 || st.NextOffset != 2000 {
		t.Fatalf("after the age limit: %+v", st)
	}
}
