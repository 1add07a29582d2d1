package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
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
}

var _ resolver.Builder = (*resolverBuilder)(nil)

// Scheme returns Scheme.
func (b *resolverBuilder) Scheme() string { return Scheme }

// Build starts a resolver that asks the seeds, then the servers it learned
// of, for GetServers.
func (b *resolverBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &clusterResolver{
		cc:       cc,
		seeds:    slices.Clone(b.seeds),
		creds:    credentials.NewTLS(b.tlsConf),
		interval: b.interval,
		opts:     b.opts,
		now:      make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
	}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// clusterResolver keeps a ClientConn's addresses up to date with the
// cluster's servers: it asks one server at a time for GetServers over its own
// connection, at start, on ResolveNow and every interval.
//
// One goroutine (run) owns every field but now, ctx, cancel and wg; Close
// stops it and waits for it.
type clusterResolver struct {
	cc       resolver.ClientConn
	seeds    []string
	creds    credentials.TransportCredentials
	interval time.Duration
	opts     []grpc.DialOption

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
		// Until an answer names a leader, writes wait: ask again soon,
		// backing off up to the interval.
		wait := r.interval
		if r.resolve() {
			retry = 0
		} else {
			retry = min(max(2*retry, 50*time.Millisecond), r.interval)
			wait = retry
		}
		t.Reset(wait)
	}
}

// resolve asks the servers it knows, then the seeds, until one answers with
// a leader, and hands the answer to gRPC. An answer without a leader is used
// only if no server knows one. It reports whether the answer named a leader.
func (r *clusterResolver) resolve() bool {
	var (
		best    []*logv1.Server
		lastErr error
	)
	candidates := append(slices.Clone(r.known), r.seeds...)
	if r.addr != "" {
		candidates = append([]string{r.addr}, candidates...)
	}
	asked := map[string]bool{}
	for _, addr := range candidates {
		if asked[addr] || r.ctx.Err() != nil {
			continue
		}
		asked[addr] = true
		servers, err := r.ask(addr)
		if err != nil {
			// Not %w: a status error reported to gRPC fails calls that
			// should wait for a server.
			lastErr = fmt.Errorf("discovery: GetServers from %s: %v", addr, err)
			continue
		}
		if best == nil || hasLeader(servers) {
			best = servers
		}
		if hasLeader(servers) {
			break
		}
	}
	if r.ctx.Err() != nil {
		return false
	}
	if best == nil {
		if lastErr == nil {
			lastErr = errors.New("discovery: no server to ask")
		}
		r.cc.ReportError(lastErr)
		return false
	}
	var addrs []resolver.Address
	r.known = r.known[:0]
	for _, s := range best {
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
	return hasLeader(best)
}

// ask calls GetServers on addr, reusing the connection if addr is the
// server asked last.
func (r *clusterResolver) ask(addr string) ([]*logv1.Server, error) {
	if r.addr != addr {
		r.closeConn()
		conn, err := dialServer(addr, r.creds, r.opts...)
		if err != nil {
			return nil, err
		}
		r.conn, r.addr = conn, addr
	}
	ctx, cancel := context.WithTimeout(r.ctx, askTimeout)
	defer cancel()
	res, err := logv1.NewLogClient(r.conn).GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		r.closeConn()
		return nil, err
	}
	return res.Servers, nil
}

func (r *clusterResolver) closeConn() {
	if r.conn != nil {
		_ = r.conn.Close()
		r.conn, r.addr = nil, ""
	}
}

func hasLeader(servers []*logv1.Server) bool {
	return slices.ContainsFunc(servers, func(s *logv1.Server) bool { return s.IsLeader })
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
