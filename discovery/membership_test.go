package discovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// waitTimeout bounds every wait for the cluster to converge. With fastSerf's
// timings it takes well under a second; the margin is for -race on a busy
// machine.
const waitTimeout = 15 * time.Second

// fastSerf shortens failure detection and gossip to suit a loopback cluster.
func fastSerf(sc *serf.Config) {
	lc := memberlist.DefaultLocalConfig()
	mc := sc.MemberlistConfig
	mc.TCPTimeout = lc.TCPTimeout
	mc.IndirectChecks = lc.IndirectChecks
	mc.RetransmitMult = lc.RetransmitMult
	mc.SuspicionMult = lc.SuspicionMult
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 100 * time.Millisecond
	mc.GossipInterval = 20 * time.Millisecond
	mc.PushPullInterval = time.Second
	mc.GossipToTheDeadTime = 5 * time.Second
	mc.DeadNodeReclaimTime = time.Millisecond
	sc.LeavePropagateDelay = 50 * time.Millisecond
	sc.ReapInterval = 100 * time.Millisecond
}

// testLogger sends logs to t.Log until the test's cleanups run.
func testLogger(t testing.TB, name string) *slog.Logger {
	return nodetest.LoggerAt(t, slog.LevelInfo).With("node", name)
}

type call struct{ op, name, addr string }

func joined(name, addr string) call { return call{"join", name, addr} }
func left(name string) call         { return call{"leave", name, ""} }

// recorder is a discovery.Handler that puts every call on a channel.
type recorder struct {
	calls chan call
	err   error  // returned by every call
	seen  []call // calls taken off calls, in order; test goroutine only
}

var _ discovery.Handler = (*recorder)(nil)

func newRecorder() *recorder { return &recorder{calls: make(chan call, 1024)} }

func (r *recorder) Join(name, addr string) error { r.calls <- joined(name, addr); return r.err }
func (r *recorder) Leave(name string) error      { r.calls <- left(name); return r.err }

// await waits for the call want, keeping every call it takes.
func (r *recorder) await(t testing.TB, who string, want call) {
	t.Helper()
	if slices.Contains(r.seen, want) {
		return
	}
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case c := <-r.calls:
			r.seen = append(r.seen, c)
			if c == want {
				return
			}
		case <-timer.C:
			t.Fatalf("%s: no %v within %v; calls: %v", who, want, waitTimeout, r.seen)
		}
	}
}

// drain takes the calls made so far without waiting.
func (r *recorder) drain() []call {
	for {
		select {
		case c := <-r.calls:
			r.seen = append(r.seen, c)
		default:
			return r.seen
		}
	}
}

var nextRPCPort atomic.Int32

// member is a running discovery.Membership with its handler.
type member struct {
	*discovery.Membership
	h       *recorder
	name    string
	rpcAddr string
}

// memberConfig is a member to start: who it is and how it gossips.
type memberConfig struct {
	id discovery.Identity
	discovery.Config
}

func testConfig(t testing.TB, name string, join ...*member) memberConfig {
	c := memberConfig{Config: discovery.DefaultConfig()}
	c.id = discovery.Identity{
		Name:    name,
		RPCAddr: "127.0.0.1:" + strconv.Itoa(20000+int(nextRPCPort.Add(1))),
		Logger:  testLogger(t, name),
	}
	c.BindAddr = "127.0.0.1:0"
	for _, j := range join {
		c.StartJoinAddrs = append(c.StartJoinAddrs, j.gossipAddr())
	}
	c.RetryJoinInterval = 20 * time.Millisecond
	c.RetryJoinMaxInterval = 100 * time.Millisecond
	discovery.SetTuneSerf(&c.Config, fastSerf)
	return c
}

func startConfig(t testing.TB, c memberConfig) (*member, error) {
	t.Helper()
	nodetest.EnsureDeadline(t)
	h := newRecorder()
	m, err := discovery.New(c.id, c.Config, h)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close(%s): %v", c.id.Name, err)
		}
	})
	return &member{Membership: m, h: h, name: c.id.Name, rpcAddr: c.id.RPCAddr}, nil
}

// start starts member name, joining it to the given members.
func start(t testing.TB, name string, join ...*member) *member {
	t.Helper()
	m, err := startConfig(t, testConfig(t, name, join...))
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return m
}

// gossipAddr is the address Serf actually bound, port 0 resolved.
func (m *member) gossipAddr() string { return m.LocalGossipAddr() }

func (m *member) status(name string) discovery.Status {
	for _, mem := range m.Members() {
		if mem.Name == name {
			return mem.Status
		}
	}
	return ""
}

// waitFor is nodetest.WaitFor with waitTimeout and what in a format.
func waitFor(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	nodetest.WaitFor(t, waitTimeout, fmt.Sprintf(format, args...), cond)
}

// cluster3 starts three members and waits until each has seen the others join.
func cluster3(t testing.TB) []*member {
	t.Helper()
	m1 := start(t, "m1")
	m2 := start(t, "m2", m1)
	m3 := start(t, "m3", m2)
	ms := []*member{m1, m2, m3}
	for _, m := range ms {
		for _, o := range ms {
			if o != m {
				m.h.await(t, m.name, joined(o.name, o.rpcAddr))
			}
		}
	}
	return ms
}

func TestThreeMembersJoin(t *testing.T) {
	ms := cluster3(t)
	for _, m := range ms {
		for _, c := range m.h.drain() {
			if c.name == m.name {
				t.Errorf("%s: handler called for itself: %v", m.name, c)
			}
			if c.op != "join" {
				t.Errorf("%s: unexpected %v", m.name, c)
			}
		}
		got := m.Members()
		if len(got) != 3 {
			t.Fatalf("%s: Members() = %+v, want 3", m.name, got)
		}
		for i, o := range ms {
			g := got[i]
			if g.Name != o.name || g.RPCAddr != o.rpcAddr || g.GossipAddr != o.gossipAddr() || g.Status != discovery.StatusAlive || g.Tags[discovery.TagRPCAddr] != o.rpcAddr {
				t.Errorf("%s: Members()[%d] = %+v, want %s rpc %s gossip %s alive", m.name, i, g, o.name, o.rpcAddr, o.gossipAddr())
			}
		}
	}
}

func TestLeaveIsReportedAndMemberRejoins(t *testing.T) {
	ms := cluster3(t)
	m1, m2, m3 := ms[0], ms[1], ms[2]
	if err := m3.Leave(); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	for _, m := range []*member{m1, m2} {
		m.h.await(t, m.name, left("m3"))
		if s := m.status("m3"); s != discovery.StatusLeft {
			t.Errorf("%s: status of m3 = %q, want %q", m.name, s, discovery.StatusLeft)
		}
	}
	if err := m3.Leave(); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := m3.Close(); err != nil {
		t.Errorf("Close after Leave: %v", err)
	}

	// Back under the same name, on a new gossip port and a new RPC address.
	m3b := start(t, "m3", m2)
	if m3b.gossipAddr() == m3.gossipAddr() {
		t.Fatalf("restarted member reuses gossip address %s", m3b.gossipAddr())
	}
	for _, m := range []*member{m1, m2} {
		m.h.await(t, m.name, joined("m3", m3b.rpcAddr))
		waitFor(t, func() bool { return m.status("m3") == discovery.StatusAlive }, "%s sees m3 alive", m.name)
	}
	m3b.h.await(t, "m3", joined("m1", m1.rpcAddr))
	m3b.h.await(t, "m3", joined("m2", m2.rpcAddr))
}

func TestFailedMemberStaysAndRejoins(t *testing.T) {
	ms := cluster3(t)
	m1, m2, m3 := ms[0], ms[1], ms[2]
	if err := m3.Close(); err != nil { // no Leave: the others see it fail
		t.Fatalf("Close: %v", err)
	}
	for _, m := range []*member{m1, m2} {
		waitFor(t, func() bool { return m.status("m3") == discovery.StatusFailed }, "%s sees m3 failed", m.name)
	}

	// Restarted under the same name on a new port, m3 is reported as joining
	// again with its new address. Events are handled in order, so the
	// calls before that Join include any made for the failure: none may be
	// a Leave. (Gossip about the old m3's death may still mark the new one
	// failed until it refutes it; that is no Leave either.)
	m3b := start(t, "m3", m1)
	for _, m := range []*member{m1, m2} {
		m.h.await(t, m.name, joined("m3", m3b.rpcAddr))
		waitFor(t, func() bool { return m.status("m3") == discovery.StatusAlive }, "%s sees m3 alive", m.name)
		if slices.Contains(m.h.drain(), left("m3")) {
			t.Errorf("%s: failed member m3 was reported as leaving: %v", m.name, m.h.seen)
		}
	}
}

func TestFailedMemberIsReapedAfterReconnectTimeout(t *testing.T) {
	shortReconnect := func(sc *serf.Config) {
		fastSerf(sc)
		sc.ReconnectTimeout = 500 * time.Millisecond
	}
	c := testConfig(t, "m1")
	discovery.SetTuneSerf(&c.Config, shortReconnect)
	m1, err := startConfig(t, c)
	if err != nil {
		t.Fatal(err)
	}
	m2 := start(t, "m2", m1)
	m1.h.await(t, "m1", joined("m2", m2.rpcAddr))
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	m1.h.await(t, "m1", left("m2"))
	if s := m1.status("m2"); s != "" {
		t.Errorf("status of reaped m2 = %q, want it gone", s)
	}
}

func TestEncryption(t *testing.T) {
	key1 := bytes.Repeat([]byte{1}, 32)
	key2 := bytes.Repeat([]byte{2}, 32)
	for _, tc := range []struct {
		name       string
		first, in  []byte // keys of the first member and of the one joining it
		wantJoined bool
	}{
		{"same key", key1, key1, true},
		{"same 16-byte key", key1[:16], key1[:16], true},
		{"keyless joins keyed", key1, nil, false},
		{"keyed joins keyless", nil, key1, false},
		{"different keys", key1, key2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t, "first")
			c.EncryptKey = tc.first
			first, err := startConfig(t, c)
			if err != nil {
				t.Fatal(err)
			}
			c = testConfig(t, "second", first)
			c.EncryptKey = tc.in
			joins := captureJoinLogs(t, &c)
			second, err := startConfig(t, c)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if !tc.wantJoined {
				// Joining is retried in the background; it must fail.
				r := joins.await(t, msgJoinFailed)
				t.Logf("join attempt: %s", attrs(r))
				for _, m := range []*member{first, second} {
					if n := len(m.Members()); n != 1 {
						t.Errorf("%s knows %d members after a failed join, want only itself: %+v", m.name, n, m.Members())
					}
				}
				return
			}
			first.h.await(t, "first", joined("second", second.rpcAddr))
			second.h.await(t, "second", joined("first", first.rpcAddr))
		})
	}
}

const (
	msgJoinFailed = "joining cluster failed; retrying"
	msgJoined     = "joined cluster"
)

// joinLogs receives the join goroutine's log records.
type joinLogs struct{ recs chan slog.Record }

// captureJoinLogs makes c log to t and also pass the join goroutine's
// records to the returned joinLogs.
func captureJoinLogs(t testing.TB, c *memberConfig) joinLogs {
	capture := &logCapture{Handler: c.id.Logger.Handler(), prefix: "join", recs: make(chan slog.Record, 64)}
	c.id.Logger = slog.New(capture)
	return joinLogs{capture.recs}
}

// await waits for the next record with message msg, skipping others, and
// checks its level: Warn for a failed attempt, Info for success.
func (j joinLogs) await(t testing.TB, msg string) slog.Record {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case r := <-j.recs:
			if r.Message != msg {
				continue
			}
			want := slog.LevelInfo
			if msg == msgJoinFailed {
				want = slog.LevelWarn
			}
			if r.Level != want {
				t.Errorf("%q logged at %v, want %v", msg, r.Level, want)
			}
			return r
		case <-timer.C:
			t.Fatalf("no %q logged within %v", msg, waitTimeout)
		}
	}
}

// attrs renders a record's attributes.
func attrs(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// deadGossipAddr returns a loopback address nothing listens on (TCP or UDP)
// now, for a member to be started on later.
func deadGossipAddr(t testing.TB) string {
	t.Helper()
	return nodetest.FreeAddr(t)
}

// A member whose join address has nobody listening yet starts anyway, keeps
// trying, and joins once a member starts at that address; then it stops
// trying.
func TestRetryJoinUntilSeedStarts(t *testing.T) {
	seedAddr := deadGossipAddr(t)
	c := testConfig(t, "m2")
	c.StartJoinAddrs = []string{seedAddr}
	joins := captureJoinLogs(t, &c)
	m2, err := startConfig(t, c)
	if err != nil {
		t.Fatalf("New with its seed down: %v", err)
	}
	for range 2 {
		r := joins.await(t, msgJoinFailed)
		t.Logf("failed join attempt: %s", attrs(r))
	}

	sc := testConfig(t, "m1")
	sc.BindAddr = seedAddr
	m1, err := startConfig(t, sc)
	if err != nil {
		t.Fatalf("starting the seed on %s: %v", seedAddr, err)
	}
	m1.h.await(t, "m1", joined("m2", m2.rpcAddr))
	m2.h.await(t, "m2", joined("m1", m1.rpcAddr))
	r := joins.await(t, msgJoined)
	if a := attrs(r); a["attempts"] == "1" || a["attempts"] == "2" {
		t.Errorf("joined after %s attempts; want at least 3 (two failed while the seed was down)", a["attempts"])
	}
	for _, m := range []*member{m1, m2} {
		if n := len(m.Members()); n != 2 {
			t.Errorf("%s knows %d members, want 2: %+v", m.name, n, m.Members())
		}
	}
}

// Close and Leave stop a join that is being retried, without waiting for the
// next attempt.
func TestStopWhileRetryingJoin(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*discovery.Membership) error
	}{
		{"Close", (*discovery.Membership).Close},
		{"Leave", (*discovery.Membership).Leave},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t, "m1")
			c.StartJoinAddrs = []string{deadGossipAddr(t), deadGossipAddr(t)}
			c.RetryJoinInterval = time.Minute
			c.RetryJoinMaxInterval = time.Minute
			joins := captureJoinLogs(t, &c)
			m, err := startConfig(t, c)
			if err != nil {
				t.Fatalf("New with every join address down: %v", err)
			}
			joins.await(t, msgJoinFailed) // now waiting 30 s to 1 min
			const limit = 5 * time.Second
			done := make(chan error, 1)
			go func() { done <- tc.stop(m.Membership) }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
			case <-time.After(limit):
				t.Fatalf("%s did not return within %v while waiting to retry a join", tc.name, limit)
			}
			select {
			case r := <-joins.recs:
				if r.Message == msgJoinFailed {
					t.Errorf("a join attempt failed after %s: %s", tc.name, attrs(r))
				}
			default:
			}
		})
	}
}

func TestCloseAndLeaveAreIdempotent(t *testing.T) {
	m := start(t, "m1")
	for i := range 2 {
		if err := m.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if err := m.Leave(); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Leave after Close = %v, want discovery.ErrClosed", err)
	}
	if got := m.Members(); len(got) != 1 || got[0].Name != "m1" {
		t.Errorf("Members after Close = %+v", got)
	}
}

// logCapture is an slog.Handler that passes records whose message starts
// with prefix to a channel.
type logCapture struct {
	slog.Handler
	prefix string
	recs   chan slog.Record
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (c *logCapture) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, c.prefix) {
		select {
		case c.recs <- r:
		default: // the test has what it needs; never block the logger
		}
	}
	return c.Handler.Handle(ctx, r)
}

func TestHandlerErrorLevels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		level   slog.Level
		message string
	}{
		{"ignorable", fmt.Errorf("%w: raftfsm: not the leader", discovery.ErrIgnorable), slog.LevelDebug, "member event not acted on"},
		{"other", errors.New("raftfsm: add voter: timed out"), slog.LevelWarn, "member event handler failed"},
		{"nil", nil, slog.LevelDebug, "member event handled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			capture := &logCapture{
				Handler: testLogger(t, "m1").Handler(),
				prefix:  "member event",
				recs:    make(chan slog.Record, 16),
			}
			c := testConfig(t, "m1")
			c.id.Logger = slog.New(capture)
			h := newRecorder()
			h.err = tc.err
			m1, err := discovery.New(c.id, c.Config, h)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m1.Close() })
			m2 := start(t, "m2", &member{Membership: m1})
			h.await(t, "m1", joined("m2", m2.rpcAddr))
			select {
			case r := <-capture.recs:
				if r.Level != tc.level || r.Message != tc.message {
					t.Errorf("logged %v %q, want %v %q", r.Level, r.Message, tc.level, tc.message)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("nothing logged for the handler's result")
			}
		})
	}
}

func TestLogWriter(t *testing.T) {
	for _, tc := range []struct {
		line      string
		level     slog.Level
		component string
		msg       string
	}{
		{"[WARN] memberlist: Refuting an alive message\n", slog.LevelWarn, "memberlist", "Refuting an alive message"},
		{"[ERR] serf: Failed to shutdown: x", slog.LevelError, "serf", "Failed to shutdown: x"},
		{"[ERROR] memberlist: y", slog.LevelError, "memberlist", "y"},
		{"[INFO] serf: EventMemberJoin: m1 127.0.0.1", slog.LevelInfo, "serf", "EventMemberJoin: m1 127.0.0.1"},
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1", slog.LevelDebug, "memberlist", "Stream connection from=127.0.0.1:1"},
		{"[WARN] serf: Shutdown without a Leave", slog.LevelInfo, "serf", "Shutdown without a Leave"},
		{"[WARN] memberlist: failed to resolve seed:8401: no such host", slog.LevelDebug, "memberlist", "failed to resolve seed:8401: no such host"},
		{"[TRACE] serf: t", slog.LevelDebug - 4, "serf", "t"},
		{"no level: here", slog.LevelInfo, "serf", "no level: here"},
		{"[ODD] serf: z", slog.LevelInfo, "serf", "[ODD] serf: z"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			capture := &logCapture{Handler: slog.DiscardHandler, recs: make(chan slog.Record, 1)}
			discovery.NewLogLogger(slog.New(capture)).Print(tc.line)
			r := <-capture.recs
			var component string
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "component" {
					component = a.Value.String()
				}
				return true
			})
			if r.Level != tc.level || component != tc.component || r.Message != tc.msg {
				t.Errorf("got %v %q %q, want %v %q %q", r.Level, component, r.Message, tc.level, tc.component, tc.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func(c *discovery.Config) {}
	for _, tc := range []struct {
		name    string
		edit    func(*discovery.Config)
		wantErr string
	}{
		{"ok", ok, ""},
		{"32-byte key", func(c *discovery.Config) { c.EncryptKey = make([]byte, 32) }, ""},
		{"16-byte key", func(c *discovery.Config) { c.EncryptKey = make([]byte, 16) }, ""},
		{"24-byte key", func(c *discovery.Config) { c.EncryptKey = make([]byte, 24) }, ""},
		{"31-byte key", func(c *discovery.Config) { c.EncryptKey = make([]byte, 31) }, "EncryptKey is 31 bytes"},
		{"33-byte key", func(c *discovery.Config) { c.EncryptKey = make([]byte, 33) }, "EncryptKey is 33 bytes"},
		{"empty non-nil key", func(c *discovery.Config) { c.EncryptKey = []byte{} }, ""},
		{"bind without port", func(c *discovery.Config) { c.BindAddr = "127.0.0.1" }, "BindAddr"},
		{"bind bad port", func(c *discovery.Config) { c.BindAddr = "127.0.0.1:70000" }, "BindAddr"},
		{"bind any host", func(c *discovery.Config) { c.BindAddr = ":8401" }, ""},
		{"join without port", func(c *discovery.Config) { c.StartJoinAddrs = []string{"10.0.0.1"} }, "StartJoinAddrs"},
		{"empty join entry", func(c *discovery.Config) { c.StartJoinAddrs = []string{""} }, "StartJoinAddrs"},
		{"no retry interval", func(c *discovery.Config) { c.RetryJoinInterval = 0 }, "RetryJoinInterval"},
		{"retry above max", func(c *discovery.Config) { c.RetryJoinMaxInterval = c.RetryJoinInterval / 2 }, "RetryJoinMaxInterval"},
		{"retry equal max", func(c *discovery.Config) { c.RetryJoinMaxInterval = c.RetryJoinInterval }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := discovery.DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	c := testConfig(t, "m1")
	c.EncryptKey = []byte("short")
	if _, err := discovery.New(c.id, c.Config, newRecorder()); err == nil {
		t.Error("New accepted a 5-byte key")
	}
	c = testConfig(t, "m1")
	if _, err := discovery.New(c.id, c.Config, nil); err == nil {
		t.Error("New accepted a nil discovery.Handler")
	}
	for _, tc := range []struct {
		name    string
		edit    func(*discovery.Identity)
		wantErr string
	}{
		{"no name", func(id *discovery.Identity) { id.Name = "" }, "Name is empty"},
		{"no rpc address", func(id *discovery.Identity) { id.RPCAddr = "" }, "RPCAddr is empty"},
		{"no logger", func(id *discovery.Identity) { id.Logger = nil }, "Logger is nil"},
	} {
		c := testConfig(t, "m1")
		tc.edit(&c.id)
		if _, err := discovery.New(c.id, c.Config, newRecorder()); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: New = %v, want an error containing %q", tc.name, err, tc.wantErr)
		}
	}
}
