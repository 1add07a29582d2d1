package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
	"github.com/proglogctl/proglogctl/raftfsm/transport"
)

// Node is one running member of the cluster: the replicated log, Raft and the
// gRPC API on one TCP port.
//
// New starts the mux's accept loop (owned by the Mux), the gRPC server's
// Serve, the health watcher, and with Config.MetricsAddr the HTTP server of
// /metrics, /healthz and /readyz, and with an age limit on retention its
// ticker; stream handlers start helpers of their own. All are tracked by wg
// (the Mux by itself) and joined by Close.
// fwdMu guards the forwarding connection, reloadMu serializes Reload, and
// peerTLS (the configuration peers are dialed with) is swapped atomically by
// Reload. Everything else is set by New and read-only afterwards.
type Node struct {
	conf      Config
	logger    *slog.Logger
	advertise string
	mux       *transport.Mux
	stream    *transport.StreamLayer
	log       replica.Log
	peerTLS   atomic.Pointer[tls.Config]
	reloadMu  sync.Mutex
	grpc      *grpc.Server
	health    *health.Server
	members   *discovery.Membership // nil without Serf
	metrics   *metrics
	resources resources
	http      *http.Server // nil without Config.MetricsAddr
	httpLn    net.Listener // nil without Config.MetricsAddr
	// ready is what the health watcher last published; nil before it ran.
	ready atomic.Pointer[readiness]

	// stopCtx is cancelled when Close starts: streams end, no new work
	// starts; stopping is its Done channel.
	stopCtx  context.Context
	stop     context.CancelFunc
	stopping <-chan struct{}
	wg       sync.WaitGroup

	fwdMu   sync.Mutex
	fwdAddr string           // the leader address fwdConn dials
	fwdConn *grpc.ClientConn // nil until the first forwarded write
	fwdDone bool             // set by Close; no new connection is made

	closeOnce sync.Once
	closeErr  error
}

// New listens on c.RPCAddr, opens the replica in c.DataDir, starts Raft and
// serves the gRPC API. A data directory it cannot use is an error wrapping
// ErrDataDir that says why and what to do; a start that fails leaves a
// directory that was missing or empty as it found it. It does not wait to join c.Gossip.StartJoinAddrs:
// Serf keeps trying in the background, and meanwhile a node with Raft state
// serves with the peers in its Raft configuration. The caller must Close the
// Node.
func New(c Config) (*Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// Everything that can be checked is checked before anything is made in
	// the data directory, and a start that fails later removes what it made
	// in a directory it found missing or empty: no half-made directory is
	// left for the next start to trip on.
	if c.Gossip.BindAddr != "" {
		if err := checkGossipAddr(c.Gossip.BindAddr); err != nil {
			return nil, err
		}
	}
	dir, err := checkDataDir(c.DataDir, c.Replica)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.RPCAddr)
	if err != nil {
		return nil, errors.Join(listenError("RPC address", c.RPCAddr, err), dir.undo())
	}
	advertise := c.AdvertiseAddr
	if advertise == "" {
		advertise = ln.Addr().String()
		if err := checkAdvertise(advertise); err != nil {
			ln.Close()
			return nil, errors.Join(err, dir.undo())
		}
	}
	if _, err := net.ResolveTCPAddr("tcp", advertise); err != nil {
		ln.Close()
		return nil, errors.Join(fmt.Errorf("node: advertise address %q: %w", advertise, err), dir.undo())
	}

	m := newMetrics()
	n := &Node{
		conf:      c,
		logger:    c.Logger.With("node", c.NodeID),
		advertise: advertise,
		metrics:   m,
		resources: resources{dir: c.DataDir},
	}
	n.stopCtx, n.stop = context.WithCancel(context.Background())
	n.stopping = n.stopCtx.Done()
	serverTLS, peerTLS := c.ServerTLS, c.PeerTLS
	if c.ServerCerts != nil {
		serverTLS = c.ServerCerts.ServerConfig()
	}
	if c.PeerCerts != nil {
		peerTLS = c.PeerCerts.PeerConfig()
	}
	n.peerTLS.Store(peerTLS)
	n.mux = transport.NewMux(ln, n.logger)
	n.stream = transport.NewStreamLayer(n.mux.Raft(), advertisedAddr(advertise), peerTLS, peerTLS)
	rt := transport.NewTransport(n.stream, c.RaftTimeout, n.logger)
	if n.log, err = c.Replica.Open(c.replicaIdentity(rt, m.observeSync)); err != nil {
		rt.Close()
		n.mux.Close()
		n.stop()
		return nil, errors.Join(fmt.Errorf("node: %w", err), dir.undo())
	}

	n.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(serverTLS)),
		grpc.ForceServerCodecV2(newServerCodec()),
		// Metrics first, so that refused calls are counted with their code.
		grpc.ChainUnaryInterceptor(m.grpc.UnaryServerInterceptor(), n.authorizeUnary, n.countUnary),
		grpc.ChainStreamInterceptor(m.reportStreamCalls(), n.authorizeStream, n.countStream),
		// A request carries at least one whole record.
		grpc.MaxRecvMsgSize(max(4<<20, c.Replica.MaxRecordBytes()+64<<10)),
		// Stop, after GracefulStop timed out, still waits for handlers, so
		// Close can join what they started.
		grpc.WaitForHandlers(true),
	)
	logv1.RegisterLogServer(n.grpc, &service{n: n})
	n.health = health.NewServer()
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	n.health.SetServingStatus(logv1.Log_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(n.grpc, n.health)
	reflection.Register(n.grpc)
	m.grpc.InitializeMetrics(n.grpc)
	m.reg.MustRegister(nodeCollector{n})

	// Serf starts before watchLeader reads n.members; its handler needs only
	// the replica.
	if c.Gossip.BindAddr != "" {
		if n.members, err = discovery.New(c.memberIdentity(advertise), c.Gossip, membership{n}); err != nil {
			return nil, errors.Join(fmt.Errorf("node: %w", err), n.Close(), dir.undo())
		}
	}
	n.wg.Add(2)
	go n.serve()
	go n.watchLeader()
	if err := n.startHTTP(); err != nil {
		n.Close()
		return nil, err
	}
	n.logger.Info("node started", "addr", advertise, "bootstrap", c.Bootstrap, "gossip_addr", c.Gossip.BindAddr, "metrics_addr", n.MetricsAddr())
	return n, nil
}

func (n *Node) serve() {
	defer n.wg.Done()
	if err := n.grpc.Serve(n.mux.Other()); err != nil {
		select {
		case <-n.stopping:
		default:
			n.logger.Error("gRPC server stopped", "err", err)
		}
	}
}

// watchLeader keeps the health status in step with the replica
// (computeReadiness): SERVING while this node knows a leader and has applied
// everything it knows is committed, NOT_SERVING otherwise, and at once while
// the replica cannot apply entries to its log (a full disk: it retries until
// it can). /readyz answers what it last published, so the two agree. When this node becomes
// leader it reconciles Raft's membership with Serf's.
func (n *Node) watchLeader() {
	defer n.wg.Done()
	prev := ""
	for {
		select {
		case <-n.stopping:
			return // the replica may be closing
		default:
		}
		id, _, changed := n.log.Leader()
		applyChanged, applyErr := n.log.ApplyStatus()
		r := n.computeReadiness()
		ready := r.ready
		if old := n.ready.Swap(&r); old != nil && old.ready != r.ready {
			n.logger.Debug("readiness changed", "ready", r.ready, "reason", r.reason)
		}
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready {
			st = healthpb.HealthCheckResponse_SERVING
		}
		n.health.SetServingStatus("", st)
		n.health.SetServingStatus(logv1.Log_ServiceDesc.ServiceName, st)
		if id == n.conf.NodeID && prev != id {
			n.reconcile()
		}
		prev = id
		// Catching up raises no event: while it lasts, look again shortly.
		// A failure to apply, and its end, do.
		var recheck <-chan time.Time
		if id != "" && !ready && applyErr == nil {
			recheck = time.After(100 * time.Millisecond)
		}
		select {
		case <-changed:
		case <-applyChanged:
		case <-recheck:
		case <-n.stopping:
			return
		}
	}
}

// Addr returns the address peers and clients dial to reach this node: the
// advertised address, or the bound one when none was configured.
func (n *Node) Addr() string { return n.advertise }

// Join adds the node id, reachable at addr (its RPC address: Raft shares the
// port), as a voter. It must be called on the leader; elsewhere it returns a
// *replica.NotLeaderError. It is idempotent.
func (n *Node) Join(id, addr string) error { return n.log.Join(id, addr) }

// Leave removes the node id from the cluster. It must be called on the
// leader; removing an unknown node is not an error.
func (n *Node) Leave(id string) error { return n.log.Leave(id) }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.log.IsLeader() }

// WaitForLeader blocks until this node knows a leader and returns its id and
// address.
func (n *Node) WaitForLeader(ctx context.Context) (id, addr string, err error) {
	return n.log.WaitForLeader(ctx)
}

// Close stops the node: streams are told to end and the gRPC server stops
// accepting and drains calls for at most GracefulStopTimeout before cutting
// them off; then the replica closes (a leader first hands leadership to
// another voter) and the port is released. It joins every goroutine the Node
// started. Close is idempotent; later calls return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		switch {
		case n.members != nil && n.conf.LeaveOnClose:
			// Peers see this node leave for good; the leader removes it.
			errs = append(errs, n.members.Leave())
		case n.members != nil:
			// Peers see this node fail; it stays a member.
			errs = append(errs, n.members.Close())
		}
		n.stop()
		errs = append(errs, n.stopHTTP())
		n.health.Shutdown()
		done := make(chan struct{})
		go func() {
			n.grpc.GracefulStop()
			close(done)
		}()
		t := time.NewTimer(n.conf.GracefulStopTimeout)
		select {
		case <-done:
			t.Stop()
		case <-t.C:
			n.logger.Warn("graceful stop timed out; cutting off calls in flight", "timeout", n.conf.GracefulStopTimeout)
			n.grpc.Stop()
			<-done
		}
		n.fwdMu.Lock()
		n.fwdDone = true
		if n.fwdConn != nil {
			errs = append(errs, n.fwdConn.Close())
			n.fwdConn = nil
		}
		n.fwdMu.Unlock()
		errs = append(errs, n.log.Close())
		errs = append(errs, n.mux.Close())
		n.wg.Wait()
		n.closeErr = errors.Join(errs...)
		n.logger.Info("node stopped")
	})
	return n.closeErr
}

// goTracked runs f on a goroutine Close joins.
func (n *Node) goTracked(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// advertisedAddr is the advertised address as configured. Raft knows a
// server by its transport's address string, which a bootstrapping node
// records as its own: a host name must stay a name there, as it is in the
// address joining nodes are added with, so that a server that comes back
// with a new IP address (a container restarted) is still found.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
