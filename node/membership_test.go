package node_test

import (
	"context"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// gossipTestConfig is testConfig with Serf on a free loopback port and
// join attempts retried every few tens of milliseconds.
func gossipTestConfig(t *testing.T, p *pki, i int) node.Config {
	t.Helper()
	c := testConfig(t, p, i)
	c.Gossip = discovery.DefaultConfig()
	c.Gossip.BindAddr = "127.0.0.1:0"
	c.Gossip.RetryJoinInterval = 20 * time.Millisecond
	c.Gossip.RetryJoinMaxInterval = 200 * time.Millisecond
	return c
}

// startGossipCluster starts 3 nodes that only know node 0's gossip address,
// so they become voters through Serf's join events alone, and waits until
// they are. It returns the nodes and their configurations.
func startGossipCluster(t *testing.T, p *pki, tweak func(i int, c *node.Config)) ([]*node.Node, []node.Config) {
	t.Helper()
	var (
		nodes []*node.Node
		confs []node.Config
	)
	for i := range 3 {
		c := gossipTestConfig(t, p, i)
		if i > 0 {
			c.Gossip.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		if tweak != nil {
			tweak(i, &c)
		}
		confs = append(confs, c)
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
	return nodes, confs
}

// voters returns how many voters the leader among nodes reports (-1 when it
// does not answer).
func voters(t *testing.T, p *pki, nodes []*node.Node) int {
	cl := p.client(t, leader(t, nodes).Addr(), "root")
	resp, err := cl.GetServers(testCtx(t), &logv1.GetServersRequest{})
	if err != nil {
		return -1
	}
	return nodetest.Voters(resp.Servers)
}

// A node that leaves for good (Close with LeaveOnClose) is removed.
func TestSerfMembershipDrivesRaft(t *testing.T) {
	p := newPKI(t)
	nodes, _ := startGossipCluster(t, p, func(i int, c *node.Config) { c.LeaveOnClose = i == 2 })
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "2 voters after a node left", func() bool { return voters(t, p, nodes[:2]) == 2 })
}

// A node closed without LeaveOnClose is seen to fail, not to leave, and stays
// a voter, so it can come back as it was.
func TestCloseWithoutLeaveStaysAVoter(t *testing.T) {
	p := newPKI(t)
	nodes, _ := startGossipCluster(t, p, func(i int, c *node.Config) { c.LeaveOnClose = i != 2 })
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

// deadAddr returns a loopback address nothing listens on now.
func deadAddr(t *testing.T) string {
	t.Helper()
	return nodetest.FreeAddr(t)
}

// A joiner started before its seed (as three services started together may
// be) comes up anyway, and becomes a voter once the seed starts.
func TestJoinerStartsBeforeSeed(t *testing.T) {
	p := newPKI(t)
	seedGossip := deadAddr(t)
	jc := gossipTestConfig(t, p, 1)
	jc.Gossip.StartJoinAddrs = []string{seedGossip}
	joiner := startNode(t, jc)
	if joiner.IsLeader() {
		t.Fatal("a joiner with no Raft state leads")
	}

	sc := gossipTestConfig(t, p, 0)
	sc.Gossip.BindAddr = seedGossip
	seed := startNode(t, sc)
	nodes := []*node.Node{seed, joiner}
	waitFor(t, 30*time.Second, "the joiner to be a voter once its seed started", func() bool { return voters(t, p, nodes) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if id, _, err := joiner.WaitForLeader(ctx); err != nil || id != nodeID(0) {
		t.Fatalf("joiner's leader: %q, %v; want %s", id, err, nodeID(0))
	}
}

// Nodes stopped one after another with the default configuration stay
// voters, as for a rolling restart: the two stopped first, started again,
// elect a leader and commit a write while the third stays down. The first of
// them starts while its only join address (node 0's, stopped) is down.
func TestStopAllThenStartTwo(t *testing.T) {
	p := newPKI(t)
	nodes, confs := startGossipCluster(t, p, nil)
	before := produce(t, p.client(t, leader(t, nodes).Addr(), certs.RootSubject), []byte("before"))
	gossip := make([]string, len(nodes))
	for i, n := range nodes {
		gossip[i] = n.GossipAddr()
	}
	for i, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatalf("Close(%s): %v", nodeID(i), err)
		}
	}

	var again []*node.Node
	for _, i := range []int{1, 0} {
		c := confs[i]
		// Raft knows its members by address; Serf comes back where node
		// 1's join address points.
		c.RPCAddr, c.Gossip.BindAddr = nodes[i].Addr(), gossip[i]
		again = append(again, startNode(t, c))
	}
	l := leader(t, again)
	root := p.client(t, l.Addr(), certs.RootSubject)
	after := produce(t, root, []byte("after"))
	got := consumeAll(t, root, before, int(after-before+1))
	if string(got[0]) != "before" || string(got[len(got)-1]) != "after" {
		t.Fatalf("offsets %d..%d hold %q; want %q first and %q last", before, after, got, "before", "after")
	}
	if v := voters(t, p, again); v != 3 {
		t.Errorf("%d voters after a stop of every node, want 3 (nobody left)", v)
	}
}
