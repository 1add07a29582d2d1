package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/serf/serf"
)

// TagRPCAddr is the tag that carries a member's RPC address (host:port). It is
// the address a Handler receives in Join.
const TagRPCAddr = "rpc_addr"

// Identity is what makes a member this one: its name, the RPC address it
// publishes, and where it logs. Its owner (the node) decides it; Config is
// how it gossips, so it can be built, validated and nested before an
// Identity exists.
type Identity struct {
	// Name names this node in the cluster. It must be unique and stable
	// across restarts: the node uses it as its Raft server ID.
	Name string
	// RPCAddr is the host:port clients and peers reach this node at,
	// published to every member as the tag TagRPCAddr.
	RPCAddr string
	// Logger receives this package's logs and those of Serf and memberlist.
	Logger *slog.Logger
}

// Validate reports the first field that is missing.
func (id Identity) Validate() error {
	switch {
	case id.Name == "":
		return errors.New("discovery: Identity.Name is empty")
	case id.RPCAddr == "":
		return errors.New("discovery: Identity.RPCAddr is empty")
	case id.Logger == nil:
		return errors.New("discovery: Identity.Logger is nil")
	}
	return nil
}

// Config configures how one node gossips. Start from DefaultConfig.
type Config struct {
	// BindAddr is the host:port Serf gossips on (TCP and UDP) and advertises
	// to the other members. Port 0 picks a free port. A host name is resolved
	// once, in New. An unspecified host (empty, 0.0.0.0 or [::]) listens on
	// every interface and advertises a private IP address of this host.
	BindAddr string
	// StartJoinAddrs are gossip addresses (host:port) of members to join when
	// starting. New does not wait for them: joining runs in the background,
	// one attempt over every address at once, and is retried until an
	// attempt reaches at least one of them, so members may start in any
	// order. Empty starts a cluster of one that others may join.
	StartJoinAddrs []string
	// RetryJoinInterval is the wait after the first failed join attempt. It
	// doubles after each further failure up to RetryJoinMaxInterval; each
	// wait is drawn at random from its upper half, so members started
	// together do not retry in step.
	RetryJoinInterval time.Duration
	// RetryJoinMaxInterval caps the wait between join attempts.
	RetryJoinMaxInterval time.Duration
	// EncryptKey, when set, encrypts and authenticates all gossip with
	// AES-GCM. It is 16, 24 or 32 bytes long (32 selects AES-256, the usual
	// choice) and the same on every member. A member without the key, or with
	// another key, cannot join. Nil gossips in plaintext.
	EncryptKey []byte

	// tuneSerf, when set, adjusts Serf's configuration just before it starts;
	// tests use it for fast failure detection.
	tuneSerf func(*serf.Config)
}

// DefaultConfig returns a configuration that gossips on 127.0.0.1:8401 in
// plaintext and retries joining after 0.5 s, doubling to 30 s.
func DefaultConfig() Config {
	return Config{
		BindAddr:             "127.0.0.1:8401",
		RetryJoinInterval:    500 * time.Millisecond,
		RetryJoinMaxInterval: 30 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.RetryJoinInterval <= 0 || c.RetryJoinMaxInterval < c.RetryJoinInterval:
		return fmt.Errorf("discovery: RetryJoinInterval %v must be positive and at most RetryJoinMaxInterval %v", c.RetryJoinInterval, c.RetryJoinMaxInterval)
	}
	switch len(c.EncryptKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("discovery: EncryptKey is %d bytes; want 16, 24 or 32", len(c.EncryptKey))
	}
	if _, _, err := splitAddr(c.BindAddr); err != nil {
		return fmt.Errorf("discovery: BindAddr: %w", err)
	}
	for _, a := range c.StartJoinAddrs {
		if _, _, err := splitAddr(a); err != nil {
			return fmt.Errorf("discovery: StartJoinAddrs: %w", err)
		}
	}
	return nil
}

// splitAddr splits host:port and checks the port is a number from 0 to 65535.
func splitAddr(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("address %q: bad port %q", addr, p)
	}
	return host, port, nil
}
