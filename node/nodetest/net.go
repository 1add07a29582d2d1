package nodetest

import (
	"crypto/tls"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// FreeAddr returns a loopback address nothing listens on now (see
// FreePort), for something to be started on later.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// FreePort returns a loopback port nothing listens on now over TCP or UDP
// (Serf uses both). It lies below the range the system takes the local
// ports of outgoing connections from, so that while a server is stopped no
// client connection can take its port and keep it from starting again.
func FreePort(t testing.TB) int {
	t.Helper()
	low := 32768 // Linux's default start of the range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no free TCP and UDP port on 127.0.0.1 below the ephemeral range")
	return 0
}

// Listen listens on a free loopback port until the test ends (Serve
// closes the listener with its server).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Serve serves srv, a stand-in for a node, on ln with TLS configuration
// conf until the test ends or stop is called: stop stops the server (cutting
// off calls in flight) and joins its goroutine; it may be called more than
// once. Serve calls EnsureDeadline.
func Serve(t testing.TB, ln net.Listener, srv logv1.LogServer, conf *tls.Config) (stop func()) {
	t.Helper()
	EnsureDeadline(t)
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(conf)))
	logv1.RegisterLogServer(s, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	stop = sync.OnceFunc(func() {
		s.Stop()
		<-done
	})
	t.Cleanup(stop)
	return stop
}
