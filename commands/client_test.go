package commands

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
// against a 3-node dev cluster, comparing their outputs with golden files. Its
// steps share one log and run in order: run it whole.
func TestDevClusterCommands(t *testing.T) {
	c := startDev(t, 3)

	golden(t, "produce_args", mustRun(t, "", "produce", "alpha", "beta", "gamma", "\xff\xfe"))
	golden(t, "produce_stdin_json", mustRun(t, "delta\nepsilon\n", "produce", "--json", "--producer-id", "golden")) // the profile's id is random
	file := filepath.Join(t.TempDir(), "records.txt")
	if err := os.WriteFile(file, []byte("zeta\neta\ntheta\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	golden(t, "produce_file_quiet", mustRun(t, "", "produce", "--file", file, "--quiet"))

	golden(t, "consume_text", mustRun(t, "", "consume"))
	golden(t, "consume_json", maskTimes(t, mustRun(t, "", "consume", "--output", "json")))
	golden(t, "consume_raw", mustRun(t, "", "consume", "--output", "raw", "--from", "4"))
	golden(t, "consume_last_two", mustRun(t, "", "consume", "--from", "-2"))
	golden(t, "consume_count", mustRun(t, "", "consume", "--from", "1", "--count", "2"))
	golden(t, "consume_to", mustRun(t, "", "consume", "--from", "5", "--to", "7"))

	t.Run("errors", func(t *testing.T) {
		_, _, err := runIn(t, "", "consume", "--from", "100")
		exitError(t, err, ExitOutOfRange, "offset 100 is past the end of the log (next offset 9)")

		// A line over the limit stops produce at that line: the lines
		// before it are produced, nothing of it or after it is sent. The
		// progress spinner (the size of stdin is unknown) ends its line
		// before the error is printed.
		out, errOut, err := runIn(t, "iota\nkappa-too-long\nlambda\n", "produce", "--max-record-bytes", "8", "--progress", "always")
		exitError(t, err, ExitError, "line 2: record of 14 bytes is over the limit of 8 bytes; 1 records before it were produced")
		if out != "9\n" {
			t.Errorf("produce stdout = %q, want the offset of line 1 only", out)
		}
		if !strings.Contains(errOut, "produced 1 records") || !strings.HasSuffix(errOut, "\n") {
			t.Errorf("progress on stderr = %q, want it to show 1 record and end its line", errOut)
		}
		_, errOut, err = runIn(t, "xx\n", "produce", "--progress", "never", "--max-record-bytes", "1")
		exitError(t, err, ExitError, "line 1: record of 2 bytes is over the limit of 1 bytes; 0 records before it were produced")
		if errOut != "" {
			t.Errorf("produce --progress never wrote %q to stderr", errOut)
		}
		_, _, err = runIn(t, "", "produce", "--progress", "sometimes", "x")
		exitError(t, err, ExitUsage, `--progress "sometimes": want auto, always or never`)

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

		_, _, err = runIn(t, "", "consume", "--addr", "proglog://127.0.0.1:1")
		exitError(t, err, ExitUnavailable, "no server reachable at proglog://127.0.0.1:1")
		// Records that never reached a server were certainly not produced.
		_, _, err = runIn(t, "", "produce", "--addr", "proglog://127.0.0.1:1", "x")
		exitError(t, err, ExitUnavailable, "records from line 1 on were not produced (0 before them were): no server reachable at proglog://127.0.0.1:1")
	})

	t.Run("servers", func(t *testing.T) {
		// The plain output, in the same round as a JSON report that the
		// cluster is in sync (a leader change in between makes another
		// round).
		var rows []serverRow
		var got, want string
		waitFor(t, 30*time.Second, "`servers` to print what `servers --json` reports", func() bool {
			rows = c.waitInSync(t)
			var b strings.Builder
			for _, r := range rows {
				role, state := "follower", "Follower"
				if r.IsLeader {
					role, state = "leader", "Leader"
				}
				fmt.Fprintf(&b, "%s\t%s\t%s\tvoter\t%s\t10\t0\t0\tquorum-fsync\n", r.ID, r.RPCAddr, role, state)
			}
			want = b.String()
			got = mustRun(t, "", "servers") // exits 0: there is a leader
			return got == want
		})
		for i, r := range rows {
			if r.ID != fmt.Sprintf("dev-%d", i) || r.RPCAddr != c.addrs[i] || !r.IsVoter || *r.NextOffset != 10 {
				t.Errorf("server %d: %+v, want dev-%d at %s, a voter at next offset 10", i, r, i, c.addrs[i])
			}
		}
	})

	t.Run("tail", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		out := newSyncBuffer()
		done := make(chan error, 1)
		stderr := logWriter(t)
		go func() {
			m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: stderr}
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

	t.Run("produce from a slow pipe", func(t *testing.T) {
		// Each line goes out as it arrives, with its offset printed, not
		// when a batch is full or the input ends; an interrupt while
		// waiting for input ends produce cleanly.
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := newSyncBuffer()
		done := make(chan error, 1)
		stderr := logWriter(t)
		go func() {
			m := &Main{Stdin: pr, Stdout: out, Stderr: stderr}
			done <- m.Run(ctx, []string{"proglogctl", "produce"})
		}()
		for i, want := range []string{"12\n", "12\n13\n"} {
			if _, err := fmt.Fprintf(pw, "slow-%d\n", i); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, fmt.Sprintf("produce to print the offset of line %d before line %d is written", i+1, i+2), func() bool {
				return out.String() == want
			})
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("produce interrupted while waiting for input: %v, want a clean exit", err)
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

// TestServersFormats renders fixed server lists in every format: 1 and 3
// servers, one unreachable, one lagging, and clusters without a usable
// leader, for which servers also exits 3 saying why.
func TestServersFormats(t *testing.T) {
	profile := lipgloss.ColorProfile()
	lipgloss.SetColorProfile(termenv.Ascii) // golden tables without colour codes
	t.Cleanup(func() { lipgloss.SetColorProfile(profile) })
	leader := func(id, addr string, next uint64) *logv1.Server {
		return &logv1.Server{Id: id, RpcAddr: addr, IsLeader: true, IsVoter: true, State: "Leader", NextOffset: next, LowestOffset: 12}
	}
	tests := []struct {
		name    string
		servers []*logv1.Server
		wantErr string
	}{
		{name: "one", servers: []*logv1.Server{leader("dev-0", "127.0.0.1:8400", 42)}},
		{name: "three", servers: []*logv1.Server{
			{Id: "dev-0", RpcAddr: "127.0.0.1:8400", IsVoter: true, State: "Follower", NextOffset: 40, LowestOffset: 12},
			leader("dev-1", "127.0.0.1:8410", 42),
			{Id: "dev-2", RpcAddr: "127.0.0.1:8420", State: "unreachable"},
		}},
		{name: "no_leader", servers: []*logv1.Server{
			{Id: "dev-0", RpcAddr: "127.0.0.1:8400", IsVoter: true, State: "Candidate", NextOffset: 7},
		}, wantErr: "the cluster has no leader"},
		{name: "leader_unreachable", servers: []*logv1.Server{
			{Id: "dev-0", RpcAddr: "127.0.0.1:8400", IsVoter: true, State: "Follower", NextOffset: 7},
			{Id: "dev-1", RpcAddr: "127.0.0.1:8410", IsLeader: true, IsVoter: true, State: "unreachable"},
		}, wantErr: "the leader dev-1 (127.0.0.1:8410) is unreachable"},
		{name: "leader_moving", servers: []*logv1.Server{
			{Id: "dev-0", RpcAddr: "127.0.0.1:8400", IsLeader: true, IsVoter: true, State: "Follower", NextOffset: 7},
		}, wantErr: "dev-0 (127.0.0.1:8400) is named leader but reports itself Follower: leadership is changing"},
	}
	for _, tt := range tests {
		for _, format := range []string{"plain", "json", "table"} {
			t.Run(tt.name+"_"+format, func(t *testing.T) {
				var b strings.Builder
				err := writeServers(&b, tt.servers, format == "json", format == "table")
				if tt.wantErr != "" {
					exitError(t, err, ExitUnavailable, tt.wantErr)
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
	if want := fmt.Sprintf("produced %d records at offsets 0..%d, fsynced on a majority of voters' disks before the answer\n", n, n-1); out != want {
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

// TestDevRestartKeepsData stops a dev cluster on free ports and starts it
// again on the same data: it comes back on the ports it had, with its
// records, and takes more.
func TestDevRestartKeepsData(t *testing.T) {
	isolateConfig(t)
	data := t.TempDir()
	c := serveDev(t, 3, freeDevBase(t, 3), data)
	mustRun(t, "", "produce", "before", "restart")
	if err := c.stop(); err != nil {
		t.Fatalf("stopping the dev cluster: %v", err)
	}

	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--dev-port", "1000"}, "holds a dev cluster on " + c.addrs[0] + " (Raft knows its members by address); leave out --dev-port"},
		{[]string{"--nodes", "5"}, "holds a dev cluster of 3 nodes; give --nodes 3"},
	} {
		_, _, err := runIn(t, "", append([]string{"serve", "--dev", "--data-dir", data}, tt.args...)...)
		exitError(t, err, ExitUsage, tt.wantErr)
	}

	again := serveDev(t, 3, 0, data)
	if !slices.Equal(again.addrs, c.addrs) {
		t.Fatalf("restarted on %v, want the addresses it had, %v", again.addrs, c.addrs)
	}
	mustRun(t, "", "produce", "after")
	if got, want := mustRun(t, "", "consume"), "0\tbefore\n1\trestart\n2\tafter\n"; got != want {
		t.Fatalf("consume after a restart = %q, want %q", got, want)
	}
}

func TestConnectToParsing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want map[string]string
		err  bool
	}{
		{"none", nil, map[string]string{}, false},
		{"two", []string{"node1:8400=127.0.0.1:18400", " node2:8400 = 127.0.0.1:18410"},
			map[string]string{"node1:8400": "127.0.0.1:18400", "node2:8400": "127.0.0.1:18410"}, false},
		{"no =", []string{"node1:8400"}, nil, true},
		{"no port", []string{"node1=127.0.0.1:18400"}, nil, true},
		{"no target", []string{"node1:8400="}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := connectTo(tc.args)
			if tc.err {
				if ExitCode(err) != ExitUsage {
					t.Fatalf("connectTo(%q) = %v, %v; want a usage error", tc.args, got, err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("connectTo(%q) = %v, %v; want %v", tc.args, got, err, tc.want)
			}
		})
	}
}
