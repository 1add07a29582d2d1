package nodetest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// ClusterTimeout bounds each wait for a cluster to form, elect or recover;
// the margin is for -race on a busy machine.
const ClusterTimeout = 20 * time.Second

// NodeID is the id of node i of a test cluster: node-0, node-1, …
func NodeID(i int) string { return fmt.Sprintf("node-%d", i) }

// Config is node i's configuration: the PKI's node certificate and ACL, a
// free loopback port, a data directory of the test, node 0 bootstrapping,
// no Serf, ReplicaConfig, and logging warnings to t.Log.
func Config(t testing.TB, p *PKI, i int) node.Config {
	t.Helper()
	c := node.DefaultConfig()
	c.DataDir = filepath.Join(t.TempDir(), NodeID(i))
	c.NodeID = NodeID(i)
	c.RPCAddr = "127.0.0.1:0"
	c.Bootstrap = i == 0
	c.ServerTLS = ServerTLS(t, p.Dir)
	peerTLS, err := certs.PeerTLSConfig(p.NodeFiles())
	if err != nil {
		t.Fatalf("PeerTLSConfig: %v", err)
	}
	c.PeerTLS = peerTLS
	c.Authorizer = p.Authorizer
	c.Logger = Logger(t)
	c.GracefulStopTimeout = 5 * time.Second
	rc := ReplicaConfig()
	c.Replica = &rc
	return c
}

// ReplicaConfig is the replica configuration Config gives each node: fast
// Raft timing (500 ms election), no snapshots, and small segments (64 KiB;
// Raft's 1 MiB), records (8 KiB) and Raft entries (32 KiB).
func ReplicaConfig() raftfsm.Config {
	r := raftfsm.DefaultConfig()
	r.HeartbeatTimeout = 500 * time.Millisecond
	r.ElectionTimeout = 500 * time.Millisecond
	r.LeaderLeaseTimeout = 500 * time.Millisecond
	r.CommitTimeout = 5 * time.Millisecond
	r.SnapshotInterval = time.Hour
	r.SnapshotThreshold = 1 << 40
	r.Store.MaxStoreBytes = 64 << 10
	r.Store.MaxRecordBytes = 8 << 10
	r.MaxEntryBytes = 32 << 10
	r.RaftSegmentBytes = 1 << 20
	r.ShutdownTransferTimeout = 2 * time.Second
	return r
}

// Replica returns the replica configuration of c, made by Config, for a
// test to tune before it starts the node. It is c's own copy: copies of c
// made before the call keep the configuration they had.
func Replica(c *node.Config) *raftfsm.Config {
	r := *c.Replica.(*raftfsm.Config)
	c.Replica = &r
	return &r
}

// StartNode starts a node and closes it when the test ends (failing the
// test if Close fails). It arms DefaultDeadline unless the test has a
// deadline.
func StartNode(t testing.TB, c node.Config) *node.Node {
	t.Helper()
	EnsureDeadline(t)
	n, err := node.New(c)
	if err != nil {
		t.Fatalf("node.New(%s): %v", c.NodeID, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close(%s): %v", c.NodeID, err)
		}
	})
	return n
}

// Cluster is a cluster of nodes on loopback ports and the PKI they trust.
type Cluster struct {
	// PKI is the CA, certificates and ACL of the cluster.
	PKI *PKI
	// Nodes are the nodes, node i at index i; a closed node stays until it
	// is restarted.
	Nodes []*node.Node
	// Configs are the nodes' configurations, with the addresses they bound.
	Configs []node.Config
}

// StartCluster starts n nodes with Config (changed by tweak, when not nil),
// node 0 bootstrapping, joins the others to the leader and waits until every
// node knows the leader. A nil p is a new PKI. The nodes are closed when the
// test ends. It arms DefaultDeadline unless the test has a deadline.
func StartCluster(t testing.TB, n int, p *PKI, tweak func(*node.Config)) *Cluster {
	t.Helper()
	EnsureDeadline(t)
	if p == nil {
		p = NewPKI(t)
	}
	c := &Cluster{PKI: p}
	for i := range n {
		conf := Config(t, p, i)
		if tweak != nil {
			tweak(&conf)
		}
		nd := StartNode(t, conf)
		c.Nodes = append(c.Nodes, nd)
		c.Configs = append(c.Configs, bound(conf, nd))
	}
	ctx, cancel := context.WithTimeout(Context(t), ClusterTimeout)
	defer cancel()
	if _, _, err := c.Nodes[0].WaitForLeader(ctx); err != nil {
		t.Fatalf("%s: no leader: %v", NodeID(0), err)
	}
	for i := 1; i < n; i++ {
		// A slow new member can cost the leader its leadership: join
		// again through whichever node leads.
		Retry(t, ClusterTimeout, func() error {
			return c.Leader(t).Join(c.Configs[i].NodeID, c.Nodes[i].Addr())
		})
	}
	for i, nd := range c.Nodes {
		if _, _, err := nd.WaitForLeader(ctx); err != nil {
			t.Fatalf("%s: no leader: %v", NodeID(i), err)
		}
	}
	return c
}

// bound is c with the addresses n bound, so that n restarts where it was.
func bound(c node.Config, n *node.Node) node.Config {
	c.RPCAddr = n.Addr()
	if g := n.GossipAddr(); g != "" {
		c.Gossip.BindAddr = g
	}
	return c
}

// Addrs are the nodes' RPC addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Leader waits for one of the nodes to lead and returns it.
func (c *Cluster) Leader(t testing.TB) *node.Node {
	t.Helper()
	return Leader(t, c.Nodes)
}

// Follower returns a node that is not the leader.
func (c *Cluster) Follower(t testing.TB) *node.Node {
	t.Helper()
	return Follower(t, c.Nodes)
}

// Close closes node i, failing the test if Close fails; the node stays in
// Nodes until Restart.
func (c *Cluster) Close(t testing.TB, i int) {
	t.Helper()
	if err := c.Nodes[i].Close(); err != nil {
		t.Fatalf("Close(%s): %v", c.Configs[i].NodeID, err)
	}
}

// Restart closes node i if it runs and starts it again on the same
// addresses and data directory; the new node replaces it in Nodes.
func (c *Cluster) Restart(t testing.TB, i int) *node.Node {
	t.Helper()
	c.Close(t, i)
	c.Nodes[i] = StartNode(t, c.Configs[i])
	return c.Nodes[i]
}

// Leader waits for one of nodes to lead and returns it.
func Leader(t testing.TB, nodes []*node.Node) *node.Node {
	t.Helper()
	var l *node.Node
	WaitFor(t, ClusterTimeout, "a leader among the nodes", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// Follower returns a node of nodes that is not the leader.
func Follower(t testing.TB, nodes []*node.Node) *node.Node {
	t.Helper()
	l := Leader(t, nodes)
	for _, n := range nodes {
		if n != l {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}
