package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind. Raft does
// not join the goroutine of a leadership transfer still under way when it
// shuts down, and memberlist does not join a probe of a failed member still
// waiting for its answer (it ends within a probe interval, 1 s): nodes stop
// without leaving, so their peers are probing stopped ones.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*Raft).leaderLoop.func2"),
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}
