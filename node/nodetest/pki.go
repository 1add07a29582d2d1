package nodetest

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
)

// Subjects of the PKI's client certificates besides certs.RootSubject (who
// may produce and consume) and certs.NobodySubject (who may do neither).
const (
	ProducerSubject = "producer" // may produce
	ConsumerSubject = "consumer" // may consume
)

// PKI is a CA with node and client certificates in a temporary directory,
// and an ACL over the subjects.
type PKI struct {
	// Dir holds the CA, the node's certificate and the client certificates
	// of root, nobody, producer and consumer, under certs' file names.
	Dir string
	// OtherDir holds a second CA with the same certificates, which Dir's CA
	// has never signed.
	OtherDir string
	// Authorizer grants root produce and consume, producer produce and
	// consumer consume.
	Authorizer *authz.Authorizer
}

// NewPKI generates a PKI in temporary directories of the test.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir(), OtherDir: t.TempDir()}
	for _, dir := range []string{p.Dir, p.OtherDir} {
		c := certs.DefaultConfig()
		c.Dir = dir
		c.Clients = []string{ProducerSubject, ConsumerSubject}
		if _, err := certs.Generate(c); err != nil {
			t.Fatalf("certs.Generate: %v", err)
		}
	}
	aclDir := t.TempDir()
	grants := authz.Grants{
		certs.RootSubject: {authz.ActionProduce, authz.ActionConsume},
		ProducerSubject:   {authz.ActionProduce},
		ConsumerSubject:   {authz.ActionConsume},
	}
	if _, err := authz.WriteFiles(aclDir, grants, false); err != nil {
		t.Fatalf("authz.WriteFiles: %v", err)
	}
	a, err := authz.New(filepath.Join(aclDir, authz.ModelFileName), filepath.Join(aclDir, authz.PolicyFileName))
	if err != nil {
		t.Fatalf("authz.New: %v", err)
	}
	p.Authorizer = a
	return p
}

// NodeFiles are the node's certificate, key and CA in dir, as certs.Generate
// names them.
func NodeFiles(dir string) certs.TLSFiles {
	return certs.TLSFiles{
		CertFile: filepath.Join(dir, certs.NodeCertFileName),
		KeyFile:  filepath.Join(dir, certs.NodeKeyFileName),
		CAFile:   filepath.Join(dir, certs.CACertFileName),
	}
}

// NodeFiles are the node's certificate, key and CA.
func (p *PKI) NodeFiles() certs.TLSFiles { return NodeFiles(p.Dir) }

// ServerTLS is the TLS configuration of a server with the node's
// certificate from dir, requiring clients of dir's CA.
func ServerTLS(t testing.TB, dir string) *tls.Config {
	t.Helper()
	c, err := certs.ServerTLSConfig(NodeFiles(dir))
	if err != nil {
		t.Fatalf("ServerTLSConfig: %v", err)
	}
	return c
}

// ClientTLS is the configuration of a client with the given subject's
// certificate from dir, verifying servers against caDir's CA. An empty
// subject presents no certificate.
func ClientTLS(t testing.TB, dir, caDir, subject string) *tls.Config {
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

// ClientTLS is the configuration of a client of the PKI's CA authenticated
// as subject ("" presents no certificate).
func (p *PKI) ClientTLS(t testing.TB, subject string) *tls.Config {
	t.Helper()
	return ClientTLS(t, p.Dir, p.Dir, subject)
}

// Dial connects to addr with the given TLS configuration (nil: plaintext)
// and closes the connection when the test ends.
func Dial(t testing.TB, addr string, conf *tls.Config) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if conf != nil {
		creds = credentials.NewTLS(conf)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Client is a log.v1 client of addr authenticated as subject; it is closed
// when the test ends.
func (p *PKI) Client(t testing.TB, addr, subject string) logv1.LogClient {
	t.Helper()
	return logv1.NewLogClient(Dial(t, addr, p.ClientTLS(t, subject)))
}
