package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/node/nodetest"
)

// golden is nodetest.Golden: it compares got with testdata/name.golden (or
// rewrites the file with -update).
func golden(t testing.TB, name, got string) {
	t.Helper()
	nodetest.Golden(t, name, got)
}

// runIn runs the CLI in-process with stdin and returns its outputs.
func runIn(t testing.TB, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Version: "v1.2.3-test"}
	err = m.Run(context.Background(), append([]string{"proglogctl"}, args...))
	return out.String(), errOut.String(), err
}

// mustRun is runIn that fails the test unless the command succeeds.
func mustRun(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := runIn(t, stdin, args...)
	if err != nil {
		t.Fatalf("proglogctl %s: %v (exit %d)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, ExitCode(err), out, errOut)
	}
	return out
}

// syncBuffer is a bytes.Buffer written through a lockedWriter: safe for one
// writer and concurrent readers.
type syncBuffer struct {
	lockedWriter
	b bytes.Buffer
}

func newSyncBuffer() *syncBuffer {
	s := new(syncBuffer)
	s.w = &s.b
	return s
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logWriter sends what is written to it to t.Log, until the test ends.
func logWriter(t testing.TB) io.Writer { return nodetest.Writer(t) }

// devCluster is `serve --dev` running in-process on loopback ports, so
// client commands need no flags.
type devCluster struct {
	addrs   []string       // the nodes' RPC addresses, dev-0 first
	metrics []string       // the nodes' /metrics URLs from the banner, dev-0 first
	stop    func() error   // stops the cluster (at the latest when the test ends)
	hup     chan os.Signal // a value sent here is a SIGHUP to serve
	stderr  *syncBuffer    // serve's log
}

// startDev starts a dev cluster of n nodes on free ports with its config
// directory and data in temporary directories.
func startDev(t testing.TB, n int) *devCluster {
	t.Helper()
	isolateConfig(t)
	return serveDev(t, n, 0, t.TempDir())
}

// isolateConfig points the config directory (XDG_CONFIG_HOME) at a temporary
// directory and clears the PROGLOG_* variables for the test.
func isolateConfig(t testing.TB) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, v := range os.Environ() {
		if k, _, _ := strings.Cut(v, "="); strings.HasPrefix(k, "PROGLOG_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// serveDev runs `serve --dev` with n nodes on ports from base (0: free
// ports) and data under dataDir, and waits until every node answers
// `servers` and agrees on a leader.
//
// A base of 0 gives the nodes ports the system picks, which another process
// may take once they are free again; a cluster that restarts on its
// recorded ports starts on a base from freeDevBase instead.
func serveDev(t testing.TB, n, base int, dataDir string) *devCluster {
	t.Helper()
	nodetest.EnsureDeadline(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out, errOut := newSyncBuffer(), newSyncBuffer()
	hup := make(chan os.Signal)
	stderr := logWriter(t)
	go func() {
		m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: io.MultiWriter(stderr, errOut), Version: "test",
			Reloads: func() (<-chan os.Signal, func()) { return hup, func() {} }}
		done <- m.Run(ctx, []string{"proglogctl", "serve", "--dev", "--nodes", strconv.Itoa(n),
			"--dev-port", strconv.Itoa(base), "--data-dir", dataDir, "--log-level", "warn"})
	}()
	c := &devCluster{hup: hup, stderr: errOut, stop: sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			return errors.New("serve --dev did not stop within a minute of its context ending")
		}
	})}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("serve --dev: %v", err)
		}
	})

	dir := os.Getenv("PROGLOG_CONFIG_DIR")
	if dir == "" {
		var err error
		if dir, err = ConfigDir(); err != nil {
			t.Fatal(err)
		}
	}
	var target string
	waitFor(t, 30*time.Second, "serve --dev to write the cluster's address", func() bool {
		select {
		case err := <-done:
			done <- err // for stop, which the cleanup calls
			t.Fatalf("serve --dev exited: %v\n%s", err, out.String())
		default:
		}
		// The file names this run's nodes once it mentions their ports.
		b, err := os.ReadFile(filepath.Join(dir, clusterFile))
		target = strings.TrimSpace(string(b))
		return err == nil && target != "" && strings.Contains(out.String(), "nodes at "+target+"\n")
	})
	c.addrs = strings.Split(strings.TrimPrefix(target, "proglog://"), ",")
	if len(c.addrs) != n {
		t.Fatalf("cluster address %q names %d nodes, want %d", target, len(c.addrs), n)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "metrics: "); ok {
			rest, _, _ = strings.Cut(rest, " (")
			c.metrics = strings.Fields(rest)
		}
	}
	c.waitInSync(t)
	return c
}

// waitInSync waits until `servers` reports every node, one leader, and every
// node at the leader's next offset, and returns that report.
func (c *devCluster) waitInSync(t testing.TB) []serverRow {
	t.Helper()
	var rows []serverRow
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last `servers --json`:\n%s", last)
		}
	}()
	waitFor(t, 30*time.Second, "every node to answer `servers` with one leader and no lag", func() bool {
		out, _, err := runIn(t, "", "servers", "--json")
		if err != nil && ExitCode(err) != ExitUnavailable {
			t.Fatalf("servers --json: %v", err)
		}
		last, rows = out, nil
		return json.Unmarshal([]byte(out), &rows) == nil && len(rows) == len(c.addrs) &&
			!slices.ContainsFunc(rows, func(r serverRow) bool { return r.Lag == nil || *r.Lag != 0 })
	})
	return rows
}

// waitFor is nodetest.WaitFor.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	nodetest.WaitFor(t, timeout, what, cond)
}

// exitError fails the test unless err maps to exit code want and its message
// contains msg.
func exitError(t testing.TB, err error, want int, msg string) {
	t.Helper()
	if got := ExitCode(err); got != want || err == nil || !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %v (exit %d), want exit %d with %q", err, got, want, msg)
	}
}

// freeDevBase returns a base for --dev-port under which the ports of a dev
// cluster of n nodes are free for TCP and UDP. It looks below the range the
// system hands out for port 0 (from 32768 on), so that no other process is
// given them meanwhile.
func freeDevBase(t *testing.T, n int) int {
	t.Helper()
	free := func(port int) bool {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		defer ln.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		return pc.Close() == nil
	}
	for range 200 {
		base := 20000 + 100*rand.IntN(120) // up to 31,900 + 10n
		ok := true
		for i := range n {
			ok = ok && free(base+10*i) && free(base+10*i+1)
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free dev ports below 32768 after 200 tries")
	return 0
}
