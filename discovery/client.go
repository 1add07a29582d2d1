package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// Client is a connection to a cluster: writes go to the leader, reads are
// spread over the followers, and the servers are rediscovered as the
// cluster changes. Its methods may be called from many goroutines at once.
// Errors from the servers are gRPC status errors (status.Code gives the code).
type Client struct {
	conn  *grpc.ClientConn
	log   logv1.LogClient
	creds credentials.TransportCredentials
	opts  []grpc.DialOption // the caller's, for connections to one server
	rb    *resolverBuilder

	// served, when set, is told the address that served each unary call
	// and each stream; tests use it.
	served func(method, addr string)
	// rewriting, when set, is called as write starts waiting to send a
	// refused write again; tests use it.
	rewriting func()
	// answerTimeout is Read's bound on waiting for a server (nanoseconds).
	answerTimeout atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

const (
	// resumeMin and resumeMax bound the wait before Read resumes after a
	// broken stream; the wait doubles with each failure in a row.
	resumeMin = 10 * time.Millisecond
	resumeMax = time.Second
)

// Dial connects to a cluster. target is "proglog://host:port[,host:port...]"
// or the same without the scheme; the addresses are seeds: the client asks
// any of them for the cluster's servers and then follows the cluster.
// tlsConf authenticates the client and verifies the servers (each against
// the host it is dialed at, unless tlsConf.ServerName is set); it is
// required. opts are added to the dial options of every connection the
// client makes: to the cluster, and to one server it asks directly.
//
// Dial does not wait for a connection: calls wait (within their context)
// until a suitable server is ready. Until some server has answered, though,
// a client fails fast: its calls fail with a *ConnectError once every server
// it knows has refused the connection for UnreachableAfter, and at once when
// a TLS handshake fails (ErrHandshake).
func Dial(target string, tlsConf *tls.Config, opts ...grpc.DialOption) (*Client, error) {
	return dial(target, tlsConf, defaultRefreshInterval, nil, opts...)
}

func dial(target string, tlsConf *tls.Config, refresh time.Duration, served func(method, addr string), opts ...grpc.DialOption) (*Client, error) {
	seeds, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	if tlsConf == nil {
		return nil, errors.New("discovery: TLS configuration is nil: servers speak only TLS")
	}
	rch := newReach()
	rb := &resolverBuilder{seeds: seeds, tlsConf: tlsConf, interval: refresh, opts: opts, reach: rch, now: make(chan struct{}, 1)}
	c := &Client{served: served, creds: credentials.NewTLS(tlsConf), opts: opts, rb: rb}
	c.answerTimeout.Store(int64(DefaultAnswerTimeout))
	all := []grpc.DialOption{
		grpc.WithResolvers(rb),
		grpc.WithTransportCredentials(c.creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithAuthority(seeds[0]),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MessageBytes(DefaultMaxRecordBytes)), grpc.MaxCallRecvMsgSize(MessageBytes(DefaultMaxRecordBytes))),
		grpc.WithChainUnaryInterceptor(rch.unary),
		grpc.WithChainStreamInterceptor(rch.stream),
	}
	if served != nil {
		all = append(all, grpc.WithChainUnaryInterceptor(c.recordUnary), grpc.WithChainStreamInterceptor(c.recordStream))
	}
	conn, err := grpc.NewClient(Scheme+":///"+strings.Join(seeds, ","), append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("discovery: dial %s: %w", target, err)
	}
	c.conn, c.log = conn, logv1.NewLogClient(conn)
	// Calls wait for the resolver's first answer before gRPC sees them, so
	// the resolver must start now rather than with the first call.
	conn.Connect()
	return c, nil
}

// ParseTarget returns the host:port seeds of target,
// "proglog://host:port[,host:port...]" or the same without the scheme.
func ParseTarget(target string) ([]string, error) {
	rest := strings.TrimPrefix(target, Scheme+"://")
	var seeds []string
	for _, a := range strings.Split(rest, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("discovery: target %q: address %q is not host:port", target, a)
		}
		seeds = append(seeds, a)
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("discovery: target %q has no address", target)
	}
	return seeds, nil
}

// DefaultMaxRecordBytes is the record limit a Client sizes its messages
// for unless MaxRecordBytes says otherwise: the servers' default
// (logstore's MaxRecordBytes).
const DefaultMaxRecordBytes = 1 << 20

// MessageBytes is the largest gRPC message a server with a record limit of
// maxRecordBytes receives (one record and the request around it, and never
// less than gRPC's default of 4 MiB); a Client sends and receives messages
// up to it, so a request the server would refuse for its size fails before
// it is sent.
func MessageBytes(maxRecordBytes int) int { return max(4<<20, maxRecordBytes+64<<10) }

// MaxRecordBytes is a dial option for Dial that sizes the client's messages
// for servers whose record limit is n bytes (see MessageBytes).
func MaxRecordBytes(n int) grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MessageBytes(n)), grpc.MaxCallRecvMsgSize(MessageBytes(n)))
}

// DefaultAnswerTimeout is a new Client's AnswerTimeout.
const DefaultAnswerTimeout = 10 * time.Second

// SetAnswerTimeout sets how long Read waits for a server to send a record
// that exists before it fails with DEADLINE_EXCEEDED (a quarter of it before
// it moves to another server). Calls other than Read are bounded by their
// context alone.
func (c *Client) SetAnswerTimeout(d time.Duration) {
	if d > 0 {
		c.answerTimeout.Store(int64(d))
	}
}

// AnswerTimeout returns the timeout SetAnswerTimeout set.
func (c *Client) AnswerTimeout() time.Duration { return time.Duration(c.answerTimeout.Load()) }

// Close closes the connections and stops the client's goroutines. Calls in
// progress fail with CANCELED. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// waitReady makes a call wait for a suitable server (a leader, for writes)
// until its context ends, instead of failing while none is ready.
var waitReady = grpc.WaitForReady(true)

// decodeBatches makes a ConsumeBatchStream decode its messages with
// batchCodec. (ForceCodecV2 is marked experimental in grpc-go; should it go,
// the stream falls back to the default codec by dropping this option.)
var decodeBatches = grpc.ForceCodecV2(newBatchCodec())

// NotSentError is the error of a write that certainly was not appended: it
// never reached a server (no leader was ready before the context ended), or
// every server it reached refused it without appending it (ReasonNotAppended)
// until the context ended. Sending it again cannot duplicate it. Err is the
// gRPC status error.
type NotSentError struct{ Err error }

// Error returns Err's message.
func (e *NotSentError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *NotSentError) Unwrap() error { return e.Err }

// GRPCStatus is Err's status, so status.Code and status.FromError see it.
func (e *NotSentError) GRPCStatus() *status.Status { return status.Convert(e.Err) }

// sentTo wraps err in a *NotSentError when the call never got a connection
// to a server: p, filled by grpc.Peer, has no address then. (grpc-go fills it
// only for an attempt that got a transport stream, clientStream.finish in
// stream.go; a request is written only on such a stream. Check again when
// upgrading grpc; TestWriteThatNeverLeftIsNotSent covers both directions.)
func sentTo(p *peer.Peer, err error) error {
	if p.Addr == nil {
		return &NotSentError{Err: err}
	}
	return err
}

// notAppended reports whether err is a server's refusal that appended
// nothing (an ErrorInfo with ReasonNotAppended).
func notAppended(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == logv1.ErrorDomain && info.Reason == logv1.ReasonNotAppended {
			return true
		}
	}
	return false
}

const (
	// rewriteMin and rewriteMax bound the wait before a write refused
	// without being appended is sent again; it doubles with each refusal.
	rewriteMin = 20 * time.Millisecond
	rewriteMax = 500 * time.Millisecond
)

// write makes a write call, and makes it again while a server refuses it
// without appending it (the leader changed, or none is known yet), asking the
// cluster for its servers afresh each time, until ctx ends. A write whose
// outcome is unknown is never sent again, but the cluster is asked for its
// servers afresh when it timed out or the server went away (a paused or
// dead leader), so the next write goes to the leader it has now.
func (c *Client) write(ctx context.Context, call func(ctx context.Context, p *peer.Peer) error) error {
	wait := rewriteMin
	for {
		var p peer.Peer
		actx, stop := c.watchLeader(ctx)
		err := leaderMoved(actx, call(actx, &p))
		stop()
		if err == nil || !notAppended(err) {
			if code := status.Code(err); code == codes.DeadlineExceeded || code == codes.Unavailable {
				c.rb.resolveNow()
			}
			return sentTo(&p, err)
		}
		if !c.waitToResend(ctx, &wait) {
			return &NotSentError{Err: err}
		}
	}
}

const (
	// stallAfter is how long a write waits for its answer before the
	// client asks the cluster, every stallCheck, whether the server it
	// went to still leads (watchLeader). A paused or cut-off leader answers
	// nothing until it is back, long after the others have elected another.
	stallAfter = 300 * time.Millisecond
	stallCheck = 100 * time.Millisecond
)

// errLeaderMoved ends an attempt whose server stopped leading while the
// write was in flight.
var errLeaderMoved = errors.New("the cluster has another leader than the server the write went to, which has not answered")

// watchLeader returns the context of one attempt of a write and the func
// that ends it. Once the attempt has waited stallAfter for its answer, the
// cluster is asked for its servers every stallCheck, and when a leader other
// than the server the attempt went to answers for itself that it leads, the
// attempt is cancelled with errLeaderMoved (see leaderMoved): its outcome is
// unknown, as after any leader change, but the client need not wait for the
// old leader to come back or for its deadline to know that.
func (c *Client) watchLeader(ctx context.Context) (context.Context, func()) {
	var picked atomic.Pointer[string]
	actx, cancel := context.WithCancelCause(noticingPick(ctx, &picked))
	done := make(chan struct{})
	t := time.AfterFunc(stallAfter, func() {
		tick := time.NewTicker(stallCheck)
		defer tick.Stop()
		for {
			c.rb.resolveNow()
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if c.leaderMovedFrom(&picked) {
				cancel(errLeaderMoved)
				return
			}
		}
	})
	return actx, func() {
		t.Stop()
		close(done)
		cancel(nil)
	}
}

// leaderMovedFrom reports whether a leader other than the server picked
// names (the one a write went to) has answered for itself that it leads.
func (c *Client) leaderMovedFrom(picked *atomic.Pointer[string]) bool {
	to, l := picked.Load(), c.rb.leader()
	return to != nil && l != "" && l != *to
}

// leaderMoved turns err, an attempt's that watchLeader cancelled, into an
// UNAVAILABLE status that says so; any other err is returned as it is.
func leaderMoved(actx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(actx), errLeaderMoved) && status.Code(err) == codes.Canceled {
		return status.Error(codes.Unavailable, errLeaderMoved.Error()+": the outcome is unknown")
	}
	return err
}

// waitToResend asks the cluster for its servers afresh and waits *wait
// before a write is sent again, doubling *wait up to rewriteMax. It returns
// false when ctx ends first.
func (c *Client) waitToResend(ctx context.Context, wait *time.Duration) bool {
	c.rb.resolveNow()
	if c.rewriting != nil {
		c.rewriting()
	}
	t := time.NewTimer(*wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	*wait = min(2**wait, rewriteMax)
	return true
}

// Produce appends value and returns its offset once committed. A refusal
// that appended nothing is retried (see write); a write whose outcome is
// unknown (UNAVAILABLE, the leader changed while committing) is not, as it
// carries no producer id: the record may be in the log. One certainly not
// appended is a *NotSentError. ProduceBatchAs retries every unknown outcome.
func (c *Client) Produce(ctx context.Context, value []byte) (uint64, error) {
	var res *logv1.ProduceResponse
	err := c.write(ctx, func(ctx context.Context, p *peer.Peer) (err error) {
		res, err = c.log.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value}}, waitReady, grpc.Peer(p))
		return err
	})
	if err != nil {
		return 0, err
	}
	return res.Offset, nil
}

// ProduceBatch appends values atomically at dense offsets from first.
// Like Produce, it retries a refusal that appended nothing, never a write
// whose outcome is unknown, and a write certainly not appended is a
// *NotSentError.
func (c *Client) ProduceBatch(ctx context.Context, values [][]byte) (first uint64, err error) {
	req := &logv1.ProduceBatchRequest{Records: make([]*logv1.Record, len(values))}
	for i, v := range values {
		req.Records[i] = &logv1.Record{Value: v}
	}
	var res *logv1.ProduceBatchResponse
	err = c.write(ctx, func(ctx context.Context, p *peer.Peer) (err error) {
		res, err = c.log.ProduceBatch(ctx, req, waitReady, grpc.Peer(p))
		return err
	})
	if err != nil {
		return 0, err
	}
	return res.FirstOffset, nil
}

// Produced is what a produce with a producer id learned.
type Produced struct {
	// First is the offset of the batch's first record; its records are at
	// First, First+1, ... in order.
	First uint64
	// Duplicate: an earlier attempt (this call's, or an earlier call's with
	// the same producer and sequence) had appended the batch, and First is
	// where; nothing was appended again.
	Duplicate bool
	// Durability is what the acknowledgement guarantees.
	Durability logv1.Durability
	// Attempts is how many times the request was sent (1 without retries).
	Attempts int
}

// ProduceBatchAs appends values atomically as batch seq of producer (see
// log.proto: the cluster appends a producer's batch once, whatever the
// number of times it is sent). So it sends the same request again, asking
// the cluster for its servers afresh, not only after a refusal that appended
// nothing but after any failure that leaves the outcome unknown (the leader
// changed, the server went away, no answer in time: each attempt gets half
// of what is left of ctx's deadline), until an answer tells the outcome or
// ctx ends. Then the error is a *NotSentError when no attempt reached a
// server, else the last attempt's: the batch is in the log at most once, and
// sending it again with the same producer and sequence tells whether it is.
func (c *Client) ProduceBatchAs(ctx context.Context, producer string, seq uint64, values [][]byte) (Produced, error) {
	req := &logv1.ProduceBatchRequest{Records: make([]*logv1.Record, len(values)), ProducerId: producer, Sequence: seq}
	for i, v := range values {
		req.Records[i] = &logv1.Record{Value: v}
	}
	var res *logv1.ProduceBatchResponse
	attempts, err := c.writeAgain(ctx, func(ctx context.Context, p *peer.Peer) (err error) {
		res, err = c.log.ProduceBatch(ctx, req, waitReady, grpc.Peer(p))
		return err
	})
	if err != nil {
		return Produced{Attempts: attempts}, err
	}
	return Produced{First: res.FirstOffset, Duplicate: res.Duplicate, Durability: res.Durability, Attempts: attempts}, nil
}

// attemptMin is the least time an attempt of writeAgain gets, unless less
// than that is left.
const attemptMin = 500 * time.Millisecond

// writeAgain makes an idempotent write call until it gets an answer that
// tells the outcome or ctx ends (see ProduceBatchAs), and returns the number
// of attempts with the error.
func (c *Client) writeAgain(ctx context.Context, call func(ctx context.Context, p *peer.Peer) error) (int, error) {
	wait, sent := rewriteMin, false
	for attempt := 1; ; attempt++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok {
			if d := time.Until(dl) / 2; d >= attemptMin {
				actx, cancel = context.WithTimeout(ctx, d)
			}
		}
		var p peer.Peer
		actx, stop := c.watchLeader(actx)
		err := leaderMoved(actx, call(actx, &p))
		stop()
		cancel()
		if err == nil {
			return attempt, nil
		}
		if p.Addr != nil && !notAppended(err) {
			sent = true
		}
		if !outcomeUnknown(ctx, err) {
			if !sent {
				return attempt, &NotSentError{Err: err}
			}
			return attempt, err
		}
		if !c.waitToResend(ctx, &wait) {
			if !sent {
				return attempt, &NotSentError{Err: err}
			}
			return attempt, err
		}
	}
}

// outcomeUnknown reports whether a write that failed with err may be sent
// again: refused without being appended, or failed without an answer while
// ctx still runs (UNAVAILABLE, or an attempt's own deadline), unless the
// client has never reached a server (a *ConnectError: waiting would not
// help).
func outcomeUnknown(ctx context.Context, err error) bool {
	var ce *ConnectError
	if ctx.Err() != nil || errors.As(err, &ce) {
		return false // a client that never reached the cluster fails fast
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// Consume returns the record at off, read from a follower when one is ready.
// Reads are linearizable on every server: a record acknowledged before the
// call is returned (a follower that has not applied it yet waits for it), and
// OUT_OF_RANGE means off was not written when the call ran.
func (c *Client) Consume(ctx context.Context, off uint64) (*logv1.Record, error) {
	res, err := c.log.Consume(ctx, &logv1.ConsumeRequest{Offset: off}, waitReady)
	if err != nil {
		return nil, err
	}
	return res.Record, nil
}

// OffsetForTime returns the offset of the first retained record appended at
// or after t (by the leader's clock), read from a follower when one is
// ready: the lowest retained offset when every record is at least as recent,
// the next offset when none is, so reading from it gives the records from t
// on. Records written before times were stored count as older than any t. A
// record acknowledged before the call is taken into account on any server.
func (c *Client) OffsetForTime(ctx context.Context, t time.Time) (uint64, error) {
	ts := t.UnixNano()
	if t.IsZero() {
		ts = 0
	}
	res, err := c.log.GetOffsetForTime(ctx, &logv1.GetOffsetForTimeRequest{Timestamp: ts}, waitReady)
	if err != nil {
		return 0, err
	}
	return res.Offset, nil
}

// leaderWait bounds how long Offsets waits for the leader's connection.
const leaderWait = 5 * time.Second

// Offsets returns the log's range [lowest, next) as the leader knows it: what
// has been acknowledged to writers. When no leader answers within
// leaderWait (or half of what is left of ctx's deadline, when that is
// sooner) it returns a follower's range, which may lag.
func (c *Client) Offsets(ctx context.Context) (lowest, next uint64, err error) {
	// Within a shorter deadline the leader gets half of it, so a follower
	// can still answer when the leader cannot.
	wait := leaderWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)/2)
	}
	lctx, cancel := context.WithTimeout(requireLeader(ctx), wait)
	res, err := c.log.GetOffsets(lctx, &logv1.GetOffsetsRequest{}, waitReady)
	cancel()
	if err != nil && ctx.Err() == nil && status.Code(err) == codes.DeadlineExceeded {
		res, err = c.log.GetOffsets(ctx, &logv1.GetOffsetsRequest{}, waitReady)
	}
	if err != nil {
		return 0, 0, err
	}
	return res.LowestOffset, res.NextOffset, nil
}

// StateUnreachable is the State Servers gives a server it could not ask.
const StateUnreachable = "unreachable"

// Servers returns the cluster's servers as one of them knows them, each with
// what it reports only of itself (state, next and lowest offset, durability,
// RSS and disk bytes: copySelf): Servers asks
// every other server directly, in parallel. A server that does not answer at
// its address within askTimeout (and ctx), or where another server answers,
// has State StateUnreachable.
func (c *Client) Servers(ctx context.Context) ([]*logv1.Server, error) {
	res, err := c.log.GetServers(ctx, &logv1.GetServersRequest{}, waitReady)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for _, s := range res.Servers {
		if self := res.Self; self != nil && s.Id == self.Id {
			copySelf(s, self)
			continue
		}
		wg.Go(func() { c.askSelf(ctx, s) })
	}
	wg.Wait()
	return res.Servers, nil
}

// askSelf sets what s reports of itself (copySelf) to what the server at
// s.RpcAddr reports, if it is s.
func (c *Client) askSelf(ctx context.Context, s *logv1.Server) {
	copySelf(s, &logv1.Server{State: StateUnreachable})
	conn, err := dialServer(s.RpcAddr, c.creds, c.opts...)
	if err != nil {
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	res, err := logv1.NewLogClient(conn).GetServers(ctx, &logv1.GetServersRequest{})
	if err == nil && res.Self.GetId() == s.Id {
		copySelf(s, res.Self)
	}
}

// copySelf copies to s what a server reports only of itself: its state,
// next and lowest offset, durability, RSS and disk bytes.
func copySelf(s, self *logv1.Server) {
	s.State, s.NextOffset, s.LowestOffset, s.Durability = self.State, self.NextOffset, self.LowestOffset, self.Durability
	s.RssBytes, s.DiskBytes = self.RssBytes, self.DiskBytes
}

// dialServer connects to the one server at addr, not through the resolver.
func dialServer(addr string, creds credentials.TransportCredentials, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
}

// ConnectTo returns a dial option for Dial that connects to to[addr]
// instead of addr, for every address in to; other addresses are dialed as
// they are. Servers are still verified against the host they are known by,
// so a cluster whose servers' addresses do not resolve where the client runs
// (containers on a private network, ports published on the client's host)
// can be reached through the addresses that do, as with curl --connect-to.
func ConnectTo(to map[string]string) grpc.DialOption {
	var d net.Dialer
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		if a, ok := to[addr]; ok {
			addr = a
		}
		return d.DialContext(ctx, "tcp", addr)
	})
}

// Read calls fn for each record from `from` on, in order, using
// ConsumeBatchStream. The record is fn's until fn returns: its memory holds
// a later record after that, so fn copies what it keeps (string(r.Value)). With follow it waits for new records until ctx ends;
// without it, it stops at the log's end (as of the call) or before `to`
// (to==0: no bound). If the server it reads from fails or the stream breaks
// (UNAVAILABLE), it resumes from the next offset on another server: no
// record lost, none repeated. It returns nil at the end, ctx.Err() when ctx
// ends, fn's error if fn fails, or the gRPC status error (e.g. OutOfRange)
// otherwise.
//
// Without follow, the end is the next offset Offsets reports when Read starts
// (the leader's); the stream follows up to it, so a lagging follower does not
// end the read early.
//
// A server that cannot answer does not hold Read up: while records are known
// to exist at the next offset (below the end, or below the leader's next
// offset, which a following Read asks for when its stream goes quiet), a
// stream that sends nothing for a quarter of the answer timeout
// (SetAnswerTimeout) is given up and the read resumes on another server; when
// no server sends the next record within the answer timeout, Read fails with
// DEADLINE_EXCEEDED.
func (c *Client) Read(ctx context.Context, from, to uint64, follow bool, fn func(*logv1.Record) error) error {
	return c.ReadBatches(ctx, from, to, follow, func(recs []*logv1.Record) error {
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadBatches is Read with fn called once for the records of each message a
// server sends (one or more, at consecutive offsets, none seen before), so
// that a caller can act once per batch (flush its output) rather than per
// record. recs are fn's until it returns, as in Read.
func (c *Client) ReadBatches(ctx context.Context, from, to uint64, follow bool, fn func([]*logv1.Record) error) error {
	wait := c.AnswerTimeout()
	w := &readWatch{stall: max(wait/4, minStall)}
	end := to
	if !follow {
		octx, cancel := context.WithTimeout(ctx, wait)
		_, next, err := c.Offsets(octx)
		cancel()
		if err != nil {
			return ctxErr(ctx, err)
		}
		switch {
		case from > next:
			// Past the end: the server says so (OUT_OF_RANGE).
			octx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			return c.readOnce(octx, from, to, false, fn)
		case end == 0 || next < end:
			end = next
		}
		w.known = next
	}
	off := from
	backoff := resumeMin
	w.progressAt = time.Now()
	for {
		if end != 0 && off >= end {
			return nil
		}
		// Records known to exist must arrive within wait of the last one:
		// the attempt is cancelled when none has for that long.
		actx, cancel := context.WithCancelCause(ctx)
		w.deadline = nil
		if off < w.known {
			w.deadline = time.AfterFunc(time.Until(w.progressAt.Add(wait)), func() { cancel(errNoAnswer) })
		}
		w.wait = wait
		start := off
		err := c.stream(avoiding(actx, w.avoid), &off, end, w, fn)
		if w.deadline != nil {
			w.deadline.Stop()
		}
		timedOut := errors.Is(context.Cause(actx), errNoAnswer)
		cancel(nil)
		if off > start {
			backoff = resumeMin
		}
		if err == nil {
			if end == 0 {
				// A following stream without a bound ended cleanly:
				// only a server that stops does that; resume.
				err = status.Error(codes.Unavailable, "stream ended")
			} else {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe fnError
		if errors.As(err, &fe) {
			return fe.err
		}
		var ce *ConnectError
		if errors.As(err, &ce) {
			return err // never reached the cluster: waiting would not help
		}
		switch {
		case timedOut && off == start:
			quiet := ""
			if len(w.avoid) > 0 {
				quiet = fmt.Sprintf(" (%s accepted the read and sent nothing)", strings.Join(w.avoid, ", "))
			}
			return status.Errorf(codes.DeadlineExceeded, "discovery: no server sent offset %d within %v%s", off, wait, quiet)
		case timedOut:
			// Records came, then none for the timeout: resume elsewhere.
		case status.Code(err) != codes.Unavailable:
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, resumeMax)
	}
}

// minStall is the least time a stream may stay quiet before Read looks for
// another server.
const minStall = 50 * time.Millisecond

// errNoAnswer is the cause of cancelling a read attempt when no record
// arrived within the answer timeout.
var errNoAnswer = errors.New("discovery: no answer within the timeout")

// readWatch is what one Read knows across its streams, to tell a quiet stream
// from one whose server cannot answer.
type readWatch struct {
	stall time.Duration // quiet time after which a stream is looked at
	known uint64        // the leader's next offset as last learned (0: not yet)
	avoid []string      // servers that went quiet while records were there
	// deadline, when set, cancels the current attempt unless a record
	// arrives within wait; each record pushes it back.
	deadline *time.Timer
	wait     time.Duration
	// progressAt is when the last record arrived (or the Read started).
	progressAt time.Time
}

// behind reports whether records at off are known to exist, asking the
// leader (within the stall time) when they are not known yet.
func (w *readWatch) behind(ctx context.Context, c *Client, off uint64) bool {
	if off < w.known {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, w.stall)
	defer cancel()
	if _, next, err := c.Offsets(ctx); err == nil {
		w.known = max(w.known, next)
	}
	return off < w.known
}

// fnError carries the error of Read's fn out of stream.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// readOnce runs one stream without follow and returns its result.
func (c *Client) readOnce(ctx context.Context, from, to uint64, follow bool, fn func([]*logv1.Record) error) error {
	off := from
	err := c.streamReq(ctx, &off, &logv1.ConsumeBatchRequest{Offset: from, EndOffset: to, Follow: follow}, nil, fn)
	var fe fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return ctxErr(ctx, err)
}

// stream reads with follow from *off up to end (0: no bound), advancing *off
// past each batch of records fn accepted. It returns nil when the stream ends cleanly.
func (c *Client) stream(ctx context.Context, off *uint64, end uint64, w *readWatch, fn func([]*logv1.Record) error) error {
	return c.streamReq(ctx, off, &logv1.ConsumeBatchRequest{Offset: *off, EndOffset: end, Follow: true}, w, fn)
}

// recvResult is one Recv of a stream.
type recvResult struct {
	res *batch
	err error
}

// streamReq runs one ConsumeBatchStream. With w, a stream that stays quiet
// for w.stall while records exist at *off is given up (UNAVAILABLE) and its
// server added to w.avoid.
func (c *Client) streamReq(ctx context.Context, off *uint64, req *logv1.ConsumeBatchRequest, w *readWatch, fn func([]*logv1.Record) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.log.ConsumeBatchStream(ctx, req, waitReady, decodeBatches)
	if err != nil {
		return err
	}
	// Recv runs on a goroutine of its own so a quiet stream can be timed;
	// it ends when the stream does or ctx is cancelled, and is joined. It
	// decodes into two batches in turn, each back in free once fn is done
	// with its records.
	free := make(chan *batch, 2)
	free <- new(batch)
	free <- new(batch)
	msgs := make(chan recvResult)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var b *batch
			select {
			case b = <-free:
			case <-ctx.Done():
				return
			}
			err := s.RecvMsg(b)
			select {
			case msgs <- recvResult{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		<-done
	}()
	var quiet <-chan time.Time
	var timer *time.Timer
	if w != nil {
		timer = time.NewTimer(w.stall)
		defer timer.Stop()
		quiet = timer.C
	}
	for {
		var r recvResult
		select {
		case r = <-msgs:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-quiet:
			if w.behind(ctx, c, *off) {
				addr := "a server"
				if p, ok := peer.FromContext(s.Context()); ok && p.Addr != nil {
					addr = p.Addr.String()
					if !slices.Contains(w.avoid, addr) {
						w.avoid = append(w.avoid, addr)
					}
				}
				return status.Errorf(codes.Unavailable, "discovery: %s sent nothing for %v while offset %d exists", addr, w.stall, *off)
			}
			timer.Reset(w.stall)
			continue
		}
		if r.err == io.EOF {
			return nil
		}
		if r.err != nil {
			return r.err
		}
		recs := r.res.recs
		for len(recs) > 0 && recs[0].Offset < *off {
			recs = recs[1:] // already delivered
		}
		// The records from *off on, in order; those before a gap are
		// delivered before the gap is reported.
		n := 0
		for n < len(recs) && recs[n].Offset == *off+uint64(n) {
			n++
		}
		if n > 0 {
			if err := fn(recs[:n:n]); err != nil {
				return fnError{err}
			}
			*off += uint64(n)
		}
		free <- r.res
		if n < len(recs) {
			return fmt.Errorf("discovery: record %d arrived where %d was expected", recs[n].Offset, *off)
		}
		if w != nil {
			w.progressAt = time.Now()
			timer.Reset(w.stall)
			if w.deadline != nil {
				w.deadline.Reset(w.wait)
			}
		}
	}
}

// ctxErr is ctx.Err() once ctx has ended, err otherwise.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (c *Client) recordUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var p peer.Peer
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
	if p.Addr != nil {
		c.served(method, p.Addr.String())
	}
	return err
}

func (c *Client) recordStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err == nil {
		if p, ok := peer.FromContext(s.Context()); ok {
			c.served(method, p.Addr.String())
		}
	}
	return s, err
}
