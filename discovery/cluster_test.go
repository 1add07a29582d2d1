package discovery_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
)

// clusterTimeout bounds every wait for a cluster to form or recover; the
// margin is for -race on a busy machine.
const clusterTimeout = 20 * time.Second

// testRefresh is the resolver's refresh interval in these tests.
const testRefresh = 200 * time.Millisecond

// pki is a CA with node and root client certificates, and an ACL letting
// root produce and consume.
type pki struct {
	dir   string
	authz *authz.Authorizer
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	c := certs.DefaultConfig()
	c.Dir = p.dir
	if _, err := certs.Generate(c); err != nil {
		t.Fatalf("certs.Generate: %v", err)
	}
	aclDir := t.TempDir()
	grants := authz.Grants{certs.RootSubject: {authz.ActionProduce, authz.ActionConsume}}
	if _, err := authz.WriteFiles(aclDir, grants, false); err != nil {
		t.Fatalf("authz.WriteFiles: %v", err)
	}
	a, err := authz.New(filepath.Join(aclDir, authz.ModelFileName), filepath.Join(aclDir, authz.PolicyFileName))
	if err != nil {
		t.Fatalf("authz.New: %v", err)
	}
	p.authz = a
	return p
}

func (p *pki) nodeFiles() certs.TLSFiles {
	return certs.TLSFiles{
		CertFile: filepath.Join(p.dir, certs.NodeCertFileName),
		KeyFile:  filepath.Join(p.dir, certs.NodeKeyFileName),
		CAFile:   filepath.Join(p.dir, certs.CACertFileName),
	}
}

// clientTLS is the configuration of the root client.
func (p *pki) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	c, err := certs.ClientTLSConfig(certs.TLSFiles{
		CAFile:   filepath.Join(p.dir, certs.CACertFileName),
		CertFile: filepath.Join(p.dir, certs.ClientCertFileName(certs.RootSubject)),
		KeyFile:  filepath.Join(p.dir, certs.ClientKeyFileName(certs.RootSubject)),
	})
	if err != nil {
		t.Fatalf("ClientTLSConfig: %v", err)
	}
	return c
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func nodeID(i int) string { return fmt.Sprintf("node-%d", i) }

// nodeConfig is node i's configuration with fast Raft timing, without Serf.
func nodeConfig(t testing.TB, p *pki, i int) node.Config {
	t.Helper()
	serverTLS, err := certs.ServerTLSConfig(p.nodeFiles())
	if err != nil {
		t.Fatal(err)
	}
	peerTLS, err := certs.PeerTLSConfig(p.nodeFiles())
	if err != nil {
		t.Fatal(err)
	}
	c := node.DefaultConfig()
	c.DataDir = filepath.Join(t.TempDir(), nodeID(i))
	c.NodeID = nodeID(i)
	c.RPCAddr = "127.0.0.1:0"
	c.Bootstrap = i == 0
	c.ServerTLS = serverTLS
	c.PeerTLS = peerTLS
	c.Authorizer = p.authz
	c.Logger = testLogger(t)
	c.GracefulStopTimeout = 5 * time.Second
	r := &c.Replica
	r.HeartbeatTimeout = 500 * time.Millisecond
	r.ElectionTimeout = 500 * time.Millisecond
	r.LeaderLeaseTimeout = 500 * time.Millisecond
	r.CommitTimeout = 5 * time.Millisecond
	r.SnapshotInterval = time.Hour
	r.SnapshotThreshold = 1 << 40
	r.ShutdownTransferTimeout = 2 * time.Second
	r.Store.Logger = c.Logger
	r.Logger = c.Logger
	return c
}

// cluster is a cluster of nodes on 127.0.0.1 and the PKI they trust.
type cluster struct {
	pki   *pki
	nodes []*node.Node
}

// startCluster starts n nodes, node 0 bootstrapping, joins the others through
// the leader and waits until every node knows the leader. The nodes are
// closed when the test ends.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{pki: newPKI(t)}
	for i := range n {
		nd, err := node.New(nodeConfig(t, c.pki, i))
		if err != nil {
			t.Fatalf("node.New(%s): %v", nodeID(i), err)
		}
		t.Cleanup(func() {
			if err := nd.Close(); err != nil {
				t.Errorf("Close(%s): %v", nodeID(i), err)
			}
		})
		c.nodes = append(c.nodes, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if _, _, err := c.nodes[0].WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		// A slow new member can cost the leader its leadership: join
		// again through whichever node leads.
		var err error
		waitFor(t, clusterTimeout, "joining "+nodeID(i), func() bool {
			err = c.leader(t).Join(nodeID(i), c.nodes[i].Addr())
			return err == nil
		})
	}
	for _, nd := range c.nodes {
		if _, _, err := nd.WaitForLeader(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// leader waits for a node that is not closed to lead and returns it.
func (c *cluster) leader(t testing.TB) *node.Node {
	t.Helper()
	var l *node.Node
	waitFor(t, clusterTimeout, "a leader", func() bool {
		for _, n := range c.nodes {
			if n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// target is the proglog target naming the given nodes (all when none).
func (c *cluster) target(nodes ...*node.Node) string {
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr())
	}
	return discovery.Scheme + "://" + strings.Join(addrs, ",")
}

// served counts, per method and address, the calls a Client's servers
// answered.
type served struct {
	mu     sync.Mutex
	counts map[string]map[string]int // method → addr → calls
	last   map[string]string         // method → addr of the last call
}

func (s *served) record(method, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts, s.last = map[string]map[string]int{}, map[string]string{}
	}
	if s.counts[method] == nil {
		s.counts[method] = map[string]int{}
	}
	s.counts[method][addr]++
	s.last[method] = addr
}

// take returns the counts of method and resets them.
func (s *served) take(method string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.counts[method]
	delete(s.counts, method)
	return m
}

func (s *served) lastAddr(method string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[method]
}

// dial connects a Client to target as root and closes it when the test
// ends; s, when not nil, counts the calls.
func (c *cluster) dial(t testing.TB, target string, s *served) *discovery.Client {
	t.Helper()
	var hook func(method, addr string)
	if s != nil {
		hook = s.record
	}
	cl, err := discovery.DialForTest(target, c.pki.clientTLS(t), testRefresh, hook)
	if err != nil {
		t.Fatalf("Dial(%s): %v", target, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// waitFor checks cond every few milliseconds until it holds, and fails the
// test if it does not within timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
