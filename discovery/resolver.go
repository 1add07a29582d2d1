package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// Scheme is the URI scheme of cluster targets: "proglog://host:port[,host:port...]".
const Scheme = "proglog"

const (
	// defaultRefreshInterval is how often a resolver asks for the servers
	// when nothing else makes it ask.
	defaultRefreshInterval = 5 * time.Second
	// askTimeout bounds one GetServers call made to one server directly
	// (the resolver's, and Client.Servers').
	askTimeout = 3 * time.Second
)

// leaderKey is the key of the address attribute that marks the leader. Its
// value is true on the leader's address and absent on the others.
type leaderKey struct{}

// isLeader reports whether a carries the leader attribute.
func isLeader(a resolver.Address) bool {
	v, _ := a.Attributes.Value(leaderKey{}).(bool)
	return v
}

// resolverBuilder builds the resolver of one Client's ClientConn; it is
// passed with grpc.WithResolvers and never registered globally.
type resolverBuilder struct {
	seeds    []string
	tlsConf  *tls.Config
	interval time.Duration
	opts     []grpc.DialOption // for its connections to one server
	reach    *reach            // the Client's, told how each resolve went
	now      chan struct{}     // a token asks the resolver to resolve at once
	// confirmed is the address of the last leader that answered for
	// itself that it leads; nil before one did.
	confirmed atomic.Pointer[string]
}

// leader returns the address of the last leader that answered for itself,
// "" before one did.
func (b *resolverBuilder) leader() string {
	if l := b.confirmed.Load(); l != nil {
		return *l
	}
	return ""
}

// resolveNow asks the resolver to ask the cluster again at once.
func (b *resolverBuilder) resolveNow() {
	select {
	case b.now <- struct{}{}:
	default:
	}
}

var _ resolver.Builder = (*resolverBuilder)(nil)

// Scheme returns Scheme.
func (b *resolverBuilder) Scheme() string { return Scheme }

// Build starts a resolver that asks the seeds, then the servers it learned
// of, for GetServers.
func (b *resolverBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &clusterResolver{
		cc:        cc,
		seeds:     slices.Clone(b.seeds),
		creds:     credentials.NewTLS(b.tlsConf),
		interval:  b.interval,
		opts:      b.opts,
		reach:     b.reach,
		now:       b.now,
		confirmed: &b.confirmed,
		ctx:       ctx,
		cancel:    cancel,
	}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// clusterResolver keeps a ClientConn's addresses up to date with the
// cluster's servers: it asks one server at a time for GetServers over its own
// connection (another as well when one is slow to answer: hedgeDelay), at
// start, on ResolveNow and every interval.
//
// One goroutine (run) owns every field but now, ctx, cancel and wg; Close
// stops it and waits for it.
type clusterResolver struct {
	cc       resolver.ClientConn
	seeds    []string
	creds    credentials.TransportCredentials
	interval time.Duration
	opts     []grpc.DialOption
	reach    *reach

	confirmed *atomic.Pointer[string] // the builder's

	known []string         // servers of the last answer, leader first
	addr  string           // address conn is connected to
	conn  *grpc.ClientConn // to addr; nil when none

	now    chan struct{} // a token asks run to resolve at once
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ resolver.Resolver = (*clusterResolver)(nil)

// ResolveNow asks for a refresh; gRPC calls it when a connection fails.
func (r *clusterResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// Close stops the resolver and waits for its goroutine.
func (r *clusterResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

func (r *clusterResolver) run() {
	defer r.wg.Done()
	defer r.closeConn()
	t := time.NewTimer(0)
	defer t.Stop()
	var retry time.Duration
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.now:
		case <-t.C:
		}
		// Until the leader itself answers, writes wait (or go to a leader
		// that may be gone): ask again soon, backing off up to
		// maxUnconfirmedWait, so a new leader is found within that of its
		// election.
		wait := r.interval
		if r.resolve() {
			retry = 0
		} else {
			retry = min(max(2*retry, 50*time.Millisecond), maxUnconfirmedWait, r.interval)
			wait = retry
		}
		t.Reset(wait)
	}
}

// maxUnconfirmedWait bounds the wait between resolves while no leader has
// answered for itself (an election, or a cluster without a quorum).
const maxUnconfirmedWait = 400 * time.Millisecond

// hedgeDelay is how long resolve waits for a server's answer before it asks
// the next candidate as well, so a server that accepts and never answers
// delays finding the cluster by this much, not by askTimeout; once every
// server was asked and one answered, it is also how long the silent ones
// get.
const hedgeDelay = 250 * time.Millisecond

// answer is one server's GetServers answer, with the connection it came over.
type answer struct {
	addr    string
	conn    *grpc.ClientConn // nil when the dial failed
	servers []*logv1.Server
	err     error
}

// resolve asks the servers it knows, then the seeds, until the leader
// answers for itself, and hands the answer to gRPC. It asks one server at a
// time, but when one has not answered within hedgeDelay it asks the next as
// well; an answer that names another server as leader has that server asked
// next. It uses the first answer that names a leader, unless a server answers
// for itself that it leads and that answer names another (a follower may
// name a dead leader for a while), else one without a leader. It reports
// whether the leader it uses answered for itself: when not, the caller asks
// again soon.
func (r *clusterResolver) resolve() bool {
	var candidates []string
	if r.addr != "" {
		candidates = append(candidates, r.addr)
	}
	for _, a := range append(slices.Clone(r.known), r.seeds...) {
		if !slices.Contains(candidates, a) {
			candidates = append(candidates, a)
		}
	}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	answers := make(chan answer, len(candidates))
	var wg sync.WaitGroup
	asked := 0
	askNext := func() {
		addr := candidates[asked]
		asked++
		var conn *grpc.ClientConn
		if addr == r.addr {
			conn, r.conn, r.addr = r.conn, nil, "" // the asker owns it now
		}
		wg.Go(func() { answers <- ask(ctx, addr, conn, r.creds, r.opts...) })
	}
	hedge := time.NewTimer(hedgeDelay)
	defer hedge.Stop()
	var (
		keep    []answer // the answers, whose connections are kept or closed
		best    = -1     // index in keep of the answer to use
		lastErr error
		// The servers that did not answer, and why.
		failAddrs []string
		failErrs  []error
	)
	// confirmed: the leader the answer used names has answered for
	// itself that it leads.
	confirmed := false
	leads := func() bool { return confirmed }
	// askLeaderNext moves the leader an answer names, when not asked yet,
	// to the front of the candidates still to ask.
	askLeaderNext := func(a answer) {
		l := leaderOf(a.servers)
		if i := slices.Index(candidates, l); l != "" && i > asked {
			candidates = slices.Insert(slices.Delete(candidates, i, i+1), asked, l)
		} else if i < 0 && l != "" {
			candidates = slices.Insert(candidates, asked, l)
		}
	}
	askNext()
	for pending := 1; pending > 0; {
		select {
		case a := <-answers:
			pending--
			if a.err != nil {
				// Not %w: a status error reported to gRPC fails calls that
				// should wait for a server.
				lastErr = fmt.Errorf("discovery: GetServers from %s: %v", a.addr, a.err)
				failAddrs, failErrs = append(failAddrs, a.addr), append(failErrs, a.err)
			} else {
				keep = append(keep, a)
				l := leaderOf(a.servers)
				switch {
				case best < 0 || (l != "" && leaderOf(keep[best].servers) == ""):
					best = len(keep) - 1
				case l == a.addr && leaderOf(keep[best].servers) != l:
					best = len(keep) - 1 // a leader's own word beats another's
				}
				confirmed = confirmed || (l == a.addr && leaderOf(keep[best].servers) == l)
				askLeaderNext(a)
			}
			switch {
			case leads():
				cancel() // the others' answers are not needed
			case asked < len(candidates) && r.ctx.Err() == nil:
				askNext()
				pending++
				hedge.Reset(hedgeDelay)
			case best >= 0:
				hedge.Reset(hedgeDelay) // how long the silent ones get
			}
		case <-hedge.C:
			switch {
			case leads():
			case asked < len(candidates) && r.ctx.Err() == nil:
				askNext()
				pending++
				hedge.Reset(hedgeDelay)
			case best >= 0:
				// Every server was asked, some answered without a leader
				// confirming itself, and the rest are silent (a paused
				// leader, say): use what came, and the caller asks again
				// soon, rather than wait askTimeout for them.
				cancel()
			}
		}
	}
	wg.Wait()
	// Keep the connection of the answer used, for the next resolve.
	for i, a := range keep {
		if i == best {
			r.conn, r.addr = a.conn, a.addr
		} else {
			_ = a.conn.Close()
		}
	}
	if r.ctx.Err() != nil {
		return false
	}
	if best < 0 {
		r.reach.round(time.Now(), failAddrs, failErrs)
		if lastErr == nil {
			lastErr = errors.New("discovery: no server to ask")
		}
		r.cc.ReportError(lastErr)
		return false
	}
	r.reach.contact()
	var addrs []resolver.Address
	r.known = r.known[:0]
	servers := keep[best].servers
	for _, s := range servers {
		if s.GetRpcAddr() == "" {
			continue
		}
		a := resolver.Address{Addr: s.RpcAddr, ServerName: hostOf(s.RpcAddr)}
		if s.IsLeader {
			a.Attributes = attributes.New(leaderKey{}, true)
			r.known = append([]string{s.RpcAddr}, r.known...)
		} else {
			r.known = append(r.known, s.RpcAddr)
		}
		addrs = append(addrs, a)
	}
	if err := r.cc.UpdateState(resolver.State{Addresses: addrs}); err != nil {
		// The balancer refused the state (no addresses); gRPC calls
		// ResolveNow again.
		return false
	}
	if leads() {
		l := leaderOf(servers)
		r.confirmed.Store(&l)
	}
	return leads()
}

// ask calls GetServers on addr within askTimeout, over conn when it is not
// nil (a connection to addr kept from before), else over a new one. The
// connection comes back with the answer, and is closed when the call failed.
func ask(ctx context.Context, addr string, conn *grpc.ClientConn, creds credentials.TransportCredentials, opts ...grpc.DialOption) answer {
	a := answer{addr: addr, conn: conn}
	if a.conn == nil {
		if a.conn, a.err = dialServer(addr, creds, opts...); a.err != nil {
			a.conn = nil
			return a
		}
	}
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	res, err := logv1.NewLogClient(a.conn).GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		_ = a.conn.Close()
		a.conn, a.err = nil, err
		return a
	}
	a.servers = res.Servers
	return a
}

func (r *clusterResolver) closeConn() {
	if r.conn != nil {
		_ = r.conn.Close()
		r.conn, r.addr = nil, ""
	}
}

// leaderOf is the address of the server servers name leader, "" for none.
func leaderOf(servers []*logv1.Server) string {
	for _, s := range servers {
		if s.IsLeader {
			return s.RpcAddr
		}
	}
	return ""
}

// hostOf is addr's host: each server's certificate is checked against the
// host it is dialed at, as a direct dial would.
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
