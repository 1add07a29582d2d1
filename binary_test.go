package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
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

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type proc struct {
	name    string
	args    []string
	cmd     *exec.Cmd
	out     *bytes.Buffer
	rpcAddr string
}

type cluster struct {
	t      *testing.T
	bin    string
	cfg    string // config dir: certificates and ACL
	procs  []*proc
	client logv1.LogClient
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

func (c *cluster) start(p *proc) {
	c.t.Helper()
	p.out = &bytes.Buffer{}
	p.cmd = exec.Command(c.bin, p.args...)
	p.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Dir(c.cfg))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) stop(p *proc, sig syscall.Signal) {
	c.t.Helper()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	p.cmd.Wait()
	p.cmd = nil
}

// dial connects to addr as root with the cluster's certificates.
func (c *cluster) dial(addr string) *grpc.ClientConn {
	c.t.Helper()
	tlsConf, err := certs.ClientTLSConfig(certs.TLSFiles{
		CertFile: filepath.Join(c.cfg, certs.ClientCertFileName(certs.RootSubject)),
		KeyFile:  filepath.Join(c.cfg, certs.ClientKeyFileName(certs.RootSubject)),
		CAFile:   filepath.Join(c.cfg, certs.CACertFileName),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
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
	resp, err := healthpb.NewHealthClient(c.dial(p.rpcAddr)).Check(ctx, &healthpb.HealthCheckRequest{})
	return err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING
}

func (c *cluster) voters(addr string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := logv1.NewLogClient(c.dial(addr)).GetServers(ctx, &logv1.GetServersRequest{})
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
			resp, err := logv1.NewLogClient(c.dial(p.rpcAddr)).GetServers(ctx, &logv1.GetServersRequest{})
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
	c := &cluster{t: t, bin: buildBinary(t), cfg: filepath.Join(t.TempDir(), "proglog")}
	c.run("gencert", "--dir", c.cfg)
	c.run("genacl", "--dir", c.cfg)
	t.Cleanup(func() {
		for _, p := range c.procs {
			c.stop(p, syscall.SIGKILL)
			if t.Failed() {
				t.Logf("output of %s:\n%s", p.name, p.out)
			}
		}
	})
	var seed string
	for i := range 3 {
		gossip, rpc := freePort(t), freePort(t)
		p := &proc{name: fmt.Sprintf("node-%d", i), rpcAddr: "127.0.0.1:" + strconv.Itoa(rpc)}
		p.args = []string{"serve", "--node-name", p.name, "--data-dir", filepath.Join(t.TempDir(), p.name),
			"--bind-addr", "127.0.0.1:" + strconv.Itoa(gossip), "--rpc-port", strconv.Itoa(rpc), "--log-level", "warn"}
		if i == 0 {
			p.args = append(p.args, "--bootstrap")
			seed = "127.0.0.1:" + strconv.Itoa(gossip)
		} else {
			p.args = append(p.args, "--start-join-addrs", seed)
		}
		c.procs = append(c.procs, p)
		c.start(p)
		waitFor(t, 30*time.Second, p.name+" serving", func() bool { return c.serving(p) })
	}
	waitFor(t, 30*time.Second, "3 voters", func() bool { return c.voters(c.procs[0].rpcAddr) == 3 })

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
	c.stop(leader, syscall.SIGKILL)
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
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("%s after SIGTERM: %v\n%s", p.name, err, p.out)
	}
	p.cmd = nil
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
	// A free block of ports for 3 nodes: base, base+1, ..., base+21.
	base := 20000 + freePort(t)%20000
	dev := exec.Command(bin, "serve", "--dev", "--dev-port", strconv.Itoa(base), "--log-level", "warn")
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
	if code := exitCode(err); code != 5 || !strings.Contains(out, "past the end of the log") {
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
