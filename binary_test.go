package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/commands"
	"github.com/proglogctl/proglogctl/discovery"
)

// Whole-binary tests: the built proglogctl, run as real processes on loopback
// ports and driven through its own command line.

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "proglogctl")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback port nothing listens on now (TCP or UDP: Serf
// uses both). It lies below the range the system takes the local ports of
// outgoing connections from, so that while a node is killed no client
// connection can take its port and keep it from starting again.
func freePort(t *testing.T) int {
	t.Helper()
	low := 32768 // Linux's default start of the range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no free port found below the ephemeral range")
	return 0
}

type proc struct {
	name    string
	wrap    []string // command and arguments the binary runs under (ip netns exec NS), if any
	args    []string
	cmd     *exec.Cmd
	out     *bytes.Buffer // stderr, and stdout unless stdout is set; kept across restarts
	stdout  io.Writer     // where stdout goes, when not to out
	rpcAddr string
	// metricsAddr serves the node's /metrics (clusterOptions.metrics).
	metricsAddr string
}

type cluster struct {
	t       *testing.T
	bin     string
	cfg     string  // config dir: certificates and ACL
	procs   []*proc // the nodes
	clients []*proc // client commands running in the background
}

// startCluster starts the nodes of newCluster one after another, each once
// the one before serves, and returns once all n are voters.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return startClusterWith(t, n, clusterOptions{})
}

// startClusterWith is startCluster with options.
func startClusterWith(t *testing.T, n int, o clusterOptions) *cluster {
	t.Helper()
	c := newClusterWith(t, n, o)
	for _, p := range c.procs {
		c.start(p)
		waitFor(t, 30*time.Second, p.name+" serving", func() bool { return c.serving(p) })
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%d voters", n), func() bool { return c.voters(c.procs[0].rpcAddr) == n })
	return c
}

// newCluster builds the binary, generates certificates and an ACL, and
// prepares n `proglogctl serve` processes on loopback ports (node-0
// bootstraps, the others join it) without starting them. Every process the
// cluster starts is killed when the test ends, and its output logged if the
// test failed.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return newClusterWith(t, n, clusterOptions{})
}

// clusterOptions changes where and how newClusterWith runs the nodes; the
// zero value is startCluster's loopback cluster.
type clusterOptions struct {
	host    func(i int) string   // the IP node i binds to (default 127.0.0.1)
	wrap    func(i int) []string // the command node i runs under (default none)
	dataDir func(i int) string   // node i's data directory (default a temporary one)
	serve   []string             // more flags for every serve
	metrics bool                 // every node serves /metrics on a port of its own
}

// newClusterWith is newCluster with options.
func newClusterWith(t *testing.T, n int, o clusterOptions) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: buildBinary(t), cfg: filepath.Join(t.TempDir(), "proglog")}
	if o.host == nil {
		o.host = func(int) string { return "127.0.0.1" }
	}
	gencert := []string{"gencert", "--dir", c.cfg}
	for i := range n {
		if h := o.host(i); h != "127.0.0.1" {
			gencert = append(gencert, "--hosts", h)
		}
	}
	c.run(gencert...)
	c.run("genacl", "--dir", c.cfg)
	t.Cleanup(func() {
		for _, p := range append(slices.Clone(c.clients), c.procs...) {
			c.signal(p, syscall.SIGKILL)
			if t.Failed() && p.out != nil {
				t.Logf("output of %s:\n%s", p.name, p.out)
			}
		}
	})
	var seed string
	for i := range n {
		gossip, rpc := freePort(t), freePort(t)
		host, dir := o.host(i), filepath.Join(t.TempDir(), fmt.Sprintf("node-%d", i))
		if o.dataDir != nil {
			dir = o.dataDir(i)
		}
		p := &proc{name: fmt.Sprintf("node-%d", i), rpcAddr: net.JoinHostPort(host, strconv.Itoa(rpc))}
		if o.wrap != nil {
			p.wrap = o.wrap(i)
		}
		p.args = slices.Concat([]string{"serve", "--node-name", p.name, "--data-dir", dir,
			"--bind-addr", net.JoinHostPort(host, strconv.Itoa(gossip)), "--rpc-port", strconv.Itoa(rpc), "--log-level", "warn"}, o.serve)
		if o.metrics {
			p.metricsAddr = net.JoinHostPort(host, strconv.Itoa(freePort(t)))
			p.args = append(p.args, "--metrics-addr", p.metricsAddr)
		}
		if i == 0 {
			p.args = append(p.args, "--bootstrap")
			seed = net.JoinHostPort(host, strconv.Itoa(gossip))
		} else {
			p.args = append(p.args, "--start-join-addrs", seed)
		}
		c.procs = append(c.procs, p)
	}
	return c
}

func (c *cluster) run(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "PROGLOG_CONFIG_DIR="+c.cfg, "XDG_CONFIG_HOME="+filepath.Dir(c.cfg))
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("proglogctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// withClientArgs returns args (a command and its own flags and arguments)
// with the client flags that point it at every node of the cluster, as root,
// inserted after the command name.
func (c *cluster) withClientArgs(args ...string) []string {
	addrs := make([]string, len(c.procs))
	for i, p := range c.procs {
		addrs[i] = p.rpcAddr
	}
	return slices.Concat(args[:1], []string{
		"--addr", discovery.Scheme + "://" + strings.Join(addrs, ","),
		"--ca-file", filepath.Join(c.cfg, certs.CACertFileName),
		"--cert-file", filepath.Join(c.cfg, certs.ClientCertFileName(certs.RootSubject)),
		"--key-file", filepath.Join(c.cfg, certs.ClientKeyFileName(certs.RootSubject)),
	}, args[1:])
}

// runClient runs a client command against the cluster and returns its
// stdout, its stderr and its exit code (-1 if it did not run to an exit).
// It does not touch the test, so any goroutine may call it.
func (c *cluster) runClient(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	cmd := exec.CommandContext(ctx, c.bin, c.withClientArgs(args...)...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Dir(c.cfg))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), exitCode(err)
}

// startClient starts a client command against the cluster in the background,
// its stdout copied to stdout as it comes. It is killed when the test ends.
func (c *cluster) startClient(name string, stdout io.Writer, args ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, args: c.withClientArgs(args...), stdout: stdout}
	c.clients = append(c.clients, p)
	c.start(p)
	return p
}

func (c *cluster) start(p *proc) {
	c.t.Helper()
	if p.out == nil {
		p.out = &bytes.Buffer{}
	}
	p.cmd = exec.Command(c.bin, p.args...)
	if len(p.wrap) > 0 {
		p.cmd = exec.Command(p.wrap[0], slices.Concat(p.wrap[1:], []string{c.bin}, p.args)...)
	}
	p.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Dir(c.cfg))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if p.stdout != nil {
		p.cmd.Stdout = p.stdout
	}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// signal sends sig to p and returns how it exited (nil: status 0).
func (c *cluster) signal(p *proc, sig syscall.Signal) error {
	c.t.Helper()
	if p.cmd == nil {
		return nil
	}
	p.cmd.Process.Signal(sig)
	err := p.cmd.Wait()
	p.cmd = nil
	return err
}

// dial connects to addr as root with the cluster's certificates; the
// connection is closed when the test ends.
func (c *cluster) dial(addr string) *grpc.ClientConn {
	c.t.Helper()
	conn := c.connect(addr)
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

// connect connects to addr as root with the cluster's certificates; the
// caller closes the connection.
func (c *cluster) connect(addr string) *grpc.ClientConn {
	c.t.Helper()
	tlsConf, err := certs.ClientTLSConfig(certs.TLSFiles{
		CertFile: filepath.Join(c.cfg, certs.ClientCertFileName(certs.RootSubject)),
		KeyFile:  filepath.Join(c.cfg, certs.ClientKeyFileName(certs.RootSubject)),
		CAFile:   filepath.Join(c.cfg, certs.CACertFileName),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	// Nodes are killed and restarted on the same address: reconnect within a
	// second of their return, not after gRPC's default backoff of up to 2 min.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		c.t.Fatal(err)
	}
	return conn
}

// waitFor polls cond until it holds, failing after timeout with what.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *cluster) serving(p *proc) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn := c.connect(p.rpcAddr)
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING
}

func (c *cluster) voters(addr string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn := c.connect(addr)
	defer conn.Close()
	resp, err := logv1.NewLogClient(conn).GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		return -1
	}
	n := 0
	for _, s := range resp.Servers {
		if s.IsVoter {
			n++
		}
	}
	return n
}

func (c *cluster) leader(among ...*proc) *proc {
	c.t.Helper()
	var l *proc
	waitFor(c.t, 30*time.Second, "a leader", func() bool {
		for _, p := range among {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn := c.connect(p.rpcAddr)
			resp, err := logv1.NewLogClient(conn).GetServers(ctx, &logv1.GetServersRequest{})
			conn.Close()
			cancel()
			if err != nil {
				continue
			}
			for _, s := range resp.Servers {
				for _, q := range among {
					if s.IsLeader && s.RpcAddr == q.rpcAddr && q.cmd != nil {
						l = q
						return true
					}
				}
			}
		}
		return false
	})
	return l
}

func TestBinaryThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	c := startCluster(t, 3)

	// Produce through a follower (it forwards), then read from every node.
	leader := c.leader(c.procs...)
	var follower *proc
	for _, p := range c.procs {
		if p != leader {
			follower = p
		}
	}
	fc := logv1.NewLogClient(c.dial(follower.rpcAddr))
	acked := map[uint64]string{}
	produce := func(cl logv1.LogClient, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			v := fmt.Sprintf("record-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := cl.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
			cancel()
			if err != nil {
				t.Fatalf("Produce(%s): %v", v, err)
			}
			acked[resp.Offset] = v
		}
	}
	produce(fc, 0, 50)
	checkAll := func(procs ...*proc) {
		t.Helper()
		for _, p := range procs {
			cl := logv1.NewLogClient(c.dial(p.rpcAddr))
			for off, want := range acked {
				var got string
				waitFor(t, 20*time.Second, fmt.Sprintf("offset %d on %s", off, p.name), func() bool {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					resp, err := cl.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
					if err != nil {
						return false
					}
					got = string(resp.Record.Value)
					return true
				})
				if got != want {
					t.Fatalf("%s offset %d = %q, want %q", p.name, off, got, want)
				}
			}
		}
	}
	checkAll(c.procs...)

	// Kill the leader: the others elect a new one and lose nothing.
	c.signal(leader, syscall.SIGKILL)
	var rest []*proc
	for _, p := range c.procs {
		if p != leader {
			rest = append(rest, p)
		}
	}
	newLeader := c.leader(rest...)
	produce(logv1.NewLogClient(c.dial(newLeader.rpcAddr)), 50, 20)
	checkAll(rest...)

	// Restart the old leader: it rejoins and catches up.
	c.start(leader)
	waitFor(t, 30*time.Second, leader.name+" serving again", func() bool { return c.serving(leader) })
	checkAll(leader)
	t.Logf("%d acknowledged records on every node after a leader kill and restart", len(acked))

	// SIGTERM stops a node gracefully: it exits 0.
	p := c.procs[2]
	if err := c.signal(p, syscall.SIGTERM); err != nil {
		t.Fatalf("%s after SIGTERM: %v\n%s", p.name, err, p.out)
	}
}

// Three nodes started at once, the joiners before their seed (as compose,
// systemd or a script may start them), form a cluster. Stopped one after
// another with SIGTERM and no flags, they stay voters: two of them started
// again, the first while its seed is down, elect a leader and take a write
// while the third stays down.
func TestBinaryStartTogetherStopIsRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	c := newCluster(t, 3)
	for _, p := range slices.Backward(c.procs) {
		c.start(p)
	}
	waitFor(t, 60*time.Second, "3 voters", func() bool { return c.voters(c.procs[0].rpcAddr) == 3 })
	for _, p := range c.procs {
		waitFor(t, 30*time.Second, p.name+" serving", func() bool { return c.serving(p) })
	}

	for _, p := range c.procs {
		if err := c.signal(p, syscall.SIGTERM); err != nil {
			t.Fatalf("%s after SIGTERM: %v; want exit 0", p.name, err)
		}
	}
	seed, joiner := c.procs[0], c.procs[1]
	c.start(joiner)
	c.start(seed)
	l := c.leader(seed, joiner)
	if v := c.voters(l.rpcAddr); v != 3 {
		t.Errorf("%d voters after every node was stopped, want 3: nobody left", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, errOut, code := c.runClient(ctx, "produce", "--timeout", "20s", "after-restart"); code != 0 {
		t.Fatalf("produce with two of three nodes back: exit %d, %q, %s", code, out, errOut)
	}
}

// tail follows the log across a rolling SIGKILL of every node, the leader
// first, while records are produced: it prints every record once, in order,
// exactly as the log holds them.
func TestBinaryTailAcrossNodeKills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// History: tail -n 3 starts at the eighth of ten records.
	history := []string{"produce"}
	for i := range 10 {
		history = append(history, fmt.Sprintf("h-%d", i))
	}
	if out, errOut, code := c.runClient(ctx, history...); code != 0 || out != "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n" {
		t.Fatalf("produce h-0..h-9: exit %d, %q, %s; want offsets 0 to 9", code, out, errOut)
	}
	const from = 7
	acked := map[uint64]string{7: "h-7", 8: "h-8", 9: "h-9"}

	tailOut := &lineLog{}
	tail := c.startClient("tail", tailOut, "tail", "-n", "3", "--output", "json")
	waitFor(t, 20*time.Second, "tail to print the last 3 of 10 records", func() bool { return len(tailOut.lines()) >= 3 })

	prod := startProducer(t, c)
	// progress waits for the producer to have more records acknowledged.
	progress := func(when string) {
		t.Helper()
		n := prod.ackedCount(t)
		waitFor(t, 30*time.Second, "5 more acknowledged records "+when, func() bool { return prod.ackedCount(t) >= n+5 })
	}
	progress("before any kill")

	// Kill the leader, then each other node, restarting each before the
	// next: tail's stream is served by one node until that node dies, and
	// every node dies once, so the stream is broken at least once; each
	// kill of a leader also changes the leader.
	first := c.leader(c.procs...)
	order := []*proc{first}
	for _, p := range c.procs {
		if p != first {
			order = append(order, p)
		}
	}
	var killed []string
	for i, p := range order {
		name := p.name
		if i == 0 {
			name += " (leader)"
		}
		killed = append(killed, name)
		c.signal(p, syscall.SIGKILL)
		progress("with " + name + " killed")
		c.start(p)
		waitFor(t, 30*time.Second, p.name+" serving again", func() bool { return c.serving(p) })
		progress("after " + p.name + " restarted")
	}
	prodAcked, unknown, notProduced := prod.halt(t)
	var last uint64
	for off, v := range prodAcked {
		acked[off] = v
		last = max(last, off)
	}

	waitFor(t, 30*time.Second, fmt.Sprintf("tail to print offset %d, the last acknowledged", last), func() bool {
		recs := parseRecords(t, "tail", tailOut.lines())
		return len(recs) > 0 && recs[len(recs)-1].Offset >= last
	})
	if err := c.signal(tail, syscall.SIGTERM); err != nil {
		t.Fatalf("tail after SIGTERM: %v; want exit 0\n%s", err, tail.out)
	}
	got := parseRecords(t, "tail", tailOut.lines()) // complete: Wait has copied all of stdout

	if probs := sequenceProblems(from, got); len(probs) > 0 {
		t.Errorf("tail's offsets do not run one by one from %d:\n\t%s", from, strings.Join(probs, "\n\t"))
	}
	end := got[len(got)-1].Offset + 1
	out, errOut, code := c.runClient(ctx, "consume", "--from", strconv.Itoa(from), "--to", strconv.FormatUint(end, 10), "--output", "json")
	if code != 0 {
		t.Fatalf("consume --from %d --to %d: exit %d: %s", from, end, code, errOut)
	}
	want := parseRecords(t, "consume", strings.Split(strings.TrimSuffix(out, "\n"), "\n"))
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w jsonRecord
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("tail and consume --from %d --to %d differ (%d and %d records), first at line %d: tail %+v, consume %+v",
					from, end, len(got), len(want), i+1, g, w)
				break
			}
		}
	}
	if probs := ackedProblems(acked, got); len(probs) > 0 {
		t.Errorf("acknowledged records wrong in tail's output:\n\t%s", strings.Join(probs, "\n\t"))
	}
	for _, r := range got {
		if slices.Contains(notProduced, r.Value) {
			t.Errorf("%q is at offset %d, but produce said it was not produced", r.Value, r.Offset)
		}
	}
	t.Logf("tail printed offsets %d..%d across SIGKILLs of %s; %d records acknowledged, %d produce runs of unknown outcome, %d not produced",
		from, end-1, strings.Join(killed, ", "), len(acked), len(unknown), len(notProduced))
}

// lineLog keeps the lines written to it; a process's stdout copied into it
// can be read while the process runs.
type lineLog struct {
	mu      sync.Mutex // guards the fields below
	done    []string
	partial []byte
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.done = append(l.done, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	l.partial = slices.Clone(l.partial)
	return len(p), nil
}

// lines returns the complete lines written so far.
func (l *lineLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.done)
}

// jsonRecord is one line of `--output json`.
type jsonRecord struct {
	Offset uint64 `json:"offset"`
	Value  string `json:"value"`
}

func parseRecords(t *testing.T, who string, lines []string) []jsonRecord {
	t.Helper()
	recs := make([]jsonRecord, len(lines))
	for i, line := range lines {
		if err := json.Unmarshal([]byte(line), &recs[i]); err != nil {
			t.Fatalf("%s line %d %q: %v", who, i+1, line, err)
		}
	}
	return recs
}

// sequenceProblems says how the offsets of recs fail to run one by one from
// `from`: which are missing, which repeated, and where the order breaks.
func sequenceProblems(from uint64, recs []jsonRecord) []string {
	if len(recs) == 0 {
		return []string{"no records"}
	}
	count := map[uint64]int{}
	hi := from
	for _, r := range recs {
		count[r.Offset]++
		hi = max(hi, r.Offset)
	}
	var probs []string
	for _, off := range slices.Sorted(maps.Keys(count)) {
		if off < from {
			probs = append(probs, fmt.Sprintf("offset %d printed, before the first expected", off))
		}
	}
	for off := from; off <= hi; off++ {
		switch n := count[off]; {
		case n == 0:
			probs = append(probs, fmt.Sprintf("offset %d missing", off))
		case n > 1:
			probs = append(probs, fmt.Sprintf("offset %d printed %d times", off, n))
		}
	}
	for i, r := range recs {
		if r.Offset != from+uint64(i) {
			probs = append(probs, fmt.Sprintf("line %d has offset %d where %d was due", i+1, r.Offset, from+uint64(i)))
			break
		}
	}
	return probs
}

// ackedProblems says which acknowledged records (offset → value) recs lacks
// or holds at another offset, and which values recs holds twice: every
// produce sends a distinct value and is never retried.
func ackedProblems(acked map[uint64]string, recs []jsonRecord) []string {
	at := map[uint64]string{}
	where := map[string]uint64{}
	var probs []string
	for _, r := range recs {
		at[r.Offset] = r.Value
		if prev, ok := where[r.Value]; ok && prev != r.Offset {
			probs = append(probs, fmt.Sprintf("value %q printed at offsets %d and %d", r.Value, prev, r.Offset))
		}
		where[r.Value] = r.Offset
	}
	for _, off := range slices.Sorted(maps.Keys(acked)) {
		v := acked[off]
		switch got, ok := at[off]; {
		case !ok:
			probs = append(probs, fmt.Sprintf("%q acknowledged at offset %d: offset %d not printed", v, off, off))
		case got != v:
			probs = append(probs, fmt.Sprintf("%q acknowledged at offset %d: %q printed there", v, off, got))
		}
	}
	return probs
}

// producer runs `proglogctl produce` over and over from its own goroutine,
// one distinct value ("r-0", "r-1", ...) a run, until halted. A run either
// prints the value's offset, or exits 3 saying the record may or may not have
// been produced (its outcome is unknown: a node died under it) or that it was
// not produced (it never reached a server). Any other end stops the producer
// and fails the test.
type producer struct {
	stop chan struct{} // closed by halt
	done chan struct{} // closed when the goroutine returns

	mu      sync.Mutex        // guards the fields below
	acked   map[uint64]string // offset → value
	unknown []string          // values of unknown outcome
	refused []string          // values produce said were not produced
	err     error             // the run that stopped the producer
}

// startProducer starts a producer; it is halted when the test ends.
func startProducer(t *testing.T, c *cluster) *producer {
	p := &producer{stop: make(chan struct{}), done: make(chan struct{}), acked: map[uint64]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			if !p.produce(ctx, c, fmt.Sprintf("r-%d", i)) {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel() // kills a run in progress
		<-p.done
	})
	return p
}

// produce runs produce once and records its outcome; it reports whether the
// producer goes on.
func (p *producer) produce(ctx context.Context, c *cluster, v string) bool {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, errOut, code := c.runClient(rctx, "produce", "--timeout", "5s", v)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		return false // the test has ended
	}
	switch {
	case code == 0:
		off, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		if err != nil {
			p.err = fmt.Errorf("produce %s printed %q; want its offset", v, out)
			return false
		}
		if prev, ok := p.acked[off]; ok {
			p.err = fmt.Errorf("produce %s and produce %s were both acknowledged at offset %d", prev, v, off)
			return false
		}
		p.acked[off] = v
	case code == commands.ExitUnavailable && strings.Contains(errOut, "may or may not have been produced"):
		p.unknown = append(p.unknown, v)
	case code == commands.ExitUnavailable && strings.Contains(errOut, "were not produced"):
		p.refused = append(p.refused, v)
	default:
		p.err = fmt.Errorf("produce %s: exit %d, stdout %q, stderr %q; want an offset, or exit 3 saying the outcome is unknown or that it was not produced", v, code, out, errOut)
		return false
	}
	return true
}

// ackedCount returns how many records have been acknowledged so far,
// failing the test if the producer has stopped on an error.
func (p *producer) ackedCount(t *testing.T) int {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatal(p.err)
	}
	return len(p.acked)
}

// halt lets the run in progress finish, stops the producer and returns the
// acknowledged records, the values of unknown outcome and those produce said
// were not produced.
func (p *producer) halt(t *testing.T) (acked map[uint64]string, unknown, notProduced []string) {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatal(p.err)
	}
	return maps.Clone(p.acked), slices.Clone(p.unknown), slices.Clone(p.refused)
}

func TestServeRefusesMissingSecurityFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	c := &cluster{t: t, bin: buildBinary(t), cfg: filepath.Join(t.TempDir(), "proglog")}
	c.run("gencert", "--dir", c.cfg)
	c.run("genacl", "--dir", c.cfg)
	for _, missing := range []string{certs.NodeCertFileName, certs.NodeKeyFileName, certs.CACertFileName, "model.conf", "policy.csv"} {
		t.Run(missing, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "proglog")
			if err := os.CopyFS(cfg, os.DirFS(c.cfg)); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(cfg, missing))
			cmd := exec.Command(c.bin, "serve", "--data-dir", t.TempDir(), "--bootstrap",
				"--bind-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--rpc-port", strconv.Itoa(freePort(t)))
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Dir(cfg))
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("serve started without %s", missing)
			}
			if !strings.Contains(string(out), missing) {
				t.Fatalf("serve without %s said %q; want the file named", missing, out)
			}
		})
	}
}

// A newcomer's walk-through: `serve --dev` in the background, then produce,
// consume, tail and servers with no flags at all.
func TestBinaryDevWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	home := t.TempDir()
	env := append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_DATA_HOME="+filepath.Join(home, "data"))
	// Free ports the system picks: the default ones may be taken here.
	dev := exec.Command(bin, "serve", "--dev", "--dev-port", "0", "--log-level", "warn")
	dev.Env = env
	var devOut bytes.Buffer
	dev.Stdout, dev.Stderr = &devOut, &devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dev.Process.Signal(syscall.SIGINT)
		dev.Wait()
		if t.Failed() {
			t.Logf("serve --dev output:\n%s", devOut.String())
		}
	})
	run := func(stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// servers exits 0 once the cluster has a leader.
	waitFor(t, 60*time.Second, "the dev cluster to have a leader", func() bool {
		_, err := run("", "servers")
		return err == nil
	})
	out, err := run("", "produce", "hello", "world")
	if err != nil || out != "0\n1\n" {
		t.Fatalf("produce hello world = %q, %v; want offsets 0 and 1", out, err)
	}
	out, err = run("three\nfour\n", "produce", "--quiet")
	if err != nil || !strings.Contains(out, "produced 2 records at offsets 2..3") {
		t.Fatalf("produce from stdin = %q, %v", out, err)
	}
	out, err = run("", "consume")
	if err != nil || out != "0\thello\n1\tworld\n2\tthree\n3\tfour\n" {
		t.Fatalf("consume = %q, %v", out, err)
	}
	out, err = run("", "consume", "--from", "-1", "--output", "json")
	if err != nil || out != `{"offset":3,"value":"four"}`+"\n" {
		t.Fatalf("consume --from -1 --output json = %q, %v", out, err)
	}
	out, err = run("", "servers")
	if err != nil || strings.Count(out, "dev-") != 3 || !strings.Contains(out, "leader") {
		t.Fatalf("servers = %q, %v", out, err)
	}
	out, err = run("", "consume", "--from", "100")
	if code := exitCode(err); code != commands.ExitOutOfRange || !strings.Contains(out, "past the end of the log") {
		t.Fatalf("consume past the end: exit %d, %q; want exit 5 and a message saying so", code, out)
	}

	// tail prints the last records, then follows new ones.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tail := exec.CommandContext(ctx, bin, "tail", "-n", "2")
	tail.Env = env
	pr, pw := io.Pipe()
	tail.Stdout = pw
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(pr)
	want := []string{"2\tthree", "3\tfour", "4\tfive"}
	for i, w := range want {
		if i == 2 {
			if _, err := run("", "produce", "five"); err != nil {
				t.Fatal(err)
			}
		}
		if !lines.Scan() || lines.Text() != w {
			t.Fatalf("tail line %d = %q, want %q", i, lines.Text(), w)
		}
	}
	tail.Process.Signal(syscall.SIGINT)
	if err := tail.Wait(); err != nil {
		t.Fatalf("tail after SIGINT: %v", err)
	}
	pw.Close()
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
