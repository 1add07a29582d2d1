package commands

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
)

// TestDevClusterCommands drives produce, consume, tail and servers in-process
// against a 3-node dev cluster, comparing their outputs with golden files.
func TestDevClusterCommands(t *testing.T) {
	c := startDev(t, 3)

	golden(t, "produce_args", mustRun(t, "", "produce", "alpha", "beta", "gamma", "\xff\xfe"))
	golden(t, "produce_stdin_json", mustRun(t, "delta\nepsilon\n", "produce", "--json"))
	file := filepath.Join(t.TempDir(), "records.txt")
	if err := os.WriteFile(file, []byte("zeta\neta\ntheta\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	golden(t, "produce_file_quiet", mustRun(t, "", "produce", "--file", file, "--quiet"))

	golden(t, "consume_text", mustRun(t, "", "consume"))
	golden(t, "consume_json", mustRun(t, "", "consume", "--output", "json"))
	golden(t, "consume_raw", mustRun(t, "", "consume", "--output", "raw", "--from", "4"))
	golden(t, "consume_last_two", mustRun(t, "", "consume", "--from", "-2"))
	golden(t, "consume_count", mustRun(t, "", "consume", "--from", "1", "--count", "2"))
	golden(t, "consume_to", mustRun(t, "", "consume", "--from", "5", "--to", "7"))

	t.Run("errors", func(t *testing.T) {
		_, _, err := runIn(t, "", "consume", "--from", "100")
		exitError(t, err, ExitOutOfRange, "offset 100 is past the end of the log (next offset 9)")

		// A line over the limit stops produce at that line: the lines
		// before it are produced, nothing of it or after it is sent.
		out, _, err := runIn(t, "iota\nkappa-too-long\nlambda\n", "produce", "--max-record-bytes", "8")
		exitError(t, err, ExitError, "line 2: record of 14 bytes is over the limit of 8 bytes; 1 records before it were produced")
		if out != "9\n" {
			t.Errorf("produce stdout = %q, want the offset of line 1 only", out)
		}

		dir, err := ConfigDir()
		if err != nil {
			t.Fatal(err)
		}
		nobody := []string{
			"--cert-file", filepath.Join(dir, certs.ClientCertFileName(certs.NobodySubject)),
			"--key-file", filepath.Join(dir, certs.ClientKeyFileName(certs.NobodySubject)),
		}
		_, _, err = runIn(t, "", append([]string{"produce"}, append(nobody, "x")...)...)
		exitError(t, err, ExitDenied, "permission denied: client 'nobody' may not produce")
		_, _, err = runIn(t, "", append([]string{"consume"}, nobody...)...)
		exitError(t, err, ExitDenied, "permission denied: client 'nobody' may not consume")

		_, _, err = runIn(t, "", "consume", "--addr", "proglog://127.0.0.1:1", "--timeout", "500ms")
		exitError(t, err, ExitUnavailable, "no server reachable at proglog://127.0.0.1:1")
	})

	t.Run("servers", func(t *testing.T) {
		rows := c.waitInSync(t)
		var want strings.Builder
		for i, r := range rows {
			if r.ID != fmt.Sprintf("dev-%d", i) || r.RPCAddr != c.addrs[i] || !r.IsVoter || *r.NextOffset != 10 {
				t.Errorf("server %d: %+v, want dev-%d at %s, a voter at next offset 10", i, r, i, c.addrs[i])
			}
			role, state := "follower", "Follower"
			if r.IsLeader {
				role, state = "leader", "Leader"
			}
			if r.State != state {
				t.Errorf("server %s: state %q, want %q", r.ID, r.State, state)
			}
			fmt.Fprintf(&want, "dev-%d\t%s\t%s\tvoter\t%s\t10\t0\n", i, c.addrs[i], role, state)
		}
		// `servers` also checks that there is a leader: it exits 0.
		if got := mustRun(t, "", "servers"); got != want.String() {
			t.Errorf("servers =\n%s\nwant\n%s", got, want.String())
		}
	})

	t.Run("tail", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		done := make(chan error, 1)
		go func() {
			m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: logWriter{t}}
			done <- m.Run(ctx, []string{"proglogctl", "tail", "-n", "2"})
		}()
		stop := sync.OnceValue(func() error { cancel(); return <-done })
		defer stop()
		waitFor(t, 10*time.Second, "tail to print the last 2 records", func() bool {
			return out.String() == "8\ttheta\n9\tiota\n"
		})
		mustRun(t, "", "produce", "mu", "nu")
		waitFor(t, 10*time.Second, "tail to print the records produced after it started", func() bool {
			return out.String() == "8\ttheta\n9\tiota\n10\tmu\n11\tnu\n"
		})
		if err := stop(); err != nil {
			t.Errorf("tail interrupted: %v, want a clean exit", err)
		}
	})
}

// TestServersOneNode checks `servers` against a single-node dev cluster.
func TestServersOneNode(t *testing.T) {
	c := startDev(t, 1)
	mustRun(t, "", "produce", "a", "b")
	c.waitInSync(t)
	got := strings.ReplaceAll(mustRun(t, "", "servers"), c.addrs[0], "ADDR")
	golden(t, "servers_one_node", got)
	got = strings.ReplaceAll(mustRun(t, "", "servers", "--json"), c.addrs[0], "ADDR")
	golden(t, "servers_one_node_json", got)
}

// TestServersFormats renders fixed server lists (1 and 3 servers, one of
// them unreachable, one lagging) in every format.
func TestServersFormats(t *testing.T) {
	lipgloss.SetColorProfile(termenv.Ascii)
	one := []*logv1.Server{{Id: "dev-0", RpcAddr: "127.0.0.1:8400", IsLeader: true, IsVoter: true, State: "Leader", NextOffset: 42}}
	three := []*logv1.Server{
		{Id: "dev-0", RpcAddr: "127.0.0.1:8400", IsVoter: true, State: "Follower", NextOffset: 40},
		{Id: "dev-1", RpcAddr: "127.0.0.1:8410", IsLeader: true, IsVoter: true, State: "Leader", NextOffset: 42},
		{Id: "dev-2", RpcAddr: "127.0.0.1:8420", State: "unreachable"},
	}
	noLeader := []*logv1.Server{{Id: "dev-0", RpcAddr: "127.0.0.1:8400", IsVoter: true, State: "Candidate", NextOffset: 7}}
	for _, tt := range []struct {
		name    string
		servers []*logv1.Server
	}{{"one", one}, {"three", three}, {"no_leader", noLeader}} {
		for _, format := range []string{"plain", "json", "table"} {
			t.Run(tt.name+"_"+format, func(t *testing.T) {
				var b strings.Builder
				err := writeServers(&b, tt.servers, format == "json", format == "table")
				if tt.name == "no_leader" {
					exitError(t, err, ExitUnavailable, "the cluster has no leader")
				} else if err != nil {
					t.Fatal(err)
				}
				golden(t, "servers_"+tt.name+"_"+format, b.String())
			})
		}
	}
}

// TestProduceConsumeRoundTrip produces 100,000 lines from a file and reads
// them back, checking every offset and value.
func TestProduceConsumeRoundTrip(t *testing.T) {
	const n = 100_000
	startDev(t, 3)
	file := filepath.Join(t.TempDir(), "lines.txt")
	var in strings.Builder
	for i := range n {
		// Lengths vary, some values are not ASCII, some are empty.
		fmt.Fprintf(&in, "%s\n", lineValue(i))
	}
	if err := os.WriteFile(file, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runIn(t, "", "produce", "--file", file, "--quiet", "--progress", "always")
	if err != nil {
		t.Fatalf("produce: %v\n%s", err, errOut)
	}
	if want := fmt.Sprintf("produced %d records at offsets 0..%d\n", n, n-1); out != want {
		t.Fatalf("produce printed %q, want %q", out, want)
	}
	if !strings.Contains(errOut, fmt.Sprintf("produced %d records 100%%", n)) {
		t.Errorf("progress bar on stderr does not end complete: %q", errOut[max(0, len(errOut)-200):])
	}

	out = mustRun(t, "", "consume")
	sc := bufio.NewScanner(strings.NewReader(out))
	i := 0
	for ; sc.Scan(); i++ {
		if want := fmt.Sprintf("%d\t%s", i, lineValue(i)); sc.Text() != want {
			t.Fatalf("consume line %d = %q, want %q", i, sc.Text(), want)
		}
	}
	if i != n {
		t.Fatalf("consume printed %d records, want %d", i, n)
	}
	if raw := mustRun(t, "", "consume", "--output", "raw"); raw != in.String() {
		t.Fatalf("consume --output raw differs from the produced file (%d bytes, want %d)", len(raw), in.Len())
	}
}

func lineValue(i int) string {
	switch {
	case i%1000 == 999:
		return ""
	case i%7 == 0:
		return fmt.Sprintf("zeile-%d-ÄÖÜ-%s", i, strings.Repeat("ß", i%13))
	}
	return fmt.Sprintf("line-%d-%s", i, strings.Repeat("x", i%61))
}

// TestDevRestartKeepsData stops a dev cluster and starts it again on the same
// ports and data: the records are still there and the cluster takes more.
func TestDevRestartKeepsData(t *testing.T) {
	isolateConfig(t)
	data := t.TempDir()
	base := freePortBlock(t, 22) // 3 nodes: base+0, +1, +10, +11, +20, +21
	c := serveDev(t, 3, base, data)
	mustRun(t, "", "produce", "before", "restart")
	if err := c.stop(); err != nil {
		t.Fatalf("stopping the dev cluster: %v", err)
	}
	serveDev(t, 3, base, data)
	mustRun(t, "", "produce", "after")
	if got, want := mustRun(t, "", "consume"), "0\tbefore\n1\trestart\n2\tafter\n"; got != want {
		t.Fatalf("consume after a restart = %q, want %q", got, want)
	}

	_, _, err := runIn(t, "", "serve", "--dev", "--dev-port", "0", "--data-dir", data)
	exitError(t, err, ExitUsage, "holds a dev cluster whose nodes expect the ports they had")
}

// freePortBlock returns the first of n consecutive loopback ports that were
// all free a moment ago.
func freePortBlock(t testing.TB, n int) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65535 {
			continue
		}
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if free = err == nil; free {
				l.Close()
			}
		}
		if free {
			return base
		}
	}
	t.Fatalf("no block of %d free ports found", n)
	return 0
}
