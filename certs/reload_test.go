package certs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proglogctl/proglogctl/certs"
)

// copyFiles copies the files of f into a new directory, as the files a
// Reloader reads and the test rewrites, and returns their new names.
func copyFiles(t *testing.T, f certs.TLSFiles) certs.TLSFiles {
	t.Helper()
	dir := t.TempDir()
	out := f
	for _, p := range []*string{&out.CertFile, &out.KeyFile, &out.CAFile} {
		dst := filepath.Join(dir, filepath.Base(*p))
		copyFile(t, *p, dst)
		*p = dst
	}
	return out
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustReloader(t *testing.T, f certs.TLSFiles, peer bool) *certs.Reloader {
	t.Helper()
	r, err := certs.NewReloader(f, peer)
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	return r
}

func reload(t *testing.T, r *certs.Reloader) []string {
	t.Helper()
	changes, err := r.Reload()
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	return changes
}

// TestReloader_rotation rotates a server's certificate and CA bundle under
// one tls.Config: handshakes after each Reload see the new files, and files
// that do not load are refused with the old ones in force.
func TestReloader_rotation(t *testing.T) {
	dir := generate(t)
	other := generate(t) // the next CA
	files := copyFiles(t, nodeFiles(dir))
	r := mustReloader(t, files, false)
	server := r.ServerConfig()
	oldClient := mustClient(t, clientFiles(dir, "root"))
	newClient := mustClient(t, certs.TLSFiles{ // the next CA's client, trusting the old CA
		CertFile: clientFiles(other, "root").CertFile, KeyFile: clientFiles(other, "root").KeyFile,
		CAFile: filepath.Join(dir, certs.CACertFileName), ServerName: "127.0.0.1",
	})

	if res := handshake(t, server, oldClient); !res.ok() {
		t.Fatalf("client of the CA in force: server %v, client %v", res.server, res.client)
	}
	if res := handshake(t, server, newClient); res.ok() {
		t.Fatal("a client of a CA not yet trusted was accepted")
	}
	if changes := reload(t, r); len(changes) != 0 {
		t.Fatalf("Reload of unchanged files reports %q", changes)
	}

	// Trust both CAs: the next CA's client is accepted, the old one too.
	bundle := append(mustRead(t, filepath.Join(dir, certs.CACertFileName)), mustRead(t, filepath.Join(other, certs.CACertFileName))...)
	if err := os.WriteFile(files.CAFile, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	changes := reload(t, r)
	if len(changes) != 1 || !strings.Contains(changes[0], "CA "+files.CAFile+": added") {
		t.Fatalf("Reload of a CA bundle reports %q, want one CA line", changes)
	}
	if res := handshake(t, server, newClient); !res.ok() {
		t.Fatalf("next CA's client after the reload: server %v, client %v", res.server, res.client)
	}
	if res := handshake(t, server, oldClient); !res.ok() {
		t.Fatalf("old CA's client after the reload: server %v, client %v", res.server, res.client)
	}

	// The node certificate of the next CA: clients trusting only the old
	// CA now refuse the server.
	copyFile(t, filepath.Join(other, certs.NodeCertFileName), files.CertFile)
	copyFile(t, filepath.Join(other, certs.NodeKeyFileName), files.KeyFile)
	changes = reload(t, r)
	if len(changes) != 1 || !strings.HasPrefix(changes[0], "certificate "+files.CertFile+": ") {
		t.Fatalf("Reload of a new certificate reports %q", changes)
	}
	if res := handshake(t, server, oldClient); res.client == nil {
		t.Fatal("a client trusting only the old CA accepted the next CA's server certificate")
	}

	// Files that do not load are refused and the ones in force stay.
	nextClient := mustClient(t, clientFiles(other, "root"))
	bad := []struct {
		name  string
		write func()
		want  string
	}{
		{"CA not PEM", func() { writeFile(t, files.CAFile, "garbage") }, "no certificate"},
		{"key of another certificate", func() { copyFile(t, filepath.Join(dir, certs.NodeKeyFileName), files.KeyFile) }, "does not match"},
		{"missing certificate", func() { os.Remove(files.CertFile) }, "no such file"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			// Start from the good files of the step before.
			copyFile(t, filepath.Join(other, certs.NodeCertFileName), files.CertFile)
			copyFile(t, filepath.Join(other, certs.NodeKeyFileName), files.KeyFile)
			if err := os.WriteFile(files.CAFile, bundle, 0o644); err != nil {
				t.Fatal(err)
			}
			tt.write()
			_, err := r.Reload()
			if !errors.Is(err, certs.ErrRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Reload: %v, want certs.ErrRefused and %q", err, tt.want)
			}
			if res := handshake(t, server, nextClient); !res.ok() {
				t.Fatalf("after a refused reload: server %v, client %v", res.server, res.client)
			}
		})
	}
}

// TestReloader_peer checks the dialing side of PeerConfig: the certificate
// it presents follows Reload, and a new PeerConfig trusts the new CAs.
func TestReloader_peer(t *testing.T) {
	dir := generate(t)
	other := generate(t)
	files := copyFiles(t, nodeFiles(dir))
	r := mustReloader(t, files, true)
	bundle := append(mustRead(t, filepath.Join(dir, certs.CACertFileName)), mustRead(t, filepath.Join(other, certs.CACertFileName))...)
	if err := os.WriteFile(files.CAFile, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	// The next CA's node, trusting both CAs.
	otherServer := mustServer(t, certs.TLSFiles{CertFile: nodeFiles(other).CertFile, KeyFile: nodeFiles(other).KeyFile, CAFile: files.CAFile})
	before := r.PeerConfig()
	before.ServerName = "127.0.0.1"
	if res := handshake(t, otherServer, before); res.client == nil {
		t.Fatal("the dialer trusted a CA it had not loaded")
	}
	reload(t, r)
	after := r.PeerConfig()
	after.ServerName = "127.0.0.1"
	if res := handshake(t, otherServer, after); !res.ok() {
		t.Fatalf("a PeerConfig taken after the reload: server %v, client %v", res.server, res.client)
	}

	// A peer certificate of a CA not in the CA file is refused (a server's
	// may be of another CA than its clients').
	foreign := certs.TLSFiles{CertFile: nodeFiles(other).CertFile, KeyFile: nodeFiles(other).KeyFile, CAFile: nodeFiles(dir).CAFile}
	if _, err := certs.NewReloader(foreign, true); err == nil || !strings.Contains(err.Error(), "not signed by a CA in "+foreign.CAFile) {
		t.Fatalf("NewReloader of a peer certificate of another CA: %v", err)
	}
	if _, err := certs.NewReloader(foreign, false); err != nil {
		t.Fatalf("NewReloader of a server certificate of another CA than its clients': %v", err)
	}

	// A client certificate is no peer's: refused at once and on reload.
	client := clientFiles(dir, "root")
	client.CAFile = files.CAFile
	if _, err := certs.NewReloader(client, true); !errors.Is(err, certs.ErrNotPeer) {
		t.Fatalf("NewReloader of a client certificate as a peer: %v, want ErrNotPeer", err)
	}
	copyFile(t, client.CertFile, files.CertFile)
	copyFile(t, client.KeyFile, files.KeyFile)
	if _, err := r.Reload(); !errors.Is(err, certs.ErrNotPeer) || !errors.Is(err, certs.ErrRefused) {
		t.Fatalf("Reload of a client certificate as a peer: %v, want ErrRefused and ErrNotPeer", err)
	}
}

// TestReloader_expired refuses an expired certificate.
func TestReloader_expired(t *testing.T) {
	dir := generate(t)
	f := expiredClient(t, dir, "old")
	_, err := certs.NewReloader(f, false)
	if err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("NewReloader of an expired certificate: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
