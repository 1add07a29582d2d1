package node

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
)

// reloader is what Reload loads again: *certs.Reloader, *authz.Authorizer.
type reloader interface {
	Reload() (changes []string, err error)
}

// Reload loads the node's certificates and CAs (Config.ServerCerts and
// PeerCerts) and its ACL (an Authorizer with a Reload method) again from
// their files. Each is taken up whole or not at all: one whose new files do
// not load, or do not fit together, stays as it was. Every change is logged
// at info level and every refusal at error level, and the refusals are
// returned joined.
//
// From then on every call is authorized by the new policy, on connections
// old and new, and every TLS handshake (gRPC, Raft, forwarding, in and out)
// uses the new certificates and CAs; connections already made are not
// touched. Reload is safe to call at any time, also concurrently.
func (n *Node) Reload() error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	var errs []error
	reload := func(what string, r reloader) bool {
		changes, err := r.Reload()
		if err != nil {
			n.logger.Error("reload refused; what was loaded before stays in force", "what", what, "err", err)
			errs = append(errs, fmt.Errorf("node: reload %s: %w", what, err))
			return false
		}
		for _, c := range changes {
			n.logger.Info("reloaded", "what", what, "change", c)
		}
		if len(changes) == 0 {
			n.logger.Info("reloaded, nothing changed", "what", what)
		}
		return true
	}
	if n.conf.ServerCerts != nil {
		reload("server TLS", n.conf.ServerCerts)
	}
	if n.conf.PeerCerts != nil && reload("peer TLS", n.conf.PeerCerts) {
		// The dialing side's CAs are fixed in a tls.Config: take a new one.
		c := n.conf.PeerCerts.PeerConfig()
		n.peerTLS.Store(c)
		n.stream.SetClientTLS(c)
	}
	if r, ok := n.conf.Authorizer.(reloader); ok {
		reload("ACL", r)
	}
	return errors.Join(errs...)
}

// peerCreds are the transport credentials of the connections a follower
// forwards over: each handshake, the first and every reconnection, uses the
// peer configuration in force (see Reload).
type peerCreds struct{ n *Node }

var _ credentials.TransportCredentials = peerCreds{}

func (p peerCreds) tls() credentials.TransportCredentials {
	return credentials.NewTLS(p.n.peerTLS.Load())
}

func (p peerCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return p.tls().ClientHandshake(ctx, authority, conn)
}

func (p peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return p.tls().ServerHandshake(conn)
}

func (p peerCreds) Info() credentials.ProtocolInfo { return p.tls().Info() }

func (p peerCreds) Clone() credentials.TransportCredentials { return p }

// OverrideServerName is deprecated in gRPC and unused here.
func (p peerCreds) OverrideServerName(string) error {
	return errors.New("node: peer credentials: OverrideServerName is not supported")
}
