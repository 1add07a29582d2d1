package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

const (
	methodProduce      = "/log.v1.Log/Produce"
	methodProduceBatch = "/log.v1.Log/ProduceBatch"
	methodConsume      = "/log.v1.Log/Consume"
	methodOffsets      = "/log.v1.Log/GetOffsets"
	methodStream       = "/log.v1.Log/ConsumeBatchStream"
)

func TestClientWritesFollowTheLeader(t *testing.T) {
	c := startCluster(t, 3)
	var s served
	cl := c.dial(t, c.target(), &s)
	ctx := nodetest.Context(t)

	off, err := cl.Produce(ctx, []byte("before"))
	if err != nil || off != 0 {
		t.Fatalf("Produce = %d, %v; want 0, nil", off, err)
	}
	old := c.Leader(t)
	if got := s.lastAddr(methodProduce); got != old.Addr() {
		t.Fatalf("Produce served by %s, want the leader %s", got, old.Addr())
	}
	if err := old.Close(); err != nil {
		t.Fatalf("closing the leader: %v", err)
	}

	first, err := cl.ProduceBatch(ctx, [][]byte{[]byte("after-1"), []byte("after-2")})
	if err != nil || first != 1 {
		t.Fatalf("ProduceBatch after the leader closed = %d, %v; want 1, nil", first, err)
	}
	off, err = cl.Produce(ctx, []byte("after-3"))
	if err != nil || off != 3 {
		t.Fatalf("Produce after the leader closed = %d, %v; want 3, nil", off, err)
	}
	if got, l := s.lastAddr(methodProduce), c.Leader(t); got != l.Addr() {
		t.Fatalf("Produce served by %s, want the new leader %s", got, l.Addr())
	}
	var got []string
	if err := cl.Read(ctx, 0, 0, false, func(r *logv1.Record) error {
		got = append(got, string(r.Value))
		return nil
	}); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if want := []string{"before", "after-1", "after-2", "after-3"}; !slices.Equal(got, want) {
		t.Fatalf("Read = %q, want %q", got, want)
	}
}

func TestClientReadsSpreadOverFollowers(t *testing.T) {
	c := startCluster(t, 3)
	var s served
	cl := c.dial(t, c.target(), &s)
	ctx := nodetest.Context(t)
	if _, err := cl.Produce(ctx, []byte("r")); err != nil {
		t.Fatal(err)
	}
	l := c.Leader(t)
	var followers []string
	for _, n := range c.Nodes {
		if n != l {
			followers = append(followers, n.Addr())
		}
	}
	// Until both followers are connected, reads may go to one of them
	// (or to the leader, while none is ready).
	seen := map[string]bool{}
	consume := func() {
		t.Helper()
		// The follower may not have applied the record yet.
		if _, err := cl.Consume(ctx, 0); err != nil && status.Code(err) != codes.OutOfRange {
			t.Fatalf("Consume: %v", err)
		}
	}
	nodetest.WaitFor(t, clusterTimeout, "reads served by both followers", func() bool {
		consume()
		for a := range s.take(methodConsume) {
			seen[a] = true
		}
		return seen[followers[0]] && seen[followers[1]]
	})

	// Reads go round robin over the followers. (Offsets is not one of them:
	// it asks the leader, whose range is what was acknowledged.)
	const calls = 40
	for range calls {
		consume()
	}
	n := s.take(methodConsume)
	if n[l.Addr()] != 0 {
		t.Errorf("the leader served %d reads; want none while followers are ready (%v)", n[l.Addr()], n)
	}
	for _, f := range followers {
		if n[f] != calls/2 {
			t.Errorf("follower %s served %d of %d reads; want half (%v)", f, n[f], calls, n)
		}
	}
	if _, _, err := cl.Offsets(ctx); err != nil {
		t.Fatalf("Offsets: %v", err)
	}
	if got := s.lastAddr(methodOffsets); got != l.Addr() {
		t.Errorf("Offsets served by %s, want the leader %s", got, l.Addr())
	}
	if n := s.take(methodProduce); len(n) != 1 || n[l.Addr()] != 1 {
		t.Errorf("Produce served by %v, want the leader %s", n, l.Addr())
	}
}

func TestClientSurvivesLossOfItsOnlySeed(t *testing.T) {
	c := startCluster(t, 3)
	seed := c.Nodes[1]
	var s served
	cl := c.dial(t, c.target(seed), &s)
	ctx := nodetest.Context(t)
	if _, err := cl.Produce(ctx, []byte("a")); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	// Learn the whole cluster before the seed goes.
	nodetest.WaitFor(t, clusterTimeout, "the client to know every server", func() bool {
		servers, err := cl.Servers(ctx)
		return err == nil && len(servers) == 3
	})
	if err := seed.Close(); err != nil {
		t.Fatalf("closing the seed: %v", err)
	}
	for i := range 5 {
		if _, err := cl.Produce(ctx, fmt.Appendf(nil, "b%d", i)); err != nil {
			t.Fatalf("Produce %d after the seed closed: %v", i, err)
		}
		servers, err := cl.Servers(ctx)
		if err != nil {
			t.Fatalf("Servers after the seed closed: %v", err)
		}
		if len(servers) != 3 {
			t.Fatalf("Servers = %v, want 3", servers)
		}
	}
	nodetest.WaitFor(t, clusterTimeout, "a reader to see all 6 records", func() bool {
		_, next, err := cl.Offsets(ctx)
		if err != nil {
			t.Fatalf("Offsets after the seed closed: %v", err)
		}
		return next == 6
	})
	if got := s.lastAddr(methodOffsets); got == seed.Addr() {
		t.Fatalf("Offsets served by the closed seed %s", got)
	}
}

// TestClientReadFollowsAcrossLeaderClose reads from the leader while records
// are produced, closes the leader and checks the stream resumed elsewhere
// with every record delivered once, in order.
func TestClientReadFollowsAcrossLeaderClose(t *testing.T) {
	c := startCluster(t, 3)
	var s served
	cl := c.dial(t, c.target(), &s)
	ctx := nodetest.Context(t)
	old := c.Leader(t)
	// Once a write went through, the client is connected to the leader
	// and the read below starts there.
	if _, err := cl.Produce(ctx, []byte("rec-0")); err != nil {
		t.Fatal(err)
	}

	const total = 200
	var (
		mu       sync.Mutex
		got      []uint64
		midway   = make(chan struct{})
		midOnce  sync.Once
		complete = make(chan struct{})
	)
	readCtx, stopRead := context.WithCancel(discovery.RequireLeader(ctx))
	readErr := make(chan error, 1)
	go func() {
		readErr <- cl.Read(readCtx, 0, 0, true, func(r *logv1.Record) error {
			mu.Lock()
			defer mu.Unlock()
			if want := fmt.Sprintf("rec-%d", r.Offset); string(r.Value) != want {
				return fmt.Errorf("record %d holds %q, want %q", r.Offset, r.Value, want)
			}
			got = append(got, r.Offset)
			if len(got) == total/4 {
				midOnce.Do(func() { close(midway) })
			}
			if len(got) == total {
				close(complete)
			}
			return nil
		})
	}()

	// Produce one record at a time: a write whose outcome is unknown
	// would make the expected log ambiguous, so the test fails on one.
	prodErr := make(chan error, 1)
	go func() {
		for i := 1; i < total; i++ {
			off, err := cl.Produce(ctx, fmt.Appendf(nil, "rec-%d", i))
			if err != nil {
				prodErr <- fmt.Errorf("Produce %d: %w", i, err)
				return
			}
			if off != uint64(i) {
				prodErr <- fmt.Errorf("Produce %d got offset %d", i, off)
				return
			}
		}
		prodErr <- nil
	}()

	select {
	case <-midway:
	case err := <-readErr:
		t.Fatalf("Read ended early: %v", err)
	case <-ctx.Done():
		t.Fatal("timed out waiting for the first records")
	}
	if got := s.lastAddr(methodStream); got != old.Addr() {
		t.Fatalf("stream served by %s, want the leader %s", got, old.Addr())
	}
	if err := old.Close(); err != nil {
		t.Fatalf("closing the leader: %v", err)
	}
	if err := <-prodErr; err != nil {
		t.Fatal(err)
	}
	select {
	case <-complete:
	case err := <-readErr:
		t.Fatalf("Read ended early: %v", err)
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("timed out with %d of %d records read", len(got), total)
	}
	stopRead()
	if err := <-readErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, off := range got {
		if off != uint64(i) {
			t.Fatalf("record %d has offset %d", i, off)
		}
	}
	if n := s.take(methodStream); len(n) < 2 {
		t.Fatalf("streams served by %v; want the read to have resumed on another server", n)
	}
}

func TestClientsShareNothing(t *testing.T) {
	a, b := startCluster(t, 1), startCluster(t, 1)
	ca, cb := a.dial(t, a.target(), nil), b.dial(t, b.target(), nil)
	ctx := nodetest.Context(t)
	if _, err := ca.ProduceBatch(ctx, [][]byte{[]byte("a0"), []byte("a1"), []byte("a2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Produce(ctx, []byte("b0")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cl   *discovery.Client
		n    *node.Node
		next uint64
	}{
		{"a", ca, a.Nodes[0], 3},
		{"b", cb, b.Nodes[0], 1},
	} {
		servers, err := tc.cl.Servers(ctx)
		if err != nil {
			t.Fatalf("%s: Servers: %v", tc.name, err)
		}
		if len(servers) != 1 || servers[0].RpcAddr != tc.n.Addr() {
			t.Errorf("%s: Servers = %v, want only %s", tc.name, servers, tc.n.Addr())
		}
		if _, next, err := tc.cl.Offsets(ctx); err != nil || next != tc.next {
			t.Errorf("%s: Offsets next = %d, %v; want %d", tc.name, next, err, tc.next)
		}
	}
	// Closing one client leaves the other working.
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ca.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := cb.Produce(ctx, []byte("b1")); err != nil {
		t.Fatalf("Produce on b after a closed: %v", err)
	}
}

func TestReadBounds(t *testing.T) {
	c := startCluster(t, 1)
	cl := c.dial(t, c.target(), nil)
	ctx := nodetest.Context(t)
	if _, err := cl.ProduceBatch(ctx, [][]byte{[]byte("0"), []byte("1"), []byte("2"), []byte("3")}); err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop")
	for _, tc := range []struct {
		name     string
		from, to uint64
		stopAt   int // fn fails on this record; -1 never
		want     []string
		wantErr  error
		wantCode codes.Code
	}{
		{name: "all", to: 0, stopAt: -1, want: []string{"0", "1", "2", "3"}},
		{name: "range", from: 1, to: 3, stopAt: -1, want: []string{"1", "2"}},
		{name: "to past end", from: 2, to: 100, stopAt: -1, want: []string{"2", "3"}},
		{name: "at end", from: 4, stopAt: -1},
		{name: "past end", from: 9, stopAt: -1, wantCode: codes.OutOfRange},
		{name: "fn fails", stopAt: 2, want: []string{"0", "1"}, wantErr: errStop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := cl.Read(ctx, tc.from, tc.to, false, func(r *logv1.Record) error {
				if len(got) == tc.stopAt {
					return errStop
				}
				got = append(got, string(r.Value))
				return nil
			})
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Read = %v, want %v", err, tc.wantErr)
				}
			case status.Code(err) != tc.wantCode:
				t.Fatalf("Read = %v, want code %v", err, tc.wantCode)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Read = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("follow ends with ctx", func(t *testing.T) {
		rctx, cancel := context.WithCancel(ctx)
		n := 0
		err := cl.Read(rctx, 0, 0, true, func(r *logv1.Record) error {
			if n++; n == 4 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || n != 4 {
			t.Fatalf("Read = %v after %d records, want context.Canceled after 4", err, n)
		}
	})
	t.Run("follow with bound", func(t *testing.T) {
		produced := make(chan error, 1)
		go func() {
			_, err := cl.Produce(ctx, []byte("4"))
			produced <- err
		}()
		defer func() {
			if err := <-produced; err != nil {
				t.Errorf("Produce: %v", err)
			}
		}()
		var got []string
		err := cl.Read(ctx, 3, 5, true, func(r *logv1.Record) error {
			got = append(got, string(r.Value))
			return nil
		})
		if err != nil || !slices.Equal(got, []string{"3", "4"}) {
			t.Fatalf("Read = %q, %v; want [3 4], nil", got, err)
		}
	})
}

func TestDialRefuses(t *testing.T) {
	p := nodetest.NewPKI(t)
	for _, tc := range []struct {
		name   string
		target string
		tls    bool
	}{
		{"no TLS", "127.0.0.1:1", false},
		{"no address", "proglog://", true},
		{"no port", "proglog://localhost", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := p.ClientTLS(t, certs.RootSubject)
			if !tc.tls {
				conf = nil
			}
			cl, err := discovery.Dial(tc.target, conf)
			if err == nil {
				cl.Close()
				t.Fatalf("Dial(%q) succeeded", tc.target)
			}
		})
	}
}

// TestClientWaitsWithinContext checks that a call to a cluster that cannot
// be reached waits for a server until its context ends.
func TestClientWaitsWithinContext(t *testing.T) {
	p := nodetest.NewPKI(t)
	cl, err := discovery.Dial("127.0.0.1:1", p.ClientTLS(t, certs.RootSubject))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := cl.Produce(ctx, []byte("x")); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Produce = %v, want DeadlineExceeded", err)
	}
	if err := cl.Read(ctx, 0, 0, true, func(*logv1.Record) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read = %v, want context.DeadlineExceeded", err)
	}
}

func TestServersReportsEachServersOwnView(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.dial(t, c.target(), nil)
	ctx := nodetest.Context(t)
	first, err := cl.ProduceBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	if err != nil || first != 0 {
		t.Fatalf("ProduceBatch = %d, %v; want 0, nil", first, err)
	}
	// Followers apply the batch a moment after the leader acknowledges it.
	var servers []*logv1.Server
	nodetest.WaitFor(t, clusterTimeout, "every server to report itself (next offset 3; Leader or Follower as the cluster says)", func() bool {
		servers, err = cl.Servers(ctx)
		if err != nil {
			t.Fatalf("Servers: %v", err)
		}
		t.Logf("servers: %v", servers)
		return len(servers) == 3 && !slices.ContainsFunc(servers, func(s *logv1.Server) bool {
			want := "Follower"
			if s.IsLeader {
				want = "Leader"
			}
			return s.NextOffset != 3 || s.State != want
		})
	})

	// A server that is gone is still listed, as unreachable.
	gone := c.Nodes[0]
	if gone == c.Leader(t) {
		gone = c.Nodes[1]
	}
	if err := gone.Close(); err != nil {
		t.Fatalf("closing %s: %v", gone.Addr(), err)
	}
	servers, err = cl.Servers(ctx)
	if err != nil {
		t.Fatalf("Servers after a follower closed: %v", err)
	}
	i := slices.IndexFunc(servers, func(s *logv1.Server) bool { return s.RpcAddr == gone.Addr() })
	if i < 0 || servers[i].State != discovery.StateUnreachable || servers[i].NextOffset != 0 {
		t.Fatalf("closed follower %s: want it listed as %q with no next offset; servers: %v", gone.Addr(), discovery.StateUnreachable, servers)
	}
}

// A write that never reaches a server is a *NotSentError (it certainly was
// not appended); one that reached a server is not, however it failed.
func TestWriteThatNeverLeftIsNotSent(t *testing.T) {
	c := startCluster(t, 1)
	nowhere := c.dial(t, discovery.Scheme+"://127.0.0.1:1", nil)
	var notSent *discovery.NotSentError
	ctx, cancel := context.WithTimeout(nodetest.Context(t), 300*time.Millisecond)
	defer cancel()
	_, err := nowhere.ProduceBatch(ctx, [][]byte{[]byte("x")})
	if !errors.As(err, &notSent) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("ProduceBatch with no server reachable: %v (%T), want a *NotSentError with DEADLINE_EXCEEDED", err, err)
	}
	ctx, cancel = context.WithTimeout(nodetest.Context(t), 300*time.Millisecond)
	defer cancel()
	if _, err := nowhere.Produce(ctx, []byte("x")); !errors.As(err, &notSent) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Produce with no server reachable: %v (%T), want a *NotSentError with DEADLINE_EXCEEDED", err, err)
	}

	// Refused by a server.
	cl := c.dial(t, c.target(), nil)
	_, err = cl.ProduceBatch(nodetest.Context(t), nil)
	if errors.As(err, &notSent) || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty batch: %v (%T), want INVALID_ARGUMENT from the server, not a *NotSentError", err, err)
	}

	// Received by a leader that never answers: the outcome is unknown.
	stub := startStubLeader(t, c.PKI)
	ctx, cancel = context.WithTimeout(nodetest.Context(t), time.Second)
	defer cancel()
	_, err = c.dial(t, stub.addr, nil).ProduceBatch(ctx, [][]byte{[]byte("x")})
	if errors.As(err, &notSent) || status.Code(err) != codes.DeadlineExceeded || stub.received.Load() != 1 {
		t.Fatalf("ProduceBatch a server received and never answered: %v (%T), received %d; want DEADLINE_EXCEEDED, not a *NotSentError, received once",
			err, err, stub.received.Load())
	}
}

// TestRefusalThatAppendedNothingIsRetried: a server's refusal that says it
// appended nothing (no leader yet, or not the leader) is sent again until it
// succeeds or the context ends, and is then certainly not appended.
func TestRefusalThatAppendedNothingIsRetried(t *testing.T) {
	p := nodetest.NewPKI(t)
	stub := startStubLeader(t, p)
	stub.refuse.Store(3)
	cl := dialStub(t, p, stub)
	first, err := cl.ProduceBatch(nodetest.Context(t), [][]byte{[]byte("x")})
	if err != nil || first != 7 || stub.received.Load() != 4 {
		t.Fatalf("ProduceBatch refused 3 times = %d, %v after %d calls; want 7 after 4", first, err, stub.received.Load())
	}

	// Always refused: the call ends when its context does, here while the
	// client waits to send it a fourth time, and nothing was sent.
	stub = startStubLeader(t, p)
	stub.refuse.Store(-1)
	ctx, cancel := context.WithCancel(nodetest.Context(t))
	defer cancel()
	cl = dialStub(t, p, stub)
	waits := 0
	discovery.SetRewriting(cl, func() {
		if waits++; waits == 3 {
			cancel()
		}
	})
	_, err = cl.ProduceBatch(ctx, [][]byte{[]byte("x")})
	var notSent *discovery.NotSentError
	if !errors.As(err, &notSent) || status.Code(err) != codes.Unavailable || stub.received.Load() != 3 {
		t.Fatalf("ProduceBatch always refused: %v (%T) after %d calls; want a *NotSentError with UNAVAILABLE after 3", err, err, stub.received.Load())
	}
}

// dialStub dials stub as root.
func dialStub(t *testing.T, p *nodetest.PKI, stub *stubLeader) *discovery.Client {
	t.Helper()
	cl, err := discovery.Dial(discovery.Scheme+"://"+stub.addr, p.ClientTLS(t, certs.RootSubject))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// stubLeader is a log.v1 server that says it leads and holds every
// ProduceBatch until the call's context ends, except the ones it refuses.
type stubLeader struct {
	logv1.UnimplementedLogServer
	addr     string
	received atomic.Int32 // ProduceBatch calls
	// refuse is how many ProduceBatch calls to refuse as a server that
	// appended nothing (< 0: all); once they are refused it answers
	// FirstOffset 7.
	refuse atomic.Int32
}

// startStubLeader serves a stubLeader with p's node certificate on a free
// loopback port until the test ends.
func startStubLeader(t *testing.T, p *nodetest.PKI) *stubLeader {
	t.Helper()
	ln := nodetest.Listen(t)
	s := &stubLeader{addr: ln.Addr().String()}
	nodetest.Serve(t, ln, s, nodetest.ServerTLS(t, p.Dir))
	return s
}

func (s *stubLeader) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	self := &logv1.Server{Id: "stub", RpcAddr: s.addr, IsLeader: true, IsVoter: true, State: "Leader"}
	return &logv1.GetServersResponse{Servers: []*logv1.Server{self}, Self: self}, nil
}

func (s *stubLeader) ProduceBatch(ctx context.Context, _ *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	n := s.received.Add(1)
	if r := s.refuse.Load(); r < 0 || n <= r {
		st, err := status.New(codes.Unavailable, "no leader is known yet; retry later").
			WithDetails(&errdetails.ErrorInfo{Domain: logv1.ErrorDomain, Reason: logv1.ReasonNotAppended})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	if s.refuse.Load() > 0 {
		return &logv1.ProduceBatchResponse{FirstOffset: 7, Count: 1}, nil
	}
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// TestConnectTo checks that every connection a client makes, to its seeds
// and to the servers it learns of, goes where ConnectTo maps its address,
// while the server is still verified against the host it is known by.
func TestConnectTo(t *testing.T) {
	c := startCluster(t, 3)
	ctx := nodetest.Context(t)
	dial := func(to map[string]string) *discovery.Client {
		cl, err := discovery.Dial("proglog://localhost:1", c.PKI.ClientTLS(t, certs.RootSubject), discovery.ConnectTo(to))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}

	// Nothing listens at the seed's own address.
	cl := dial(map[string]string{"localhost:1": c.Nodes[0].Addr()})
	if first, err := cl.ProduceBatch(ctx, [][]byte{[]byte("a")}); err != nil || first != 0 {
		t.Fatalf("ProduceBatch through a mapped seed = %d, %v; want 0, nil", first, err)
	}

	// A follower whose address maps to where nothing listens is unreachable.
	gone := c.Nodes[1]
	if gone == c.Leader(t) {
		gone = c.Nodes[2]
	}
	cl = dial(map[string]string{"localhost:1": c.Nodes[0].Addr(), gone.Addr(): "127.0.0.1:1"})
	servers, err := cl.Servers(ctx)
	if err != nil {
		t.Fatalf("Servers: %v", err)
	}
	for _, s := range servers {
		if (s.State == discovery.StateUnreachable) != (s.RpcAddr == gone.Addr()) {
			t.Fatalf("%s is %q; want only %s unreachable; servers: %v", s.RpcAddr, s.State, gone.Addr(), servers)
		}
	}
}

func TestClientOffsetForTime(t *testing.T) {
	c := startCluster(t, 3)
	var s served
	cl := c.dial(t, c.target(), &s)
	ctx := nodetest.Context(t)
	if _, err := cl.Produce(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	mid := time.Now()
	if _, err := cl.ProduceBatch(ctx, [][]byte{[]byte("after-1"), []byte("after-2")}); err != nil {
		t.Fatal(err)
	}
	var times []int64
	if err := cl.Read(ctx, 0, 0, false, func(r *logv1.Record) error {
		times = append(times, r.Timestamp)
		return nil
	}); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(times) != 3 || times[0] >= mid.UnixNano() || times[1] < mid.UnixNano() || times[2] < times[1] {
		t.Fatalf("record times %v; want the first before %d and the others from it on", times, mid.UnixNano())
	}
	for _, tc := range []struct {
		name string
		t    time.Time
		want uint64
	}{
		{"zero time", time.Time{}, 0},
		{"the first record's time", time.Unix(0, times[0]), 0},
		{"between the produces", mid, 1},
		{"after every record", time.Unix(0, times[2]+1), 3},
	} {
		// Every server answers the same, whether or not it has applied the
		// records yet (it waits for them).
		for range 3 {
			if got, err := cl.OffsetForTime(ctx, tc.t); err != nil || got != tc.want {
				t.Fatalf("OffsetForTime(%s) = %d, %v; want %d", tc.name, got, err, tc.want)
			}
		}
	}
	if len(s.take("/log.v1.Log/GetOffsetForTime")) == 0 {
		t.Fatal("OffsetForTime made no GetOffsetForTime call")
	}
}
