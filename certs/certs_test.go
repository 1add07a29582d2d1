package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/certs"
)

// generate runs Generate into a fresh directory and returns it.
func generate(t testing.TB, clients ...string) string {
	t.Helper()
	c := certs.DefaultConfig()
	c.Dir = t.TempDir()
	c.Clients = clients
	if _, err := certs.Generate(c); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return c.Dir
}

func nodeFiles(dir string) certs.TLSFiles {
	return certs.TLSFiles{
		CertFile: filepath.Join(dir, certs.NodeCertFileName),
		KeyFile:  filepath.Join(dir, certs.NodeKeyFileName),
		CAFile:   filepath.Join(dir, certs.CACertFileName),
	}
}

func clientFiles(dir, subject string) certs.TLSFiles {
	return certs.TLSFiles{
		CertFile:   filepath.Join(dir, certs.ClientCertFileName(subject)),
		KeyFile:    filepath.Join(dir, certs.ClientKeyFileName(subject)),
		CAFile:     filepath.Join(dir, certs.CACertFileName),
		ServerName: "127.0.0.1",
	}
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no certificate PEM block", path)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return cert
}

// handshakeResult is what each end of a TLS connection saw.
type handshakeResult struct {
	server, client error
	subject        string // as the server saw it
}

func (r handshakeResult) ok() bool { return r.server == nil && r.client == nil }

// handshake connects a client to a server over 127.0.0.1 and has the server
// send one byte once its handshake is complete, so that a client certificate
// the server rejects after the client finished (TLS 1.3) shows on both ends.
func handshake(t testing.TB, server, client *tls.Config) handshakeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type serverResult struct {
		err     error
		subject string
	}
	done := make(chan serverResult, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverResult{err: err}
			return
		}
		defer conn.Close()
		deadline, _ := ctx.Deadline()
		conn.SetDeadline(deadline)
		tc := tls.Server(conn, server)
		if err := tc.HandshakeContext(ctx); err != nil {
			done <- serverResult{err: err}
			return
		}
		subject, err := certs.SubjectFromState(tc.ConnectionState())
		if err != nil {
			done <- serverResult{err: err}
			return
		}
		_, err = tc.Write([]byte{1})
		done <- serverResult{err: err, subject: subject}
	}()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	tc := tls.Client(conn, client)
	clientErr := tc.HandshakeContext(ctx)
	if clientErr == nil {
		_, clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	tc.Close()
	sr := <-done
	return handshakeResult{server: sr.err, client: clientErr, subject: sr.subject}
}

func TestGenerate_certificates(t *testing.T) {
	c := certs.DefaultConfig()
	c.Dir = filepath.Join(t.TempDir(), "new", "dir")
	c.Hosts = []string{"node1.example.com", "10.0.0.7"}
	c.Clients = []string{"alice"}
	written, err := certs.Generate(c)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	var names []string
	for _, p := range written {
		if filepath.Dir(p) != c.Dir {
			t.Errorf("wrote %s outside %s", p, c.Dir)
		}
		names = append(names, filepath.Base(p))
	}
	want := []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "root.pem", "root-key.pem",
		"nobody.pem", "nobody-key.pem", "alice.pem", "alice-key.pem"}
	if !slices.Equal(names, want) {
		t.Fatalf("wrote %v, want %v", names, want)
	}

	ca := readCert(t, filepath.Join(c.Dir, "ca.pem"))
	if !ca.IsCA {
		t.Error("ca.pem is not a CA")
	}
	if got := ca.NotAfter.Sub(ca.NotBefore); got < c.CAValidity {
		t.Errorf("CA valid for %v, want at least %v", got, c.CAValidity)
	}

	node := readCert(t, filepath.Join(c.Dir, "server.pem"))
	if err := node.CheckSignatureFrom(ca); err != nil {
		t.Errorf("server.pem not signed by ca.pem: %v", err)
	}
	host, _ := os.Hostname()
	for _, name := range []string{"localhost", host, "node1.example.com"} {
		if !slices.Contains(node.DNSNames, name) {
			t.Errorf("server.pem DNS SANs %v lack %q", node.DNSNames, name)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.0.0.7"} {
		if !slices.ContainsFunc(node.IPAddresses, func(a net.IP) bool { return a.Equal(net.ParseIP(ip)) }) {
			t.Errorf("server.pem IP SANs %v lack %s", node.IPAddresses, ip)
		}
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !sameUsages(node.ExtKeyUsage, want) {
		t.Errorf("server.pem EKUs %v, want %v", node.ExtKeyUsage, want)
	}
	if got := node.NotAfter.Sub(node.NotBefore); got < c.LeafValidity {
		t.Errorf("server.pem valid for %v, want at least %v", got, c.LeafValidity)
	}

	for _, subject := range []string{"root", "nobody", "alice"} {
		cl := readCert(t, filepath.Join(c.Dir, subject+".pem"))
		if cl.Subject.CommonName != subject {
			t.Errorf("%s.pem CN = %q", subject, cl.Subject.CommonName)
		}
		if want := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}; !sameUsages(cl.ExtKeyUsage, want) {
			t.Errorf("%s.pem EKUs %v, want %v", subject, cl.ExtKeyUsage, want)
		}
		if len(cl.DNSNames)+len(cl.IPAddresses) != 0 {
			t.Errorf("%s.pem has SANs %v %v", subject, cl.DNSNames, cl.IPAddresses)
		}
	}
}

func sameUsages(got, want []x509.ExtKeyUsage) bool {
	if len(got) != len(want) {
		return false
	}
	for _, u := range want {
		if !slices.Contains(got, u) {
			return false
		}
	}
	return true
}

func TestGenerate_fileModes(t *testing.T) {
	dir := generate(t)
	tests := []struct {
		file string
		mode fs.FileMode
	}{
		{"ca.pem", 0o644},
		{"ca-key.pem", 0o600},
		{"server.pem", 0o644},
		{"server-key.pem", 0o600},
		{"root.pem", 0o644},
		{"root-key.pem", 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fi, err := os.Stat(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.mode {
				t.Fatalf("mode %v, want %v", got, tt.mode)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestGenerate_rerun(t *testing.T) {
	dir := generate(t)
	caBefore, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	serverBefore, err := os.ReadFile(filepath.Join(dir, "server.pem"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(clients []string, hosts []string, force bool) ([]string, error) {
		c := certs.DefaultConfig()
		c.Dir, c.Clients, c.Hosts, c.Force = dir, clients, hosts, force
		return certs.Generate(c)
	}

	tests := []struct {
		name        string
		clients     []string
		hosts       []string
		force       bool
		wantWritten []string
		wantErrFile string // the file an fs.ErrExist error must name
	}{
		{name: "same again", wantErrFile: "server.pem"},
		{name: "new hosts", hosts: []string{"node2"}, wantErrFile: "server.pem"},
		{name: "existing client", clients: []string{"root"}, wantErrFile: "root.pem"},
		{name: "add client", clients: []string{"carol"}, wantWritten: []string{"carol.pem", "carol-key.pem"}},
		{name: "add it again", clients: []string{"carol"}, wantErrFile: "carol.pem"},
		{name: "force", clients: []string{"carol"}, force: true, wantWritten: []string{
			"server.pem", "server-key.pem", "root.pem", "root-key.pem", "nobody.pem", "nobody-key.pem",
			"carol.pem", "carol-key.pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			written, err := run(tt.clients, tt.hosts, tt.force)
			if tt.wantErrFile != "" {
				if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), filepath.Join(dir, tt.wantErrFile)) {
					t.Fatalf("err = %v, want fs.ErrExist naming %s", err, tt.wantErrFile)
				}
				if len(written) != 0 {
					t.Fatalf("wrote %v despite the error", written)
				}
				return
			}
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			var names []string
			for _, p := range written {
				names = append(names, filepath.Base(p))
			}
			if !slices.Equal(names, tt.wantWritten) {
				t.Fatalf("wrote %v, want %v", names, tt.wantWritten)
			}
		})
	}

	caAfter, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if string(caAfter) != string(caBefore) {
		t.Error("the CA was replaced; it must be reused")
	}
	serverAfter, err := os.ReadFile(filepath.Join(dir, "server.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if string(serverAfter) == string(serverBefore) {
		t.Error("server.pem was not replaced with force")
	}
	// Certificates issued on the second run chain to the reused CA.
	r := handshake(t, mustServer(t, nodeFiles(dir)), mustClient(t, clientFiles(dir, "carol")))
	if !r.ok() || r.subject != "carol" {
		t.Fatalf("carol's handshake: %+v", r)
	}
}

func TestGenerate_invalidConfig(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*certs.Config)
	}{
		{"no dir", func(c *certs.Config) { c.Dir = "" }},
		{"client with slash", func(c *certs.Config) { c.Clients = []string{"a/b"} }},
		{"client with comma", func(c *certs.Config) { c.Clients = []string{"a,b"} }},
		{"empty client", func(c *certs.Config) { c.Clients = []string{""} }},
		{"client named ca", func(c *certs.Config) { c.Clients = []string{"ca"} }},
		{"client named server", func(c *certs.Config) { c.Clients = []string{"server"} }},
		{"client ending in -key", func(c *certs.Config) { c.Clients = []string{"root-key"} }},
		{"host with space", func(c *certs.Config) { c.Hosts = []string{"a b"} }},
		{"zero leaf validity", func(c *certs.Config) { c.LeafValidity = 0 }},
		{"negative CA validity", func(c *certs.Config) { c.CAValidity = -time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := certs.DefaultConfig()
			c.Dir = t.TempDir()
			tt.modify(&c)
			if _, err := certs.Generate(c); !errors.Is(err, certs.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestGenerate_halfCA(t *testing.T) {
	dir := generate(t)
	if err := os.Remove(filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	c := certs.DefaultConfig()
	c.Dir, c.Clients = dir, []string{"dave"}
	_, err := certs.Generate(c)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "ca-key.pem")) {
		t.Fatalf("err = %v, want one naming the missing CA key", err)
	}
}

func mustServer(t testing.TB, f certs.TLSFiles) *tls.Config {
	t.Helper()
	return mustTLS(t, certs.ServerTLSConfig, f)
}

func mustClient(t testing.TB, f certs.TLSFiles) *tls.Config {
	t.Helper()
	return mustTLS(t, certs.ClientTLSConfig, f)
}

func mustPeer(t testing.TB, f certs.TLSFiles) *tls.Config {
	t.Helper()
	return mustTLS(t, certs.PeerTLSConfig, f)
}

// mustTLS is build(f), failing t on an error.
func mustTLS(t testing.TB, build func(certs.TLSFiles) (*tls.Config, error), f certs.TLSFiles) *tls.Config {
	t.Helper()
	c, err := build(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expiredClient issues a certificate for subject that expired an hour ago,
// signed by the CA in dir.
func expiredClient(t testing.TB, dir, subject string) certs.TLSFiles {
	t.Helper()
	c := certs.DefaultConfig()
	c.LeafValidity = time.Hour
	c.NotBefore = time.Now().Add(-2 * time.Hour)
	ca, err := certs.LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), c)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueClient(subject)
	if err != nil {
		t.Fatal(err)
	}
	f := clientFiles(dir, subject)
	if err := kp.Write(f.CertFile, f.KeyFile, false); err != nil {
		t.Fatal(err)
	}
	if cert := readCert(t, f.CertFile); !time.Now().After(cert.NotAfter) {
		t.Fatalf("certificate valid until %v, want it expired", cert.NotAfter)
	}
	return f
}

func TestTLS_serverAndClient(t *testing.T) {
	dir := generate(t)
	other := generate(t) // another CA
	server := mustServer(t, nodeFiles(dir))
	expired := expiredClient(t, dir, "old")

	noCert := clientFiles(dir, "")
	noCert.CertFile, noCert.KeyFile = "", ""
	foreign := clientFiles(other, "root")
	foreign.CAFile = filepath.Join(dir, "ca.pem") // trusts the server, but its cert is from the other CA

	tests := []struct {
		name        string
		client      certs.TLSFiles
		serverName  string
		wantOK      bool
		wantSubject string
		wantReason  x509.InvalidReason // checked if wantInvalid
		wantInvalid bool
	}{
		{name: "root", client: clientFiles(dir, "root"), wantOK: true, wantSubject: "root"},
		{name: "nobody", client: clientFiles(dir, "nobody"), wantOK: true, wantSubject: "nobody"},
		{name: "by name localhost", client: clientFiles(dir, "root"), serverName: "localhost", wantOK: true, wantSubject: "root"},
		{name: "by IPv6 loopback name", client: clientFiles(dir, "root"), serverName: "::1", wantOK: true, wantSubject: "root"},
		{name: "wrong server name", client: clientFiles(dir, "root"), serverName: "elsewhere.example.com"},
		{name: "no client certificate", client: noCert},
		{name: "client certificate from another CA", client: foreign},
		{name: "expired client certificate", client: expired, wantInvalid: true, wantReason: x509.Expired},
		{name: "client trusts another CA", client: certs.TLSFiles{
			CertFile: clientFiles(dir, "root").CertFile, KeyFile: clientFiles(dir, "root").KeyFile,
			CAFile: filepath.Join(other, "ca.pem"), ServerName: "127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := mustClient(t, tt.client)
			if tt.serverName != "" {
				client.ServerName = tt.serverName
			}
			r := handshake(t, server, client)
			if r.ok() != tt.wantOK {
				t.Fatalf("handshake ok = %v (server: %v; client: %v), want %v", r.ok(), r.server, r.client, tt.wantOK)
			}
			if r.subject != tt.wantSubject {
				t.Errorf("subject = %q, want %q", r.subject, tt.wantSubject)
			}
			if tt.wantInvalid {
				var ie x509.CertificateInvalidError
				if !errors.As(r.server, &ie) || ie.Reason != tt.wantReason {
					t.Errorf("server error %v, want x509.CertificateInvalidError reason %v", r.server, tt.wantReason)
				}
			}
		})
	}
}

func TestTLS_peer(t *testing.T) {
	dir := generate(t)
	peer := nodeFiles(dir)
	peer.ServerName = "127.0.0.1"
	rootAsPeer := clientFiles(dir, "root") // a client certificate trying to speak Raft

	tests := []struct {
		name        string
		server      *tls.Config
		client      *tls.Config
		wantOK      bool
		wantNotPeer string // "server" or "client": the end that must fail with ErrNotPeer
	}{
		{name: "node to node", server: mustPeer(t, peer), client: mustPeer(t, peer), wantOK: true},
		{name: "client certificate dials a node", server: mustPeer(t, peer), client: mustClient(t, rootAsPeer), wantNotPeer: "server"},
		{name: "client certificate answers a node", server: mustPeer(t, rootAsPeer), client: mustPeer(t, peer)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := handshake(t, tt.server, tt.client)
			if r.ok() != tt.wantOK {
				t.Fatalf("handshake ok = %v (server: %v; client: %v), want %v", r.ok(), r.server, r.client, tt.wantOK)
			}
			if tt.wantNotPeer == "server" && !errors.Is(r.server, certs.ErrNotPeer) {
				t.Errorf("server error %v, want ErrNotPeer", r.server)
			}
		})
	}
}

func TestSubjectFromState_unverified(t *testing.T) {
	if _, err := certs.SubjectFromState(tls.ConnectionState{}); !errors.Is(err, certs.ErrUnauthenticated) {
		t.Fatalf("err = %v, want ErrUnauthenticated", err)
	}
}

func TestTLS_badFiles(t *testing.T) {
	dir := generate(t)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	good := nodeFiles(dir)
	with := func(modify func(*certs.TLSFiles)) certs.TLSFiles {
		f := good
		modify(&f)
		return f
	}
	builders := map[string]func(certs.TLSFiles) (*tls.Config, error){
		"server": certs.ServerTLSConfig,
		"client": certs.ClientTLSConfig,
		"peer":   certs.PeerTLSConfig,
	}
	tests := []struct {
		name  string
		files certs.TLSFiles
		want  string // the error must contain it
		is    error  // and wrap it, if set
	}{
		{"missing CA", with(func(f *certs.TLSFiles) { f.CAFile = missing }), "certs: read CA file " + missing + ": ", fs.ErrNotExist},
		{"garbage CA", with(func(f *certs.TLSFiles) { f.CAFile = garbage }), "certs: no certificate in " + garbage, certs.ErrNoCertificate},
		{"CA is a key", with(func(f *certs.TLSFiles) { f.CAFile = good.KeyFile }), "certs: no certificate in " + good.KeyFile, certs.ErrNoCertificate},
		{"missing certificate", with(func(f *certs.TLSFiles) { f.CertFile = missing }), "certs: read certificate file " + missing, fs.ErrNotExist},
		{"garbage certificate", with(func(f *certs.TLSFiles) { f.CertFile = garbage }), "certs: no certificate in " + garbage, certs.ErrNoCertificate},
		{"missing key", with(func(f *certs.TLSFiles) { f.KeyFile = missing }), "certs: read key file " + missing, fs.ErrNotExist},
		{"garbage key", with(func(f *certs.TLSFiles) { f.KeyFile = garbage }), "certs: no private key in " + garbage, certs.ErrNoKey},
		{"key of another certificate", with(func(f *certs.TLSFiles) { f.KeyFile = filepath.Join(dir, "root-key.pem") }), filepath.Join(dir, "root-key.pem"), certs.ErrKeyMismatch},
		{"a directory", with(func(f *certs.TLSFiles) { f.CAFile = dir }), "certs: read CA file " + dir, nil},
	}
	for _, tt := range tests {
		for name, build := range builders {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				_, err := build(tt.files)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.want)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Fatalf("err = %v, want it to wrap %v", err, tt.is)
				}
			})
		}
	}
}

func TestLoadCA_badFiles(t *testing.T) {
	dir := generate(t)
	ca, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	tests := []struct {
		name            string
		certFile, keyFl string
		want            string
		is              error
	}{
		{"missing CA", filepath.Join(dir, "nope.pem"), key, "certs: read CA file " + filepath.Join(dir, "nope.pem"), fs.ErrNotExist},
		{"missing key", ca, filepath.Join(dir, "nope.pem"), "certs: read CA key file " + filepath.Join(dir, "nope.pem"), fs.ErrNotExist},
		{"leaf is no CA", filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "server.pem"), certs.ErrNotCA},
		{"key of another certificate", ca, filepath.Join(dir, "root-key.pem"), filepath.Join(dir, "root-key.pem"), certs.ErrKeyMismatch},
		{"certificate as key", ca, ca, "certs: no private key in " + ca, certs.ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := certs.LoadCA(tt.certFile, tt.keyFl, certs.DefaultConfig())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want one containing %q wrapping %v", err, tt.want, tt.is)
			}
		})
	}
}

func TestKeyPair_writeRefusesToOverwrite(t *testing.T) {
	dir := generate(t)
	ca, err := certs.LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), certs.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueClient("erin")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "erin.pem"), filepath.Join(dir, "root-key.pem")
	before, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	err = kp.Write(certFile, keyFile, false)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("err = %v, want fs.ErrExist naming %s", err, keyFile)
	}
	if _, err := os.Stat(certFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s was written although the pair was refused", certFile)
	}
	after, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Fatal("the existing key was replaced")
	}
	if err := kp.Write(certFile, keyFile, true); err != nil {
		t.Fatalf("Write with force: %v", err)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode after force %v, want 0600", fi.Mode().Perm())
	}
}

func TestCA_issueClientRejectsBadSubject(t *testing.T) {
	ca, err := certs.NewCA(certs.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "../x", "a b", "server"} {
		if _, err := ca.IssueClient(s); !errors.Is(err, certs.ErrInvalidConfig) {
			t.Errorf("IssueClient(%q) err = %v, want ErrInvalidConfig", s, err)
		}
	}
}
