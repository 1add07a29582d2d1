package commands

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/certs"
)

// TestFailFastGolden checks that a client that cannot reach its cluster
// fails well within the 10 s --timeout, with a message that says why and an
// exit code of its own: nothing listening (3), a server or client
// certificate from another CA, an expired client certificate, a server
// certificate for another name (6). Each failure's time is reported and
// bounded, as a benchmark would report it.
func TestFailFastGolden(t *testing.T) {
	dir := gencertIsolated(t)
	other, expired := t.TempDir(), t.TempDir()
	mustRun(t, "", "gencert", "--dir", other)
	cc := certs.DefaultConfig()
	cc.Dir, cc.NotBefore, cc.LeafValidity = expired, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), 24*time.Hour
	if _, err := certs.Generate(cc); err != nil {
		t.Fatal(err)
	}
	addr, _ := serveSilentLeader(t, dir)
	_, port, _ := net.SplitHostPort(addr)
	clientOf := func(d string) []string {
		return []string{"--cert-file", filepath.Join(d, certs.ClientCertFileName(certs.RootSubject)), "--key-file", filepath.Join(d, certs.ClientKeyFileName(certs.RootSubject))}
	}
	// The bounds leave room for a busy machine; the times are logged. What
	// they rule out is waiting for --timeout (10 s).
	const (
		refusedWithin = 3 * time.Second // refused on every server for 700 ms
		tlsWithin     = 3 * time.Second // one handshake
	)
	for _, tc := range []struct {
		name   string
		args   []string
		within time.Duration
	}{
		{"refused", []string{"produce", "--addr", "proglog://127.0.0.1:1,127.0.0.1:2", "x"}, refusedWithin},
		{"refused_consume", []string{"consume", "--addr", "proglog://127.0.0.1:1"}, refusedWithin},
		{"server_other_ca", []string{"produce", "--addr", addr, "--ca-file", filepath.Join(other, certs.CACertFileName), "x"}, tlsWithin},
		{"client_other_ca", append([]string{"consume", "--addr", addr}, clientOf(other)...), tlsWithin},
		{"client_expired", append([]string{"servers", "--addr", addr}, clientOf(expired)...), tlsWithin},
		{"name_mismatch", []string{"tail", "--addr", "elsewhere.test:" + port, "--connect-to", "elsewhere.test:" + port + "=" + addr}, tlsWithin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, errOut, err := run(t, tc.args...)
			took := time.Since(start)
			t.Logf("%s failed after %v: %v", tc.name, took.Round(time.Millisecond), err)
			if took > tc.within {
				t.Errorf("%s took %v, want under %v (--timeout is 10s)", tc.name, took, tc.within)
			}
			got := result(out, errOut, err)
			host, _ := os.Hostname()
			for _, r := range []struct{ from, to string }{{", " + host + ",", ", HOST,"}, {", " + host + ", not", ", HOST, not"}, {dir, "CONFIG"}, {other, "OTHER"}, {expired, "EXPIRED"}, {addr, "STUB"}, {port, "PORT"}} {
				got = strings.ReplaceAll(got, r.from, r.to)
			}
			golden(t, "failfast_"+tc.name, got)
		})
	}
	if err := os.RemoveAll(other); err != nil {
		t.Fatal(err)
	}
}
