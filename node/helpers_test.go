package node_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// Subjects of the test's client certificates besides root and nobody.
const (
	producerSubject = "producer"
	consumerSubject = "consumer"
)

// pki is a CA with node and client certificates, and an ACL.
type pki struct {
	dir      string // CA, node and client certificates
	otherDir string // a second CA with its own root client
	authz    *authz.Authorizer
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), otherDir: t.TempDir()}
	for _, dir := range []string{p.dir, p.otherDir} {
		c := certs.DefaultConfig()
		c.Dir = dir
		c.Clients = []string{producerSubject, consumerSubject}
		if _, err := certs.Generate(c); err != nil {
			t.Fatalf("certs.Generate: %v", err)
		}
	}
	aclDir := t.TempDir()
	grants := authz.Grants{
		certs.RootSubject: {authz.ActionProduce, authz.ActionConsume},
		producerSubject:   {authz.ActionProduce},
		consumerSubject:   {authz.ActionConsume},
	}
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

// clientTLS is the configuration of a client with the given subject's
// certificate from dir, verifying servers against caDir's CA. An empty
// subject presents no certificate.
func clientTLS(t testing.TB, dir, caDir, subject string) *tls.Config {
	t.Helper()
	f := certs.TLSFiles{CAFile: filepath.Join(caDir, certs.CACertFileName)}
	if subject != "" {
		f.CertFile = filepath.Join(dir, certs.ClientCertFileName(subject))
		f.KeyFile = filepath.Join(dir, certs.ClientKeyFileName(subject))
	}
	c, err := certs.ClientTLSConfig(f)
	if err != nil {
		t.Fatalf("ClientTLSConfig(%s): %v", subject, err)
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

// testConfig is node i's configuration with fast Raft timing and small
// segments and records.
func testConfig(t testing.TB, p *pki, i int) node.Config {
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
	r.Store.MaxStoreBytes = 64 << 10
	r.Store.MaxRecordBytes = 8 << 10
	r.Store.Logger = c.Logger
	r.MaxEntryBytes = 32 << 10
	r.ShutdownTransferTimeout = 2 * time.Second
	r.Logger = c.Logger
	return c
}

func nodeID(i int) string { return fmt.Sprintf("node-%d", i) }

// startNode starts a node and closes it when the test ends.
func startNode(t testing.TB, c node.Config) *node.Node {
	t.Helper()
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

// startCluster starts n nodes, node 0 bootstrapping, joins the others
// through the leader and waits until every node knows the leader.
func startCluster(t testing.TB, p *pki, n int, tweak func(*node.Config)) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	for i := range n {
		c := testConfig(t, p, i)
		if tweak != nil {
			tweak(&c)
		}
		nodes = append(nodes, startNode(t, c))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := nodes[0].WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		// A slow new member can cost the leader its leadership: join again
		// through whichever node leads.
		retry(t, 20*time.Second, func() error {
			l := leader(t, nodes)
			return l.Join(nodeID(i), nodes[i].Addr())
		})
	}
	for _, nd := range nodes {
		if _, _, err := nd.WaitForLeader(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// leader waits for one of nodes to lead and returns it.
func leader(t testing.TB, nodes []*node.Node) *node.Node {
	t.Helper()
	var l *node.Node
	waitFor(t, 20*time.Second, "a leader among the nodes", func() bool {
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

// follower returns a node of nodes that is not the leader.
func follower(t testing.TB, nodes []*node.Node) *node.Node {
	t.Helper()
	l := leader(t, nodes)
	for _, n := range nodes {
		if n != l {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
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

// retryable reports errors a client retries when leadership moves, which a
// loaded machine can cause at any time.
func retryable(err error) bool {
	var nl *raftfsm.NotLeaderError
	return status.Code(err) == codes.Unavailable || errors.As(err, &nl)
}

// retry runs f until it returns nil or an error that is not retryable.
func retry(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if !retryable(err) || time.Now().After(deadline) {
			t.Fatalf("giving up: %v", err)
		}
		<-tick.C
	}
}

// dial connects to addr with the given TLS configuration (nil: plaintext)
// and closes the connection when the test ends.
func dial(t testing.TB, addr string, conf *tls.Config) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(conf)
	opt := grpc.WithTransportCredentials(creds)
	if conf == nil {
		opt = grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	conn, err := grpc.NewClient(addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// client is a log.v1 client of addr authenticated as subject of p's CA.
func (p *pki) client(t testing.TB, addr, subject string) logv1.LogClient {
	t.Helper()
	return logv1.NewLogClient(dial(t, addr, clientTLS(t, p.dir, p.dir, subject)))
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t testing.TB, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, want)
	}
}
