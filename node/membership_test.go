package node_test

import (
	"context"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
)

// Nodes that only know one member's gossip address become voters through
// Serf's join events alone, and a node that leaves is removed.
func TestSerfMembershipDrivesRaft(t *testing.T) {
	p := newPKI(t)
	var nodes []*node.Node
	for i := range 3 {
		c := testConfig(t, p, i)
		c.Gossip = discovery.DefaultConfig()
		c.Gossip.BindAddr = "127.0.0.1:0"
		c.Gossip.Logger = c.Logger
		if i > 0 {
			c.Gossip.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		n := startNode(t, c)
		if i == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if _, _, err := n.WaitForLeader(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			if n.GossipAddr() == "" {
				t.Fatal("GossipAddr is empty with Serf running")
			}
		}
		nodes = append(nodes, n)
	}
	voters := func() int {
		cl := p.client(t, leader(t, nodes).Addr(), "root")
		resp, err := cl.GetServers(testCtx(t), &logv1.GetServersRequest{})
		if err != nil {
			return -1
		}
		v := 0
		for _, s := range resp.Servers {
			if s.IsVoter {
				v++
			}
		}
		return v
	}
	waitFor(t, 30*time.Second, "3 voters joined through Serf", func() bool { return voters() == 3 })

	// Node 2 leaves for good: the leader removes it from Raft.
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	nodes = nodes[:2]
	waitFor(t, 30*time.Second, "2 voters after a node left", func() bool { return voters() == 2 })
}
