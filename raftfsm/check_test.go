package raftfsm

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/proglogctl/proglogctl/logstore"
)

func TestCheck_replica(t *testing.T) {
	forEachStore(t, testCheckReplica)
}

func testCheckReplica(t *testing.T, kind string) {
	tc := newTestClusterWith(t, 1, func(_ int, _ string, c *Config) { c.RaftLogStore = kind })
	tc.appendValues(0, 50)
	if err := tc.nodes[0].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	tc.appendValues(50, 10)
	dir := tc.dirs[0]
	if !IsReplicaDir(dir) || IsReplicaDir(filepath.Join(dir, "log")) {
		t.Fatal("IsReplicaDir does not tell a replica's directory from its log")
	}

	// A running replica holds the log's LOCK.
	if _, err := Check(dir, logstore.CheckOptions{}, 100*time.Millisecond); !errors.Is(err, logstore.ErrLocked) {
		t.Fatalf("Check of a running replica: %v, want logstore.ErrLocked", err)
	}
	tc.stop(0)

	r, err := Check(dir, logstore.CheckOptions{}, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Log.Problems() || len(r.Problems) > 0 || r.Log.NextOffset != 60 {
		t.Fatalf("clean replica: problems %v, log %+v", r.Problems, r.Log)
	}
	rs := r.Raft
	if r.Applied == 0 || rs.LastIndex < r.Applied || rs.FirstIndex == 0 || rs.CurrentTerm == 0 ||
		rs.Snapshots != 1 || rs.CommandsAfter != 0 || rs.Snapshot == nil || rs.Snapshot.Index == 0 || rs.Snapshot.Index >= r.Applied {
		t.Fatalf("applied %d, Raft state %+v (snapshot %+v)", r.Applied, rs, rs.Snapshot)
	}

	if kind != RaftLogStoreBolt {
		return
	}
	// Raft's store held by another process (here: another open file).
	db, err := bbolt.Open(filepath.Join(dir, "raft", "raft.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Check(dir, logstore.CheckOptions{}, 50*time.Millisecond); !errors.Is(err, ErrInUse) {
		t.Fatalf("Check with raft.db held: %v, want ErrInUse", err)
	}
}

func TestRaftStateCompare(t *testing.T) {
	snap := func(i uint64) *SnapshotInfo { return &SnapshotInfo{Index: i, Term: 1} }
	tests := []struct {
		name               string
		state              RaftState
		applied            uint64
		problem, note      string
		noProblem, noNotes bool
	}{
		{name: "in step", state: RaftState{FirstIndex: 1, LastIndex: 10}, applied: 10, noProblem: true, noNotes: true},
		{name: "entries to apply", state: RaftState{FirstIndex: 1, LastIndex: 12, CommandsAfter: 2}, applied: 10, noProblem: true, note: "2 entries of records past the applied index"},
		{name: "no-ops and barriers past applied", state: RaftState{FirstIndex: 1, LastIndex: 12}, applied: 10, noProblem: true, noNotes: true},
		{name: "log ahead of Raft", state: RaftState{FirstIndex: 1, LastIndex: 10, Snapshot: snap(8)}, applied: 11, problem: "past Raft's last index 10"},
		{name: "behind a snapshot", state: RaftState{FirstIndex: 21, LastIndex: 30, Snapshot: snap(25)}, applied: 5, noProblem: true, note: "restores the snapshot"},
		{name: "gap", state: RaftState{FirstIndex: 21, LastIndex: 30, Snapshot: snap(4)}, applied: 5, problem: "entries 6 to 20"},
		{name: "everything in a snapshot", state: RaftState{Snapshot: snap(30)}, applied: 30, noProblem: true, noNotes: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, notes := tt.state.compare(tt.applied)
			p, n := strings.Join(problems, "|"), strings.Join(notes, "|")
			if (tt.noProblem && p != "") || !strings.Contains(p, tt.problem) || (tt.noNotes && n != "") || !strings.Contains(n, tt.note) {
				t.Fatalf("problems %q, notes %q; want problem %q, note %q", p, n, tt.problem, tt.note)
			}
		})
	}
}
