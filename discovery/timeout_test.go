package discovery_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// slack bounds how much later than its timeout a call may end.
const slack = time.Second

// silentServer is a log.v1 server that accepts every read and never answers
// it, as a node that stopped applying does. GetServers tells of the cluster
// of leader, with the silent server added as a follower; with no leader it
// says it leads itself, and GetOffsets then answers next offset 10.
type silentServer struct {
	logv1.UnimplementedLogServer
	addr    string
	leader  logv1.LogClient // nil: the silent server leads
	streams atomic.Int32    // ConsumeBatchStream calls
	reads   atomic.Int32    // Consume calls
}

func startSilentServer(t *testing.T, p *nodetest.PKI, leader *node.Node) *silentServer {
	t.Helper()
	ln := nodetest.Listen(t)
	s := &silentServer{addr: ln.Addr().String()}
	if leader != nil {
		conn, err := grpc.NewClient("passthrough:///"+leader.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(p.ClientTLS(t, certs.RootSubject))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		s.leader = logv1.NewLogClient(conn)
	}
	nodetest.Serve(t, ln, s, nodetest.ServerTLS(t, p.Dir))
	return s
}

func (s *silentServer) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	self := &logv1.Server{Id: "silent", RpcAddr: s.addr, IsVoter: true, State: "Follower"}
	if s.leader == nil {
		self.IsLeader, self.State = true, "Leader"
		return &logv1.GetServersResponse{Servers: []*logv1.Server{self}, Self: self}, nil
	}
	res, err := s.leader.GetServers(ctx, req)
	if err != nil {
		return nil, err
	}
	res.Servers, res.Self = append(res.Servers, self), self
	return res, nil
}

func (s *silentServer) GetOffsets(ctx context.Context, _ *logv1.GetOffsetsRequest) (*logv1.GetOffsetsResponse, error) {
	if s.leader != nil {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &logv1.GetOffsetsResponse{LowestOffset: 0, NextOffset: 10}, nil
}

func (s *silentServer) Consume(ctx context.Context, _ *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	s.reads.Add(1)
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

func (s *silentServer) ConsumeBatchStream(_ *logv1.ConsumeBatchRequest, stream logv1.Log_ConsumeBatchStreamServer) error {
	s.streams.Add(1)
	<-stream.Context().Done()
	return stream.Context().Err()
}

// A read that lands on a server which never answers moves to a server that
// does, well within the answer timeout: with a bound (consume) and following
// (tail).
func TestReadMovesOffAServerThatNeverAnswers(t *testing.T) {
	c := startCluster(t, 1)
	leader := c.Leader(t)
	silent := startSilentServer(t, c.PKI, leader)
	var s served
	cl := c.dial(t, discovery.Scheme+"://"+silent.addr, &s)
	const answer = 2 * time.Second
	cl.SetAnswerTimeout(answer)
	ctx := nodetest.Context(t)
	if first, err := cl.ProduceBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil || first != 0 {
		t.Fatalf("ProduceBatch = %d, %v", first, err)
	}
	// Reads go to followers first: wait until the silent one takes them.
	nodetest.WaitFor(t, 10*time.Second, "the silent follower to be picked for a read", func() bool {
		rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		cl.Consume(rctx, 0)
		return silent.reads.Load() > 0
	})

	for _, follow := range []bool{false, true} {
		name := map[bool]string{false: "bounded", true: "following"}[follow]
		t.Run(name, func(t *testing.T) {
			s.take(methodStream)
			before := silent.streams.Load()
			rctx, cancel := context.WithTimeout(ctx, answer+slack)
			defer cancel()
			var got []string
			start := time.Now()
			err := cl.Read(rctx, 0, 0, follow, func(r *logv1.Record) error {
				got = append(got, string(r.Value))
				if follow && len(got) == 3 {
					cancel() // following reads end when their context does
				}
				return nil
			})
			elapsed := time.Since(start)
			if follow && errors.Is(err, context.Canceled) {
				err = nil
			}
			if err != nil || !slices.Equal(got, []string{"a", "b", "c"}) {
				t.Fatalf("Read = %v after %v with %q; want a, b and c within %v", err, elapsed, got, answer)
			}
			if silent.streams.Load() == before {
				t.Fatal("the read never went to the silent server: the test proves nothing")
			}
			if by := s.take(methodStream); by[leader.Addr()] == 0 {
				t.Fatalf("streams served by %v; want the read answered by the leader %s", by, leader.Addr())
			}
			if elapsed > answer {
				t.Fatalf("Read took %v, more than the answer timeout %v", elapsed, answer)
			}
		})
	}
}

// startHungListener accepts connections on a loopback port and never sends
// a byte on them, until the test ends; it returns the address.
func startHungListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		accepting sync.WaitGroup
		mu        sync.Mutex
		held      []net.Conn
	)
	accepting.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, conn) // accepted, never answered
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		accepting.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A seed that accepts connections and never answers delays finding the
// cluster by the resolver's hedge, not by its ask timeout: a write with a
// deadline shorter than the ask timeout still reaches the leader named by
// the next seed.
func TestResolverMovesPastASeedThatNeverAnswers(t *testing.T) {
	c := startCluster(t, 1)
	hung := startHungListener(t)
	var s served
	cl := c.dial(t, discovery.Scheme+"://"+hung+","+c.Nodes[0].Addr(), &s)
	ctx, cancel := context.WithTimeout(nodetest.Context(t), time.Second) // the ask timeout is 3 s
	defer cancel()
	start := time.Now()
	if off, err := cl.Produce(ctx, []byte("x")); err != nil || off != 0 {
		t.Fatalf("Produce with the first seed hung = %d, %v after %v; want offset 0 within 1s", off, err, time.Since(start))
	}
	if got := s.lastAddr(methodProduce); got != c.Nodes[0].Addr() {
		t.Fatalf("Produce served by %s, want the leader %s", got, c.Nodes[0].Addr())
	}
	t.Logf("Produce answered after %v", time.Since(start))
}

// With no server able to answer, a read ends within its answer timeout
// (plus slack) with DEADLINE_EXCEEDED, whether the server does not even
// finish the handshake or accepts the read and never sends a record.
func TestReadEndsWithinAnswerTimeout(t *testing.T) {
	p := nodetest.NewPKI(t)
	hung := startHungListener(t)
	silent := startSilentServer(t, p, nil)

	for _, tc := range []struct{ name, addr string }{
		{"no handshake", hung},
		{"no record", silent.addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := discovery.DialForTest(discovery.Scheme+"://"+tc.addr, p.ClientTLS(t, certs.RootSubject), testRefresh, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			const answer = 500 * time.Millisecond
			cl.SetAnswerTimeout(answer)
			ctx, cancel := context.WithTimeout(context.Background(), answer+5*slack)
			defer cancel()
			start := time.Now()
			err = cl.Read(ctx, 0, 0, false, func(*logv1.Record) error { return nil })
			elapsed := time.Since(start)
			if status.Code(err) != codes.DeadlineExceeded || ctx.Err() != nil {
				t.Fatalf("Read = %v (context: %v) after %v; want DEADLINE_EXCEEDED within %v", err, ctx.Err(), elapsed, answer)
			}
			if elapsed > answer+slack {
				t.Fatalf("Read took %v, want at most %v + %v", elapsed, answer, slack)
			}
			t.Logf("Read ended after %v: %v", elapsed, err)
		})
	}
}

// staleServer answers GetServers as a follower that still names a leader
// which is gone (dead, an address where nothing listens), with the real
// leader of the cluster listed as a follower: what a follower says for up
// to an election timeout after its leader died. It answers nothing else.
type staleServer struct {
	logv1.UnimplementedLogServer
	addr, dead, leader string
}

func (s *staleServer) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	self := &logv1.Server{Id: "stale", RpcAddr: s.addr, IsVoter: true, State: "Follower"}
	return &logv1.GetServersResponse{Self: self, Servers: []*logv1.Server{
		self,
		{Id: "dead", RpcAddr: s.dead, IsVoter: true, IsLeader: true},
		{Id: "real", RpcAddr: s.leader, IsVoter: true},
	}}, nil
}

// A client whose first answer names a leader that is gone does not wait on
// it: the resolver asks that leader, then the others, until a leader
// answers for itself, and the write goes there. (Before, the first answer
// naming any leader was final until the next refresh, which asked the same
// server first: the write waited out its deadline.)
func TestWritesFindALeaderTheirFirstAnswerDoesNotName(t *testing.T) {
	c := startCluster(t, 1)
	leader := c.Leader(t)
	dead := nodetest.Listen(t)
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there now
	ln := nodetest.Listen(t)
	stale := &staleServer{addr: ln.Addr().String(), dead: deadAddr, leader: leader.Addr()}
	nodetest.Serve(t, ln, stale, nodetest.ServerTLS(t, c.PKI.Dir))

	var s served
	cl := c.dial(t, discovery.Scheme+"://"+stale.addr, &s)
	ctx, cancel := context.WithTimeout(nodetest.Context(t), 5*time.Second)
	defer cancel()
	if _, err := cl.Produce(ctx, []byte("found")); err != nil {
		t.Fatalf("Produce with a first answer naming a dead leader: %v", err)
	}
	if got := s.lastAddr(methodProduce); got != leader.Addr() {
		t.Fatalf("Produce went to %s, want the leader %s", got, leader.Addr())
	}
}

// hungLeader is a server that says it leads and never answers a write, as a
// leader paused (SIGSTOP) does; it counts the GetServers calls it answers.
type hungLeader struct {
	logv1.UnimplementedLogServer
	addr string
	asks atomic.Int32
}

func (s *hungLeader) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	s.asks.Add(1)
	self := &logv1.Server{Id: "hung", RpcAddr: s.addr, IsVoter: true, IsLeader: true, State: "Leader"}
	return &logv1.GetServersResponse{Self: self, Servers: []*logv1.Server{self}}, nil
}

func (s *hungLeader) Produce(ctx context.Context, _ *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// A write that timed out has the client ask the cluster for its servers
// again at once (not at its next refresh, an hour away here), so the next
// write goes to the leader the cluster has by then.
func TestTimedOutWriteAsksForTheServers(t *testing.T) {
	p := nodetest.NewPKI(t)
	ln := nodetest.Listen(t)
	s := &hungLeader{addr: ln.Addr().String()}
	nodetest.Serve(t, ln, s, nodetest.ServerTLS(t, p.Dir))
	cl, err := discovery.DialForTest(discovery.Scheme+"://"+s.addr, p.ClientTLS(t, certs.RootSubject), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	ctx, cancel := context.WithTimeout(nodetest.Context(t), 300*time.Millisecond)
	defer cancel()
	if _, err := cl.Produce(ctx, []byte("lost in a pause")); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Produce to a hung leader = %v, want DEADLINE_EXCEEDED", err)
	}
	asked := s.asks.Load()
	nodetest.WaitFor(t, 5*time.Second, "the client to ask for the servers again after a write timed out", func() bool {
		return s.asks.Load() > asked
	})
}

// pausedLeader is a server that leads until a write reaches it, and then is
// paused (SIGSTOP): it answers nothing more, neither the write nor
// GetServers, while the other server, follower until then, leads.
type pausedLeader struct {
	logv1.UnimplementedLogServer
	addr, other string
	paused      atomic.Bool
}

func (s *pausedLeader) GetServers(ctx context.Context, _ *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	if s.paused.Load() {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	self := &logv1.Server{Id: "paused", RpcAddr: s.addr, IsVoter: true, IsLeader: true, State: "Leader"}
	return &logv1.GetServersResponse{Self: self, Servers: []*logv1.Server{self, {Id: "other", RpcAddr: s.other, IsVoter: true}}}, nil
}

func (s *pausedLeader) hang(ctx context.Context) error {
	s.paused.Store(true)
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

func (s *pausedLeader) Produce(ctx context.Context, _ *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	return nil, s.hang(ctx)
}

func (s *pausedLeader) ProduceBatch(ctx context.Context, _ *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	return nil, s.hang(ctx)
}

// A write in flight to a leader that stops answering ends as soon as another
// server answers for itself that it leads, well within its deadline: a
// write without a producer id as UNAVAILABLE (its outcome is unknown), an
// exactly-once write sent again to the new leader and acknowledged there.
func TestWriteToAPausedLeaderEndsWhenAnotherLeads(t *testing.T) {
	c := startCluster(t, 1)
	leader := c.Leader(t)
	for _, exactlyOnce := range []bool{false, true} {
		ln := nodetest.Listen(t)
		stub := &pausedLeader{addr: ln.Addr().String(), other: leader.Addr()}
		nodetest.Serve(t, ln, stub, nodetest.ServerTLS(t, c.PKI.Dir))
		var s served
		cl := c.dial(t, discovery.Scheme+"://"+stub.addr, &s)
		// Far longer than the election and the client's checks take, so a
		// write that waits for its deadline fails the test.
		ctx, cancel := context.WithTimeout(nodetest.Context(t), time.Minute)
		if !exactlyOnce {
			_, err := cl.Produce(ctx, []byte("unknown outcome"))
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "another leader") {
				t.Fatalf("Produce to a paused leader = %v, want UNAVAILABLE naming another leader", err)
			}
		} else {
			res, err := cl.ProduceBatchAs(ctx, "paused-test", 1, [][]byte{[]byte("sent again")})
			if err != nil || res.Attempts < 2 {
				t.Fatalf("ProduceBatchAs through a paused leader = %+v, %v: want it acknowledged by the new leader on a later attempt", res, err)
			}
			if got := s.lastAddr(methodProduceBatch); got != leader.Addr() {
				t.Fatalf("the last attempt went to %s, want the new leader %s", got, leader.Addr())
			}
		}
		cancel()
		if !stub.paused.Load() {
			t.Fatal("the write never reached the paused leader")
		}
	}
}

// When every server has been asked and none that answered names a leader
// that confirms itself, the resolver does not wait out its ask timeout for
// the silent ones (a paused leader): it uses the answers it has and asks
// again, so a write finds the leader the answers listed. Here the first seed
// never answers and the second names a dead leader, with the real one among
// its followers.
func TestResolverDoesNotWaitForSilentServersOnceAllWereAsked(t *testing.T) {
	c := startCluster(t, 1)
	leader := c.Leader(t)
	hung := startHungListener(t)
	dead := nodetest.Listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	ln := nodetest.Listen(t)
	stale := &staleServer{addr: ln.Addr().String(), dead: deadAddr, leader: leader.Addr()}
	nodetest.Serve(t, ln, stale, nodetest.ServerTLS(t, c.PKI.Dir))

	var s served
	cl := c.dial(t, discovery.Scheme+"://"+hung+","+stale.addr, &s)
	ctx, cancel := context.WithTimeout(nodetest.Context(t), 2*time.Second) // the ask timeout is 3 s
	defer cancel()
	if _, err := cl.Produce(ctx, []byte("found")); err != nil {
		t.Fatalf("Produce with one seed silent and the other naming a dead leader: %v", err)
	}
	if got := s.lastAddr(methodProduce); got != leader.Addr() {
		t.Fatalf("Produce went to %s, want the leader %s", got, leader.Addr())
	}
}
