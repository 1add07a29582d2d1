package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// Container tests: the image of Dockerfile and the 3-node cluster of
// compose.yaml, driven from this host through the ports the nodes publish on
// 127.0.0.1. They need a Docker engine and docker compose (v2, or
// docker-compose ≥ 1.29), and skip without them.

// containerImage is the tag the tests build the image under.
const containerImage = "proglogctl:containertest"

// composeTestLimit bounds a container test as a whole: every docker command
// and every wait ends by then.
const composeTestLimit = 4 * time.Minute

// composeServices are the nodes of compose.yaml.
var composeServices = []string{"node1", "node2", "node3"}

// composeCluster is a compose project of compose.yaml started by a test.
type composeCluster struct {
	t        *testing.T
	deadline time.Time         // of the whole test; see composeTestLimit
	bin      string            // proglogctl for this host
	compose  []string          // the compose command with -p and -f
	project  string            // compose project name
	env      []string          // compose's environment: image, ports
	ports    map[string]string // service → its RPC port published on 127.0.0.1
	cfg      string            // the CA and root's client certificate, copied out
}

// composeCommand returns the compose command that works here ("docker
// compose", else "docker-compose"), or skips the test.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("container test skipped: no usable Docker engine (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if exec.Command(c[0], append(c[1:], "version")...).Run() == nil {
			return c
		}
	}
	t.Skip("container test skipped: neither `docker compose` nor `docker-compose` works")
	return nil
}

// buildImage builds a static proglogctl and the image around it, tagged
// containerImage, and returns the binary (the host runs it too).
func buildImage(t *testing.T) string {
	t.Helper()
	ctxDir := t.TempDir()
	bin := filepath.Join(ctxDir, "bin", "proglogctl")
	if err := os.MkdirAll(filepath.Join(ctxDir, "bin", ".emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	static, err := os.ReadFile(buildBinary(t)) // the static build of the tests' harness
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, static, 0o755); err != nil {
		t.Fatal(err)
	}
	dockerfile, err := filepath.Abs("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", containerImage, "-f", dockerfile, ctxDir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	return bin
}

// startCompose builds the image, brings compose.yaml up under a project name
// of its own with free host ports, copies root's certificate out and waits
// until the three nodes are voters, one leads and all are reachable. The
// project is taken down with its volumes when the test ends (its logs are
// logged first if the test failed).
func startCompose(t *testing.T) *composeCluster {
	t.Helper()
	compose := composeCommand(t)
	nodetest.Deadline(t, composeTestLimit+time.Minute)
	c := &composeCluster{
		t:        t,
		deadline: time.Now().Add(composeTestLimit),
		bin:      buildImage(t),
		project:  fmt.Sprintf("proglogtest%08x", rand.Uint32()),
		env:      []string{"PROGLOG_IMAGE=" + containerImage, "PROGLOG_LOG_LEVEL=warn"},
		ports:    map[string]string{},
		cfg:      t.TempDir(),
	}
	c.compose = append(slices.Clone(compose), "-p", c.project, "-f", "compose.yaml")
	for i, s := range composeServices {
		c.ports[s] = strconv.Itoa(freePort(t))
		c.env = append(c.env, fmt.Sprintf("PROGLOG_NODE%d_PORT=%s", i+1, c.ports[s]))
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.composeOutput("logs", "--no-color", "--tail", "100")
			t.Logf("compose logs:\n%s", out)
		}
		c.deadline = time.Now().Add(time.Minute)
		if out, err := c.composeOutput("down", "-v", "-t", "1"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	c.composeRun("up", "-d")
	for _, f := range []string{certs.CACertFileName, certs.ClientCertFileName(certs.RootSubject), certs.ClientKeyFileName(certs.RootSubject)} {
		c.docker("cp", c.container("node1")+":/etc/proglog/"+f, filepath.Join(c.cfg, f))
	}
	c.waitHealthy(90 * time.Second)
	return c
}

// bounded returns a context that ends at the test's deadline.
func (c *composeCluster) bounded() (context.Context, context.CancelFunc) {
	return context.WithDeadline(context.Background(), c.deadline)
}

// within is d, or what is left of the test's time if that is less.
func (c *composeCluster) within(d time.Duration) time.Duration {
	return max(min(d, time.Until(c.deadline)), 0)
}

func (c *composeCluster) composeOutput(args ...string) (string, error) {
	ctx, cancel := c.bounded()
	defer cancel()
	cmd := exec.CommandContext(ctx, c.compose[0], append(c.compose[1:], args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (the test's %v are up)", err, composeTestLimit)
	}
	return string(out), err
}

func (c *composeCluster) composeRun(args ...string) string {
	c.t.Helper()
	out, err := c.composeOutput(args...)
	if err != nil {
		c.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *composeCluster) docker(args ...string) string {
	c.t.Helper()
	ctx, cancel := c.bounded()
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// container is the id of service's container.
func (c *composeCluster) container(service string) string {
	c.t.Helper()
	id := strings.TrimSpace(c.composeRun("ps", "-q", service))
	if id == "" {
		c.t.Fatalf("no container for %s", service)
	}
	return id
}

// network is the compose network the nodes share.
func (c *composeCluster) network() string { return c.project + "_default" }

// kill kills service's node with SIGKILL; start starts it again.
func (c *composeCluster) kill(service string)  { c.docker("kill", c.container(service)) }
func (c *composeCluster) start(service string) { c.docker("start", c.container(service)) }

// pause freezes service's node; unpause thaws it.
func (c *composeCluster) pause(service string)   { c.docker("pause", c.container(service)) }
func (c *composeCluster) unpause(service string) { c.docker("unpause", c.container(service)) }

// disconnect cuts service's node off the network (the other nodes and the
// host no longer reach it); connect puts it back under its service name.
func (c *composeCluster) disconnect(service string) {
	c.docker("network", "disconnect", c.network(), c.container(service))
}
func (c *composeCluster) connect(service string) {
	c.docker("network", "connect", "--alias", service, c.network(), c.container(service))
}

// client runs a client command against the cluster from this host, as root,
// through the published ports, and returns its stdout, its stderr and its
// exit code (-1 if it did not run to an exit).
func (c *composeCluster) client(stdin string, args ...string) (stdout, stderr string, code int) {
	var seeds, connectTo []string
	for _, s := range composeServices {
		seeds = append(seeds, "127.0.0.1:"+c.ports[s])
		connectTo = append(connectTo, s+":8400=127.0.0.1:"+c.ports[s])
	}
	ctx, cancel := c.bounded()
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, slices.Concat(args[:1], []string{
		"--addr", discovery.Scheme + "://" + strings.Join(seeds, ","),
		"--connect-to", strings.Join(connectTo, ","),
		"--ca-file", filepath.Join(c.cfg, certs.CACertFileName),
		"--cert-file", filepath.Join(c.cfg, certs.ClientCertFileName(certs.RootSubject)),
		"--key-file", filepath.Join(c.cfg, certs.ClientKeyFileName(certs.RootSubject)),
		"--timeout", "5s",
	}, args[1:])...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+c.cfg)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), exitCode(err)
}

// composeServer is one server of `servers --json`.
type composeServer struct {
	ID       string `json:"id"`
	IsLeader bool   `json:"is_leader"`
	IsVoter  bool   `json:"is_voter"`
	State    string `json:"state"`
	Lag      *int64 `json:"lag"`
}

func (s composeServer) String() string {
	lag := "-"
	if s.Lag != nil {
		lag = strconv.FormatInt(*s.Lag, 10)
	}
	return fmt.Sprintf("%s %s voter=%v lag=%s", s.ID, s.State, s.IsVoter, lag)
}

// servers is the cluster as `servers --json` shows it from this host, or
// nil and why not.
func (c *composeCluster) servers() ([]composeServer, string) {
	out, errOut, code := c.client("", "servers", "--json")
	if code != 0 {
		return nil, fmt.Sprintf("servers exited %d: %s", code, strings.TrimSpace(errOut))
	}
	var ss []composeServer
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		return nil, fmt.Sprintf("servers --json: %v: %s", err, out)
	}
	return ss, ""
}

// waitFor waits until cond holds, for at most timeout and never past the
// test's deadline. cond also says what it saw, which is logged whenever it
// changes, so that a timeout is explained by the last state seen.
func (c *composeCluster) waitFor(timeout time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	last := ""
	waitFor(c.t, c.within(timeout), what, func() bool {
		ok, seen := cond()
		if seen != last {
			c.t.Logf("waiting for %s: %s", what, seen)
			last = seen
		}
		return ok
	})
}

// waitHealthy waits until all three nodes are voters that answer as leader
// or follower, caught up, and one leads; it returns the leader.
func (c *composeCluster) waitHealthy(timeout time.Duration) string {
	c.t.Helper()
	var leader string
	c.waitFor(timeout, "3 voters caught up, one leading and two following", func() (bool, string) {
		ss, why := c.servers()
		if ss == nil {
			return false, why
		}
		leader = ""
		ok := len(ss) == 3
		for _, s := range ss {
			if !s.IsVoter || (s.State != "Leader" && s.State != "Follower") || s.Lag == nil || *s.Lag != 0 {
				ok = false
			}
			if s.IsLeader {
				leader = s.ID
			}
		}
		return ok && leader != "", fmt.Sprint(ss)
	})
	return leader
}

// waitLeader waits until a node other than notLeader ("": any node) leads,
// as the servers this host reaches say, and returns it.
func (c *composeCluster) waitLeader(timeout time.Duration, notLeader string) string {
	c.t.Helper()
	var leader string
	what := "a leader"
	if notLeader != "" {
		what += " other than " + notLeader
	}
	c.waitFor(timeout, what, func() (bool, string) {
		ss, why := c.servers()
		if ss == nil {
			return false, why
		}
		for _, s := range ss {
			if s.IsLeader && s.ID != notLeader && s.State == "Leader" {
				leader = s.ID
				return true, fmt.Sprint(ss)
			}
		}
		return false, fmt.Sprint(ss)
	})
	return leader
}

// produce produces values as one batch from this host and records the
// offset each was acknowledged at in acked.
func (c *composeCluster) produce(acked map[uint64]string, values []string) {
	c.t.Helper()
	out, errOut, code := c.client("", append([]string{"produce"}, values...)...)
	lines := strings.Fields(out)
	if code != 0 || len(lines) != len(values) {
		c.t.Fatalf("produce of %d records: exit %d, %d offsets printed\nstdout: %s\nstderr: %s", len(values), code, len(lines), out, errOut)
	}
	for i, l := range lines {
		off, err := strconv.ParseUint(l, 10, 64)
		if err != nil {
			c.t.Fatalf("produce printed %q, not an offset", l)
		}
		acked[off] = values[i]
	}
}

func values(prefix string, n int) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return vs
}

// TestComposeClusterSurvivesKillAndDisconnect runs the compose cluster, kills
// its leader, cuts a node off the network and back, and checks that every
// record acknowledged on the way is in the log exactly once at its offset.
func TestComposeClusterSurvivesKillAndDisconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("container test skipped in -short mode")
	}
	began := time.Now()
	c := startCompose(t)
	t.Logf("cluster up after %v", time.Since(began).Round(time.Millisecond))
	acked := map[uint64]string{}
	c.produce(acked, values("before", 100))

	leader := c.waitLeader(10*time.Second, "")
	c.kill(leader)
	next := c.waitLeader(30*time.Second, leader)
	t.Logf("killed %s, %s leads", leader, next)
	c.produce(acked, values("after", 100))
	c.start(leader)
	c.waitHealthy(60 * time.Second)

	c.disconnect(next)
	third := c.waitLeader(30*time.Second, next)
	t.Logf("cut %s off the network, %s leads", next, third)
	c.connect(next)
	c.waitHealthy(60 * time.Second)

	out, errOut, code := c.client("", "consume", "--from", "0", "--output", "json")
	if code != 0 {
		t.Fatalf("consume: exit %d: %s", code, errOut)
	}
	recs := parseRecords(t, "consume", strings.Split(strings.TrimSpace(out), "\n"))
	probs := append(sequenceProblems(0, recs), ackedProblems(acked, recs)...)
	if len(recs) != len(acked) {
		probs = append(probs, fmt.Sprintf("%d records in the log, %d acknowledged", len(recs), len(acked)))
	}
	if len(probs) > 0 {
		t.Fatalf("the log after a leader kill and a partition:\n%s", strings.Join(probs, "\n"))
	}
	t.Logf("200 acknowledged records present exactly once; %v in all", time.Since(began).Round(time.Millisecond))
}
