package discovery

import (
	"crypto/tls"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/serf/serf"
	"google.golang.org/grpc"
)

// DialForTest is Dial with the resolver's refresh interval and a hook told
// the address that served each call.
func DialForTest(target string, tlsConf *tls.Config, refresh time.Duration, served func(method, addr string), opts ...grpc.DialOption) (*Client, error) {
	return dial(target, tlsConf, refresh, served, opts...)
}

// SetRewriting makes c call f each time it starts waiting to send a refused
// write again.
func SetRewriting(c *Client, f func()) { c.rewriting = f }

// RequireLeader marks ctx so that reads made with it go to the leader.
var RequireLeader = requireLeader

// SetTuneSerf makes New call tune on Serf's configuration just before Serf
// starts.
func SetTuneSerf(c *Config, tune func(*serf.Config)) { c.tuneSerf = tune }

// LocalGossipAddr is the address Serf bound, port 0 resolved.
func (m *Membership) LocalGossipAddr() string {
	lm := m.serf.LocalMember()
	return net.JoinHostPort(lm.Addr.String(), strconv.Itoa(int(lm.Port)))
}

// NewLogLogger is newLogLogger, the *log.Logger Serf and memberlist write to.
var NewLogLogger = newLogLogger
