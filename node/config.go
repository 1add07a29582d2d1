package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// Authorizer decides whether a subject (a client certificate's common name)
// may take an action ("produce", "consume") on an object. It returns nil to
// allow, an error wrapping authz.ErrPermissionDenied to deny, and any other
// error when the decision could not be made (which also denies).
// *authz.Authorizer implements it. It is called from many goroutines at once.
type Authorizer interface {
	Authorize(subject, object, action string) error
}

var _ Authorizer = (*authz.Authorizer)(nil)

// Config configures one node. Start from DefaultConfig.
type Config struct {
	// DataDir holds the node's replica (raft/, snapshots/, log/, scratch/).
	DataDir string
	// NodeID names the node in the Raft configuration; unique in the cluster
	// and stable across restarts.
	NodeID string
	// RPCAddr is the host:port the node listens on for both gRPC and Raft.
	// Port 0 picks a free port; Addr reports the one bound.
	RPCAddr string
	// AdvertiseAddr is the host:port peers and clients dial to reach this
	// node; Raft stores it in the cluster configuration and GetServers
	// reports it. Empty means the address the listener is bound to, which
	// then must be a routable address (not 0.0.0.0 or ::): New fails
	// otherwise.
	AdvertiseAddr string
	// Bootstrap makes a new single-voter cluster when DataDir holds no Raft
	// state yet; see replica.Identity.Bootstrap.
	Bootstrap bool

	// ServerTLS is the gRPC side's TLS configuration; it should require and
	// verify client certificates (certs.ServerTLSConfig). Required unless
	// ServerCerts is set.
	ServerTLS *tls.Config
	// PeerTLS secures both ends of Raft connections and the gRPC connections
	// a follower opens to forward writes to the leader (certs.PeerTLSConfig).
	// Required unless PeerCerts is set.
	PeerTLS *tls.Config
	// ServerCerts and PeerCerts take the place of ServerTLS and PeerTLS
	// (leave those nil): the node then uses their ServerConfig and
	// PeerConfig, and Reload loads their files again, so certificates and
	// CAs rotate without a restart.
	ServerCerts *certs.Reloader
	PeerCerts   *certs.Reloader
	// Authorizer authorizes every call of the log.v1 service. Required. If it
	// has a method Reload() ([]string, error), as *authz.Authorizer does,
	// Reload calls it.
	Authorizer Authorizer

	// Gossip configures Serf membership: members that join are added to the
	// cluster and members that leave for good are removed. The member is
	// this node: NodeID, the advertised address and Logger. An empty
	// Gossip.BindAddr runs the node without Serf; members are then added
	// with Join.
	Gossip discovery.Config
	// Replica tunes the replicated log and opens it: a raftfsm.Config
	// (Raft timing, entry and store settings). Required. The replica is
	// this node: DataDir, NodeID, Bootstrap, the node's port and Logger.
	Replica replica.Config

	// ConsumeBatchBytes is the largest record budget of one
	// ConsumeBatchStream message; a request asking for more (or for 0, the
	// default) gets this.
	ConsumeBatchBytes int
	// ProduceStreamWindow is how many ProduceStream requests a stream may
	// have read but not yet answered; reading stops while it is full.
	ProduceStreamWindow int
	// LeaveOnClose makes Close leave Serf first, so that the leader removes
	// this node from the Raft configuration: the node is stopped for good
	// (decommissioned). Off by default: Close just stops the node, peers see
	// it fail and it stays a voter, as a restart, a rolling restart or a
	// whole cluster stopped one node after another needs.
	LeaveOnClose bool
	// GracefulStopTimeout bounds how long Close waits for calls in flight
	// before cutting them off.
	GracefulStopTimeout time.Duration
	// RaftTimeout bounds connecting to a Raft peer and each Raft RPC.
	RaftTimeout time.Duration
	// MetricsAddr is the host:port of the HTTP endpoints: Prometheus
	// metrics on /metrics, liveness on /healthz and readiness on /readyz
	// (plain HTTP: they tell no records). Empty: none. Port 0 picks a free
	// port; MetricsAddr reports the one bound.
	MetricsAddr string

	// Logger receives every log of the node: its own, the replica's, Raft's,
	// the local log's and Serf's, each with a node attribute.
	Logger *slog.Logger
}

// DefaultConfig returns settings for a LAN cluster. The identity, addresses,
// TLS configurations, Authorizer and Replica are left for the caller.
func DefaultConfig() Config {
	return Config{
		ConsumeBatchBytes:   1 << 20,
		ProduceStreamWindow: 1024,
		GracefulStopTimeout: 10 * time.Second,
		RaftTimeout:         10 * time.Second,
		Logger:              slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("node: DataDir is empty")
	case c.NodeID == "":
		return errors.New("node: NodeID is empty")
	case c.RPCAddr == "":
		return errors.New("node: RPCAddr is empty")
	case c.ServerTLS == nil && c.ServerCerts == nil:
		return errors.New("node: ServerTLS and ServerCerts are nil: the gRPC API is never served in plaintext")
	case c.PeerTLS == nil && c.PeerCerts == nil:
		return errors.New("node: PeerTLS and PeerCerts are nil: Raft is never spoken in plaintext")
	case c.ServerTLS != nil && c.ServerCerts != nil, c.PeerTLS != nil && c.PeerCerts != nil:
		return errors.New("node: set ServerTLS or ServerCerts, and PeerTLS or PeerCerts, not both")
	case c.Authorizer == nil:
		return errors.New("node: Authorizer is nil: nothing falls back to open access")
	case c.Replica == nil:
		return errors.New("node: Replica is nil: give the replica's configuration (raftfsm.DefaultConfig())")
	case c.Logger == nil:
		return errors.New("node: Logger is nil")
	case c.ConsumeBatchBytes <= 0:
		return fmt.Errorf("node: ConsumeBatchBytes %d must be positive", c.ConsumeBatchBytes)
	case c.ProduceStreamWindow <= 0:
		return fmt.Errorf("node: ProduceStreamWindow %d must be positive", c.ProduceStreamWindow)
	case c.GracefulStopTimeout <= 0 || c.RaftTimeout <= 0:
		return errors.New("node: GracefulStopTimeout and RaftTimeout must be positive")
	}
	if _, _, err := net.SplitHostPort(c.RPCAddr); err != nil {
		return fmt.Errorf("node: RPCAddr %q: %w", c.RPCAddr, err)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("node: MetricsAddr %q: %w", c.MetricsAddr, err)
		}
	}
	if c.AdvertiseAddr != "" {
		if err := checkAdvertise(c.AdvertiseAddr); err != nil {
			return err
		}
	}
	if c.Gossip.BindAddr != "" {
		if err := c.Gossip.Validate(); err != nil {
			return fmt.Errorf("node: Gossip: %w", err)
		}
	}
	if err := c.Replica.Validate(); err != nil {
		return fmt.Errorf("node: Replica: %w", err)
	}
	return nil
}

// checkAdvertise reports an address peers could not dial.
func checkAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("node: advertise address %q: %w", addr, err)
	}
	if host == "" || port == "" || port == "0" {
		return fmt.Errorf("node: advertise address %q needs a host and a port", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("node: advertise address %q is not routable; set AdvertiseAddr", addr)
	}
	return nil
}

// replicaIdentity is the replica this node is, reached over t.
func (c Config) replicaIdentity(t raft.Transport, onSync func(time.Duration, error)) replica.Identity {
	return replica.Identity{Dir: c.DataDir, NodeID: c.NodeID, Bootstrap: c.Bootstrap, Transport: t, Logger: c.Logger, OnSync: onSync}
}

// memberIdentity is the Serf member this node is, reached at advertise.
func (c Config) memberIdentity(advertise string) discovery.Identity {
	return discovery.Identity{Name: c.NodeID, RPCAddr: advertise, Logger: c.Logger.With("node", c.NodeID)}
}
