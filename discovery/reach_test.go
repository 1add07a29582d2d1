package discovery_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// newExpiredPKI is newPKI with leaf certificates that expired a year ago.
func newExpiredPKI(t testing.TB) *nodetest.PKI {
	t.Helper()
	p := &nodetest.PKI{Dir: t.TempDir()}
	c := certs.DefaultConfig()
	c.Dir = p.Dir
	c.NotBefore = time.Now().Add(-2 * 365 * 24 * time.Hour)
	c.LeafValidity = 24 * time.Hour
	if _, err := certs.Generate(c); err != nil {
		t.Fatalf("certs.Generate: %v", err)
	}
	return p
}

// TestClientFailsFast checks that a client that cannot reach any server
// fails its calls well before their deadline, saying why: every server
// refused the connection, or a TLS handshake failed (either end's
// certificate not accepted). Each case would otherwise wait out the 10 s
// deadline.
func TestClientFailsFast(t *testing.T) {
	p, expired := nodetest.NewPKI(t), newExpiredPKI(t)
	other := &nodetest.PKI{Dir: p.OtherDir} // a CA p's never signed
	stub := startStubLeader(t, p)
	expiredStub := startStubLeader(t, expired)
	mixed := func(t testing.TB) certs.TLSFiles { // trusts p's CA, presents other's certificate
		return certs.TLSFiles{
			CAFile:   filepath.Join(p.Dir, certs.CACertFileName),
			CertFile: filepath.Join(other.Dir, certs.ClientCertFileName(certs.RootSubject)),
			KeyFile:  filepath.Join(other.Dir, certs.ClientKeyFileName(certs.RootSubject)),
		}
	}
	files := func(q *nodetest.PKI) certs.TLSFiles {
		return certs.TLSFiles{
			CAFile:   filepath.Join(q.Dir, certs.CACertFileName),
			CertFile: filepath.Join(q.Dir, certs.ClientCertFileName(certs.RootSubject)),
			KeyFile:  filepath.Join(q.Dir, certs.ClientKeyFileName(certs.RootSubject)),
		}
	}
	for _, tc := range []struct {
		name   string
		target string
		files  certs.TLSFiles
		to     map[string]string // ConnectTo
		kind   error
		cause  string
		within time.Duration
	}{
		{"refused", "127.0.0.1:1,127.0.0.1:2", files(p), nil, discovery.ErrUnreachable, "connection refused", 2 * time.Second},
		{"server from another CA", stub.addr, files(other), nil, discovery.ErrHandshake, "x509: certificate signed by unknown authority", time.Second},
		{"client from another CA", stub.addr, mixed(t), nil, discovery.ErrHandshake, "tls: ", time.Second},
		{"server certificate expired", expiredStub.addr, files(expired), nil, discovery.ErrHandshake, "expired", time.Second},
		{"name mismatch", "elsewhere.test:8400", files(p), map[string]string{"elsewhere.test:8400": stub.addr}, discovery.ErrHandshake, "not elsewhere.test", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := certs.ClientTLSConfig(tc.files)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := discovery.Dial(tc.target, conf, discovery.ConnectTo(tc.to))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			check := func(call string, err error, took time.Duration) {
				t.Helper()
				var ce *discovery.ConnectError
				if !errors.As(err, &ce) || !errors.Is(err, tc.kind) {
					t.Fatalf("%s: %v (%T), want a *ConnectError of kind %v", call, err, err, tc.kind)
				}
				if got := ce.Cause(); !containsStr(got, tc.cause) {
					t.Errorf("%s: cause %q, want it to contain %q", call, got, tc.cause)
				}
				want := codes.Unavailable
				if tc.kind == discovery.ErrHandshake {
					want = codes.Unauthenticated
				}
				if status.Code(err) != want {
					t.Errorf("%s: code %v, want %v", call, status.Code(err), want)
				}
				if took > tc.within {
					t.Errorf("%s failed after %v, want within %v", call, took, tc.within)
				}
				t.Logf("%s failed after %v: %v", call, took, err)
			}
			start := time.Now()
			_, err = cl.ProduceBatch(ctx, [][]byte{[]byte("x")})
			check("ProduceBatch", err, time.Since(start))
			var notSent *discovery.NotSentError
			if !errors.As(err, &notSent) {
				t.Errorf("ProduceBatch: %v, want a *NotSentError: it never reached a server", err)
			}
			start = time.Now()
			err = cl.Read(ctx, 0, 0, true, func(*logv1.Record) error { return nil })
			check("Read", err, time.Since(start))
			start = time.Now()
			_, err = cl.Servers(ctx)
			check("Servers", err, time.Since(start))
		})
	}
}

func containsStr(s, sub string) bool {
	return strings.Contains(s, sub)
}
