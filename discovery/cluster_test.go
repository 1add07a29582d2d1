package discovery_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// clusterTimeout bounds every wait for a cluster to form or recover.
const clusterTimeout = nodetest.ClusterTimeout

// testRefresh is the resolver's refresh interval in these tests.
const testRefresh = 200 * time.Millisecond

// cluster is nodetest's cluster, which the client tests dial.
type cluster struct{ *nodetest.Cluster }

// startCluster starts n nodes with nodetest.StartCluster and a PKI of their
// own.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	return &cluster{nodetest.StartCluster(t, n, nil, nil)}
}

// target is the proglog target naming the given nodes (all when none).
func (c *cluster) target(nodes ...*node.Node) string {
	if len(nodes) == 0 {
		nodes = c.Nodes
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
	cl, err := discovery.DialForTest(target, c.PKI.ClientTLS(t, certs.RootSubject), testRefresh, hook)
	if err != nil {
		t.Fatalf("Dial(%s): %v", target, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}
