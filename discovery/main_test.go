package discovery

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind, Serf's
// and memberlist's included. Raft does not join the goroutine of a
// leadership transfer still under way when it shuts down, which the client
// tests cause by closing leaders.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*Raft).leaderLoop.func2"),
	)
}
