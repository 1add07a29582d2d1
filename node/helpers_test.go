package node_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// The names these tests have always used for nodetest's harness.

const (
	producerSubject = nodetest.ProducerSubject
	consumerSubject = nodetest.ConsumerSubject
)

// pki is nodetest's PKI with its directories under their old names.
type pki struct {
	*nodetest.PKI
	dir, otherDir string
}

func newPKI(t testing.TB) *pki {
	p := nodetest.NewPKI(t)
	return &pki{PKI: p, dir: p.Dir, otherDir: p.OtherDir}
}

func (p *pki) nodeFiles() certs.TLSFiles { return p.NodeFiles() }

func (p *pki) client(t testing.TB, addr, subject string) logv1.LogClient {
	t.Helper()
	return p.Client(t, addr, subject)
}

func clientTLS(t testing.TB, dir, caDir, subject string) *tls.Config {
	t.Helper()
	return nodetest.ClientTLS(t, dir, caDir, subject)
}

func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	return nodetest.Logger(t)
}

func testConfig(t testing.TB, p *pki, i int) node.Config {
	t.Helper()
	return nodetest.Config(t, p.PKI, i)
}

func nodeID(i int) string { return nodetest.NodeID(i) }

func retryable(err error) bool { return nodetest.Retryable(err) }

func startNode(t testing.TB, c node.Config) *node.Node {
	t.Helper()
	return nodetest.StartNode(t, c)
}

func startCluster(t testing.TB, p *pki, n int, tweak func(*node.Config)) []*node.Node {
	t.Helper()
	return nodetest.StartCluster(t, n, p.PKI, tweak).Nodes
}

// startWithClient starts a 3-node cluster and dials the node pick chooses
// (leader or follower) as root.
func startWithClient(t testing.TB, pick func(testing.TB, []*node.Node) *node.Node) (c logv1.LogClient, picked *node.Node, nodes []*node.Node) {
	t.Helper()
	p := newPKI(t)
	nodes = startCluster(t, p, 3, nil)
	picked = pick(t, nodes)
	return p.client(t, picked.Addr(), certs.RootSubject), picked, nodes
}

func leader(t testing.TB, nodes []*node.Node) *node.Node {
	t.Helper()
	return nodetest.Leader(t, nodes)
}

func follower(t testing.TB, nodes []*node.Node) *node.Node {
	t.Helper()
	return nodetest.Follower(t, nodes)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	nodetest.WaitFor(t, timeout, what, cond)
}

func retry(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	nodetest.Retry(t, timeout, f)
}

func dial(t testing.TB, addr string, conf *tls.Config) *grpc.ClientConn {
	t.Helper()
	return nodetest.Dial(t, addr, conf)
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	return nodetest.Context(t)
}

func wantCode(t testing.TB, what string, err error, want codes.Code) {
	t.Helper()
	nodetest.WantCode(t, what, err, want)
}
