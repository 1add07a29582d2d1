package nodetest

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// FreeAddr returns a loopback address nothing listens on now, over TCP or
// UDP (Serf uses both), for something to be started on later.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
	t.Fatal("no free TCP and UDP port on 127.0.0.1")
	return ""
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
