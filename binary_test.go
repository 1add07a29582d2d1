package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// The harness of the whole-binary tests: the built proglogctl, run as real
// processes on loopback ports and driven through its own command line. The
// scenarios are in binary_*_test.go and chaos_*_test.go; the fixtures they
// share are in testdata/.

// binary is the proglogctl the tests run: built at most once per test
// binary, on the first test that asks for it, into a directory TestMain
// removes at the end.
var binary struct {
	dir  string // made by TestMain
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proglogctl-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary returns the path of the proglogctl built from this tree, the
// static build `make build` makes (CGO_ENABLED=0, -trimpath), so that the
// container test can put the same file in its image. The first call builds
// it; a failed build fails every test that asks.
func buildBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		binary.path, binary.err = goBuild(filepath.Join(binary.dir, "proglogctl"))
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// buildBinaryWith builds a proglogctl of the test's own, as buildBinary
// does but with more go build flags (-ldflags, say). Under -short it skips
// the test.
func buildBinaryWith(t testing.TB, flags ...string) string {
	t.Helper()
	skipShort(t)
	path, err := goBuild(filepath.Join(t.TempDir(), "proglogctl"), flags...)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// skipShort skips, under -short, a test that runs servers of the binary
// (newClusterWith calls it) or builds a binary of its own.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
}

// goBuild builds this tree's proglogctl statically at path, with flags
// added to go build's.
func goBuild(path string, flags ...string) (string, error) {
	args := append([]string{"build", "-trimpath"}, flags...)
	cmd := exec.Command("go", append(args, "-o", path, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, nil
}

// freePort is nodetest.FreePort: a loopback port, free over TCP and UDP,
// below the ephemeral range (a killed node's port stays free for it).
func freePort(t *testing.T) int {
	t.Helper()
	return nodetest.FreePort(t)
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
	skipShort(t)
	nodetest.EnsureDeadline(t)
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
	killed, err := stopProcess(p.cmd, sig, stopBound)
	p.cmd = nil
	if killed {
		return fmt.Errorf("%s still running %v after %v: killed (%v)", p.name, stopBound, sig, err)
	}
	return err
}

// stopBound bounds the wait for a process to exit after a signal; then it
// is killed.
const stopBound = time.Minute

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

// waitFor is nodetest.WaitFor: bounded by timeout and by the test's
// deadline, failing with what it waited for.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	nodetest.WaitFor(t, timeout, what, cond)
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
	return nodetest.Voters(resp.Servers)
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
// prints the value's offset, or exits 3 saying that no server confirmed the
// record within the timeout (its outcome is unknown: produce sent it again
// with the same producer id and sequence, so it is in the log at most once)
// or that it was not produced (it never reached a server). Any other end stops the producer
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
	case code == commands.ExitUnavailable && strings.Contains(errOut, "no server confirmed them"):
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

// golden is nodetest.Golden: it compares got with testdata/name.golden (or
// rewrites the file with -update).
func golden(t testing.TB, name, got string) {
	t.Helper()
	nodetest.Golden(t, name, got)
}

// loopbackAddr matches the loopback addresses of a test's nodes.
var loopbackAddr = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)

// normalizeAddrs replaces each loopback address in s by 127.0.0.1:PORT, so
// that output can be compared with a golden file.
func normalizeAddrs(s string) string { return loopbackAddr.ReplaceAllString(s, "127.0.0.1:PORT") }

// stopProcess sends sig to cmd and waits for it to exit, killing it if it
// has not within d; it reports whether it had to kill it, and how the
// process exited.
func stopProcess(cmd *exec.Cmd, sig os.Signal, d time.Duration) (killed bool, err error) {
	cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return false, err
	case <-t.C:
		cmd.Process.Kill()
		return true, <-done
	}
}
