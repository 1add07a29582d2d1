package node_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proglogctl/proglogctl/node"
)

// TestDataDirRefused: a data directory the node cannot use is refused before
// anything starts, with an error naming it and saying what to do.
func TestDataDirRefused(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name string
		make func(t *testing.T) string // returns the data directory
		want string
	}{
		{"a file", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "data")
			writeTestFile(t, f)
			return f
		}, "is a file, not a directory"},
		{"under a file", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "data")
			writeTestFile(t, f)
			return filepath.Join(f, "node")
		}, "cannot create"},
		{"half made", func(t *testing.T) string {
			d := t.TempDir()
			writeTestFile(t, filepath.Join(d, "log", "00000000000000000000.store"))
			return d
		}, "is half made"},
		{"a file where raft/ belongs", func(t *testing.T) string {
			d := t.TempDir()
			writeTestFile(t, filepath.Join(d, "raft"))
			return d
		}, "raft is not a directory"},
		{"not writable", func(t *testing.T) string {
			if os.Geteuid() == 0 {
				t.Skip("root writes anywhere")
			}
			d := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(d, 0o500); err != nil {
				t.Fatal(err)
			}
			return d
		}, "is not writable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(t, p, 0)
			c.DataDir = tt.make(t)
			n, err := node.New(c)
			if err == nil {
				n.Close()
				t.Fatalf("New accepted %s", c.DataDir)
			}
			if !errors.Is(err, node.ErrDataDir) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), filepath.Dir(c.DataDir)) {
				t.Fatalf("New: %v, want node.ErrDataDir, %q and the path", err, tt.want)
			}
		})
	}
}

func writeTestFile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFailedStartLeavesNothing: a start that fails (the gossip port in use,
// an advertised name that does not resolve) leaves a data directory that
// was missing or empty as it was, and the next start on it succeeds.
func TestFailedStartLeavesNothing(t *testing.T) {
	p := newPKI(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	c := gossipTestConfig(t, p, 0)
	c.Gossip.BindAddr = held.Addr().String()
	if n, err := node.New(c); err == nil {
		n.Close()
		t.Fatal("a node started with its gossip port in use")
	} else if !strings.Contains(err.Error(), held.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("New: %v, want the gossip address and why", err)
	}
	if _, err := os.Stat(c.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after a failed start the data directory is there (%v)", err)
	}

	// Failing after the data directory was made: it is removed again, or
	// emptied if it was there empty.
	bad := testConfig(t, p, 0)
	bad.AdvertiseAddr = "no-such-host.invalid:8400"
	for _, existed := range []bool{false, true} {
		bad.DataDir = filepath.Join(t.TempDir(), "data")
		if existed {
			if err := os.Mkdir(bad.DataDir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := node.New(bad); err == nil {
			n.Close()
			t.Fatal("a node started with an advertised name that does not resolve")
		}
		entries, err := os.ReadDir(bad.DataDir)
		switch {
		case !existed && !errors.Is(err, os.ErrNotExist):
			t.Fatalf("a data directory made by a failed start is left behind (%v, %d entries)", err, len(entries))
		case existed && (err != nil || len(entries) != 0):
			t.Fatalf("an empty data directory holds %d entries after a failed start (%v)", len(entries), err)
		}
	}

	held.Close()
	n := startNode(t, c)
	ctx := testCtx(t)
	if _, _, err := n.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
}
