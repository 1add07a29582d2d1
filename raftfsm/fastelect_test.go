package raftfsm

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestLoneVoter(t *testing.T) {
	voter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter} }
	nonvoter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Nonvoter} }
	tests := []struct {
		name    string
		servers []raft.Server
		want    bool
	}{
		{name: "alone", servers: []raft.Server{voter("a")}, want: true},
		{name: "with a nonvoter", servers: []raft.Server{voter("a"), nonvoter("b")}, want: true},
		{name: "with another voter", servers: []raft.Server{voter("a"), voter("b")}},
		{name: "another voter alone", servers: []raft.Server{voter("b")}},
		{name: "a nonvoter itself", servers: []raft.Server{nonvoter("a"), voter("b")}},
		{name: "no configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := loneVoter(raft.Configuration{Servers: tt.servers}, "a"); got != tt.want {
				t.Errorf("loneVoter = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLoneVoterLeadsAtOnce: a single-voter replica, new and reopened with
// its Raft state, leads long before its heartbeat timeout could expire, and
// gets its configured timeouts back once it leads.
func TestLoneVoterLeadsAtOnce(t *testing.T) {
	const slow = time.Minute // a follower would wait 1-2 minutes
	dir := filepath.Join(t.TempDir(), nodeID(0))
	open := func(bootstrap bool) *Log {
		t.Helper()
		c := testConfig()
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = slow, slow, 50*time.Millisecond
		_, tr := raft.NewInmemTransport(raft.ServerAddress("mem-" + nodeID(0)))
		l, err := New(testIdentity(t, dir, 0, tr, bootstrap), c)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	leads := func(l *Log) {
		t.Helper()
		if l.tuning.restored == nil {
			t.Fatal("the timeouts of a lone voter were not lowered")
		}
		// Bounded well below the heartbeat timeout: without the fast
		// election the replica could not lead before it.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		select {
		case <-l.tuning.restored:
		case <-ctx.Done():
			t.Fatalf("a lone voter with a %v heartbeat timeout does not lead within 20s (state %s)", slow, l.State())
		}
		if !l.IsLeader() {
			t.Fatalf("state %s after the timeouts were restored, want Leader", l.State())
		}
		if rc := l.raft.ReloadableConfig(); rc.HeartbeatTimeout != slow || rc.ElectionTimeout != slow {
			t.Errorf("timeouts after leading: heartbeat %v, election %v; want %v", rc.HeartbeatTimeout, rc.ElectionTimeout, slow)
		}
	}

	l := open(true)
	leads(l)
	appendValues(t, l, 0, 20)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l = open(false)
	leads(l)
	appendValues(t, l, 20, 5)
	for off := uint64(0); off < 25; off++ {
		if got, err := l.Read(off); err != nil || string(got) != string(value(off)) {
			t.Fatalf("Read(%d) = %q, %v; want %q", off, got, err, value(off))
		}
	}
}

// TestFastElectionOnlyForALoneVoter: members of a larger cluster, and a
// replica whose lease timeout leaves nothing to lower, keep Raft's timing.
func TestFastElectionOnlyForALoneVoter(t *testing.T) {
	tc := newTestClusterWith(t, 3, func(i int, _ string, c *Config) {
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 100*time.Millisecond
	})
	tc.appendValues(0, 10)
	follower := (tc.leaderIndex() + 1) % 3
	tc.stop(follower)
	tc.start(follower, false)
	if tc.nodes[follower].tuning.restored != nil {
		t.Error("a member of a 3-voter cluster lowered its election timeouts on restart")
	}
	tc.waitApplied(follower, 10)

	// testConfig's lease equals its heartbeat timeout: nothing to lower.
	one := newTestCluster(t, 1)
	one.leader()
	if one.nodes[0].tuning.restored != nil {
		t.Error("timeouts were lowered below LeaderLeaseTimeout")
	}
}
