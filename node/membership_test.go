package node_test

import (
	"context"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
)

// startGossipCluster starts 3 nodes that only know node 0's gossip address,
// so they become voters through Serf's join events alone, and waits until
// they are.
func startGossipCluster(t *testing.T, p *pki, tweak func(i int, c *node.Config)) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	for i := range 3 {
		c := testConfig(t, p, i)
		c.Gossip = discovery.DefaultConfig()
		c.Gossip.BindAddr = "127.0.0.1:0"
		c.Gossip.Logger = c.Logger
		if i > 0 {
			c.Gossip.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		if tweak != nil {
			tweak(i, &c)
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
	waitFor(t, 30*time.Second, "3 voters joined through Serf", func() bool { return voters(t, p, nodes) == 3 })
	return nodes
}

// voters returns how many voters the leader among nodes reports (-1 when it
// does not answer).
func voters(t *testing.T, p *pki, nodes []*node.Node) int {
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

// A node that leaves for good (Close with LeaveOnClose) is removed.
func TestSerfMembershipDrivesRaft(t *testing.T) {
	p := newPKI(t)
	nodes := startGossipCluster(t, p, nil)
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "2 voters after a node left", func() bool { return voters(t, p, nodes[:2]) == 2 })
}

// A node closed without LeaveOnClose is seen to fail, not to leave, and stays
// a voter, so it can come back as it was.
func TestCloseWithoutLeaveStaysAVoter(t *testing.T) {
	p := newPKI(t)
	nodes := startGossipCluster(t, p, func(i int, c *node.Config) { c.LeaveOnClose = i != 2 })
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	var status discovery.Status
	waitFor(t, 30*time.Second, "node 0's Serf to see node 2 gone", func() bool {
		for _, m := range nodes[0].GossipMembers() {
			if m.Name == nodeID(2) {
				status = m.Status
			}
		}
		return status != discovery.StatusAlive
	})
	if status != discovery.StatusFailed {
		t.Fatalf("node 2 closed without leaving has Serf status %q, want %q", status, discovery.StatusFailed)
	}
	if v := voters(t, p, nodes[:2]); v != 3 {
		t.Fatalf("%d voters after node 2 stopped without leaving, want 3", v)
	}
}
