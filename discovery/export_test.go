package discovery

import (
	"crypto/tls"
	"time"

	"google.golang.org/grpc"
)

// DialForTest is Dial with the resolver's refresh interval and a hook told
// the address that served each call.
func DialForTest(target string, tlsConf *tls.Config, refresh time.Duration, served func(method, addr string), opts ...grpc.DialOption) (*Client, error) {
	return dial(target, tlsConf, refresh, served, opts...)
}

// RequireLeader marks ctx so that reads made with it go to the leader.
var RequireLeader = requireLeader
