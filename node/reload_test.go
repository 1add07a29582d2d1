package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node"
)

// reloadable is a PKI whose files the test rewrites: a CA, the node
// certificate and the clients root and alice in dir, an ACL in aclDir that
// grants root everything and alice nothing.
type reloadable struct {
	dir, aclDir string
}

func newReloadable(t *testing.T) *reloadable {
	t.Helper()
	r := &reloadable{dir: t.TempDir(), aclDir: t.TempDir()}
	c := certs.DefaultConfig()
	c.Dir = r.dir
	c.Clients = []string{"alice"}
	if _, err := certs.Generate(c); err != nil {
		t.Fatal(err)
	}
	r.writePolicy(t, authz.Grants{certs.RootSubject: {authz.ActionProduce, authz.ActionConsume}})
	return r
}

func (r *reloadable) writePolicy(t *testing.T, g authz.Grants) {
	t.Helper()
	if _, err := authz.WriteFiles(r.aclDir, g, true); err != nil {
		t.Fatal(err)
	}
}

// apply makes c read every certificate and the ACL from r's files, through
// reloaders.
func (r *reloadable) apply(t *testing.T, c *node.Config) {
	t.Helper()
	files := certs.TLSFiles{
		CertFile: filepath.Join(r.dir, certs.NodeCertFileName),
		KeyFile:  filepath.Join(r.dir, certs.NodeKeyFileName),
		CAFile:   filepath.Join(r.dir, certs.CACertFileName),
	}
	var err error
	c.ServerTLS, c.PeerTLS = nil, nil
	if c.ServerCerts, err = certs.NewReloader(files, false); err != nil {
		t.Fatal(err)
	}
	if c.PeerCerts, err = certs.NewReloader(files, true); err != nil {
		t.Fatal(err)
	}
	if c.Authorizer, err = authz.New(filepath.Join(r.aclDir, authz.ModelFileName), filepath.Join(r.aclDir, authz.PolicyFileName)); err != nil {
		t.Fatal(err)
	}
}

// serial returns the serial number of the certificate addr presents to a
// new connection.
func (r *reloadable) serial(t *testing.T, addr string) *big.Int {
	t.Helper()
	conf := clientTLS(t, r.dir, r.dir, certs.RootSubject)
	conn, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func fileSerial(t *testing.T, path string) *big.Int {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(path, path[:len(path)-len(".pem")]+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// TestReload rotates the node certificate and grants a new client while
// clients stay connected, then offers a bad policy and a bad certificate,
// which are refused with the files loaded before in force.
func TestReload(t *testing.T) {
	p := newPKI(t)
	r := newReloadable(t)
	nodes := startCluster(t, p, 3, func(c *node.Config) { r.apply(t, c) })
	f := follower(t, nodes)
	// Connections made before the reload, kept open throughout; writes
	// through the follower are forwarded to the leader.
	root := logv1.NewLogClient(dial(t, f.Addr(), clientTLS(t, r.dir, r.dir, certs.RootSubject)))
	alice := logv1.NewLogClient(dial(t, f.Addr(), clientTLS(t, r.dir, r.dir, "alice")))
	produce(t, root, []byte("before"))
	_, err := alice.Produce(testCtx(t), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
	wantCode(t, "alice before the grant", err, codes.PermissionDenied)

	oldSerial := r.serial(t, f.Addr())
	// Rotate: a new node certificate from the same CA, and a grant for alice.
	gc := certs.DefaultConfig()
	gc.Dir = r.dir
	gc.Force = true
	if _, err := certs.Generate(gc); err != nil {
		t.Fatal(err)
	}
	newSerial := fileSerial(t, filepath.Join(r.dir, certs.NodeCertFileName))
	if newSerial.Cmp(oldSerial) == 0 {
		t.Fatal("gencert --force issued the same serial")
	}
	r.writePolicy(t, authz.Grants{
		certs.RootSubject: {authz.ActionProduce, authz.ActionConsume},
		"alice":           {authz.ActionProduce},
	})
	for _, n := range nodes {
		if err := n.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	for _, n := range nodes {
		if got := r.serial(t, n.Addr()); got.Cmp(newSerial) != 0 {
			t.Fatalf("%s presents serial %x after the reload, want the new %x", n.Addr(), got, newSerial)
		}
	}
	// The connections made before go on; alice's is now allowed.
	produce(t, root, []byte("after"))
	produce(t, alice, []byte("alice"))
	// New connections, and Raft, work with the new certificate: a new
	// client writes through the follower and every node applies it.
	off := produce(t, logv1.NewLogClient(dial(t, f.Addr(), clientTLS(t, r.dir, r.dir, certs.RootSubject))), []byte("new conn"))
	for _, n := range nodes {
		c := logv1.NewLogClient(dial(t, n.Addr(), clientTLS(t, r.dir, r.dir, certs.RootSubject)))
		if got := consumeAll(t, c, off, 1); string(got[0]) != "new conn" {
			t.Fatalf("%s offset %d = %q", n.Addr(), off, got[0])
		}
	}

	// A policy file that does not parse is refused; the grant stays.
	policy := filepath.Join(r.aclDir, authz.PolicyFileName)
	if err := os.WriteFile(policy, []byte("p, alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); !errors.Is(err, authz.ErrRefused) {
		t.Fatalf("Reload with a bad policy: %v, want authz.ErrRefused", err)
	}
	produce(t, alice, []byte("alice again"))
	_, err = alice.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: 0})
	wantCode(t, "alice consuming under the kept policy", err, codes.PermissionDenied)

	// A certificate that does not match its key (another CA's) is refused;
	// the node keeps presenting the one it had.
	other := filepath.Join(p.dir, certs.NodeCertFileName)
	b, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, certs.NodeCertFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); !errors.Is(err, certs.ErrRefused) {
		t.Fatalf("Reload with a mismatched certificate: %v, want certs.ErrRefused", err)
	}
	if got := r.serial(t, f.Addr()); got.Cmp(newSerial) != 0 {
		t.Fatalf("after a refused reload %s presents serial %x, want %x", f.Addr(), got, newSerial)
	}
	produce(t, root, []byte("still"))
}

// TestReloadCARotation moves a running cluster to a new CA: first every node
// trusts both CAs, then presents a certificate of the new one. A node that
// joins afterwards, with only the new files, gets the log over Raft: the
// leader dials it trusting the new CA, which it learnt from a Reload.
func TestReloadCARotation(t *testing.T) {
	p := newPKI(t) // p.otherDir holds the new CA and its node certificate
	r := newReloadable(t)
	nodes := startCluster(t, p, 3, func(c *node.Config) { r.apply(t, c) })
	reloadAll := func() {
		t.Helper()
		for _, n := range nodes {
			if err := n.Reload(); err != nil {
				t.Fatalf("Reload: %v", err)
			}
		}
	}
	caFile := filepath.Join(r.dir, certs.CACertFileName)
	bundle := append(readTestFile(t, caFile), readTestFile(t, filepath.Join(p.otherDir, certs.CACertFileName))...)
	if err := os.WriteFile(caFile, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	reloadAll()
	for _, name := range []string{certs.NodeCertFileName, certs.NodeKeyFileName} {
		if err := os.WriteFile(filepath.Join(r.dir, name), readTestFile(t, filepath.Join(p.otherDir, name)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reloadAll()
	want := fileSerial(t, filepath.Join(p.otherDir, certs.NodeCertFileName))
	for _, n := range nodes {
		if got := r.serial(t, n.Addr()); got.Cmp(want) != 0 {
			t.Fatalf("%s presents serial %x, want the new CA's %x", n.Addr(), got, want)
		}
	}

	c := testConfig(t, p, 3)
	r.apply(t, &c)
	joiner := startNode(t, c)
	retry(t, 20*time.Second, func() error { return leader(t, nodes).Join(nodeID(3), joiner.Addr()) })
	root := func(addr string) logv1.LogClient {
		return logv1.NewLogClient(dial(t, addr, clientTLS(t, r.dir, r.dir, certs.RootSubject)))
	}
	off := produce(t, root(leader(t, nodes).Addr()), []byte("after the rotation"))
	if got := consumeAll(t, root(joiner.Addr()), off, 1); string(got[0]) != "after the rotation" {
		t.Fatalf("the joiner's offset %d = %q", off, got[0])
	}
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
