package transport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

// ioTimeout bounds every blocking test step so a bug fails the test instead of
// hanging it.
const ioTimeout = 10 * time.Second

// verifyNoLeaks checks for leaked goroutines after every other cleanup of t
// has run. Call it first.
// Goroutines already running (left to finish by earlier tests) are ignored.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// testLogWriter forwards log lines to t.Log until the test's cleanups begin,
// then drops them, so a goroutine that logs while shutting down cannot log
// after the test has finished.
type testLogWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func newTestLogWriter(t testing.TB) *testLogWriter {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
	})
	return w
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func newTestMux(t testing.TB, timeout time.Duration) (*Mux, *testLogWriter) {
	t.Helper()
	w := newTestLogWriter(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := newMux(ln, logger, timeout)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("mux close: %v", err)
		}
	})
	return m, w
}

func dialTCP(t testing.TB, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type acceptResult struct {
	c   net.Conn
	err error
}

// acceptAsync calls ln.Accept on a goroutine the test joins by receiving.
func acceptAsync(ln net.Listener) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := ln.Accept()
		ch <- acceptResult{c, err}
	}()
	return ch
}

// accept waits for ln.Accept and closes the connection in cleanup.
func accept(t testing.TB, ln net.Listener) net.Conn {
	t.Helper()
	select {
	case r := <-acceptAsync(ln):
		if r.err != nil {
			t.Fatalf("accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		if err := r.c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
			t.Fatal(err)
		}
		return r.c
	case <-time.After(ioTimeout):
		t.Fatalf("accept on %s listener: nothing routed within %v", ln.Addr(), ioTimeout)
		return nil
	}
}

func write(t testing.TB, c net.Conn, p []byte) {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectRead reads len(want) bytes from c and fails unless they are want.
func expectRead(t testing.TB, c net.Conn, want string) {
	t.Helper()
	p := make([]byte, len(want))
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatalf("read %d bytes: %v", len(want), err)
	}
	if string(p) != want {
		t.Fatalf("read %q, want %q", p, want)
	}
}

func TestMuxRoutesByFirstByte(t *testing.T) {
	const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	tests := []struct {
		name     string
		send     []byte
		wantRaft bool
		want     []byte // what the accepted side reads
	}{
		{"raft marker is stripped", append([]byte{RaftRPC}, "append entries"...), true, []byte("append entries")},
		{"http2 preface is intact", []byte(h2Preface + "frames"), false, []byte(h2Preface + "frames")},
		{"tls client hello is intact", []byte{0x16, 0x03, 0x01, 0x00, 0x05}, false, []byte{0x16, 0x03, 0x01, 0x00, 0x05}},
		{"single non-marker byte", []byte{'x'}, false, []byte{'x'}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			m, _ := newTestMux(t, routeTimeout)
			ln := m.Other()
			if tc.wantRaft {
				ln = m.Raft()
			}
			c := dialTCP(t, ln.Addr())
			write(t, c, tc.send)
			s := accept(t, ln)
			expectRead(t, s, string(tc.want))
			// The connection works both ways after routing.
			write(t, s, []byte("ok"))
			expectRead(t, c, "ok")
		})
	}
}

// A peer that sends only the marker and waits for a reply must be routed on
// that one byte; a matcher that reads ahead would hang here.
func TestMuxRoutesMarkerAlone(t *testing.T) {
	verifyNoLeaks(t)
	m, _ := newTestMux(t, routeTimeout)
	c := dialTCP(t, m.Raft().Addr())
	write(t, c, []byte{RaftRPC})

	s := accept(t, m.Raft())
	write(t, s, []byte("pong"))
	expectRead(t, c, "pong")
}

func TestMuxSilentClientDoesNotBlockOthers(t *testing.T) {
	verifyNoLeaks(t)
	m, _ := newTestMux(t, routeTimeout)
	dialTCP(t, m.Raft().Addr()) // connects first, never sends; closed in cleanup

	c := dialTCP(t, m.Raft().Addr())
	write(t, c, []byte{RaftRPC, 'h', 'i'})
	s := accept(t, m.Raft())
	expectRead(t, s, "hi")
}

func TestMuxClosesSilentClientAfterTimeout(t *testing.T) {
	verifyNoLeaks(t)
	m, _ := newTestMux(t, 50*time.Millisecond)
	silent := dialTCP(t, m.Raft().Addr())
	// The mux closes the connection after its read deadline: the client sees
	// EOF (or a reset), long before its own ioTimeout deadline.
	_, err := silent.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read from silent client: err = %v, want the mux to close the connection", err)
	}
}

func TestMuxClose(t *testing.T) {
	verifyNoLeaks(t)
	m, _ := newTestMux(t, routeTimeout)

	raftAccept := acceptAsync(m.Raft())
	otherAccept := acceptAsync(m.Other())
	// A connection still being routed and one routed but never accepted are
	// closed by Close, which must not wait for them.
	silent := dialTCP(t, m.Raft().Addr())
	routed := dialTCP(t, m.Raft().Addr())
	write(t, routed, []byte{'P'})

	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for name, ch := range map[string]<-chan acceptResult{"raft": raftAccept, "other": otherAccept} {
		r := <-ch
		if r.err == nil {
			// The routed connection may have reached Other before Close.
			r.c.Close()
			continue
		}
		if !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("%s accept after close: err = %v, want net.ErrClosed", name, r.err)
		}
	}
	for name, ln := range map[string]net.Listener{"raft": m.Raft(), "other": m.Other()} {
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s accept after close: err = %v, want net.ErrClosed", name, err)
		}
		if ln.Addr() != m.ln.Addr() {
			t.Errorf("%s addr = %v, want %v", name, ln.Addr(), m.ln.Addr())
		}
	}
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("pending connection still open after close")
	}
}

func TestMuxChildCloseLeavesOtherChildServing(t *testing.T) {
	verifyNoLeaks(t)
	m, _ := newTestMux(t, routeTimeout)
	if err := m.Raft().Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Raft().Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Raft().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("raft accept after its close: err = %v, want net.ErrClosed", err)
	}

	// Raft traffic is now refused: the connection is closed, not held.
	r := dialTCP(t, m.Raft().Addr())
	write(t, r, []byte{RaftRPC})
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Fatal("raft connection to a closed raft listener was not closed")
	}

	c := dialTCP(t, m.Other().Addr())
	write(t, c, []byte("PRI"))
	s := accept(t, m.Other())
	expectRead(t, s, "PRI")
}

func TestMuxStopsWhenListenerClosedUnderIt(t *testing.T) {
	verifyNoLeaks(t)
	m, _ := newTestMux(t, routeTimeout)
	raftAccept := acceptAsync(m.Raft())
	m.ln.Close()
	select {
	case r := <-raftAccept:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("raft accept: err = %v, want net.ErrClosed", r.err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("raft accept still blocked after the shared listener closed")
	}
}

// testPKI is an in-process CA with a node certificate (server and client auth,
// SANs 127.0.0.1 and localhost) and a client-only certificate.
type testPKI struct {
	pool       *x509.CertPool
	node       tls.Certificate
	clientOnly tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "raftfsm test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, cn string, eku ...x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  eku,
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		pool:       pool,
		node:       issue(2, "node", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth),
		clientOnly: issue(3, "client", x509.ExtKeyUsageClientAuth),
	}
}

// serverConfig requires a client certificate from the CA and, as peers must,
// rejects one that is not also valid for server auth: a certificate issued to
// a client may not speak Raft.
func (p *testPKI) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.node},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no peer certificate")
			}
			leaf := cs.PeerCertificates[0]
			if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
				return fmt.Errorf("peer certificate %q lacks server auth usage: not a raft peer", leaf.Subject.CommonName)
			}
			return nil
		},
	}
}

func (p *testPKI) clientConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      p.pool,
	}
}

// newTestTransport serves a raft.NetworkTransport on a Mux over a fresh
// 127.0.0.1 listener.
func newTestTransport(t testing.TB, w io.Writer, serverTLS, clientTLS *tls.Config) (*raft.NetworkTransport, *Mux) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, slog.New(slog.NewTextHandler(w, nil)))
	stream := NewStreamLayer(m.Raft(), ln.Addr(), serverTLS, clientTLS)
	trans := raft.NewNetworkTransport(stream, 3, ioTimeout, w)
	t.Cleanup(func() {
		// CloseStreams closes pooled outbound connections, which ends the
		// peer's connection handlers; Close stops the listen loop.
		trans.CloseStreams()
		trans.Close()
		if err := m.Close(); err != nil {
			t.Errorf("mux close: %v", err)
		}
	})
	return trans, m
}

// serveAppendEntries answers every AppendEntries RPC on trans with success,
// echoing the term and the last entry's index, and passes each request on.
func serveAppendEntries(t testing.TB, trans raft.Transport) <-chan *raft.AppendEntriesRequest {
	t.Helper()
	reqs := make(chan *raft.AppendEntriesRequest, 16)
	answerAppendEntries(t, trans, func(req *raft.AppendEntriesRequest) *raft.AppendEntriesResponse {
		resp := &raft.AppendEntriesResponse{Term: req.Term, Success: true}
		if n := len(req.Entries); n > 0 {
			resp.LastLog = req.Entries[n-1].Index
		}
		select {
		case reqs <- req:
		default:
		}
		return resp
	})
	return reqs
}

// answerAppendEntries answers every AppendEntries RPC on trans with what
// answer returns for it, and any other RPC with an error, from a goroutine
// that stops when the test ends.
func answerAppendEntries(t testing.TB, trans raft.Transport, answer func(*raft.AppendEntriesRequest) *raft.AppendEntriesResponse) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case rpc := <-trans.Consumer():
				req, ok := rpc.Command.(*raft.AppendEntriesRequest)
				if !ok {
					rpc.Respond(nil, fmt.Errorf("unexpected command %T", rpc.Command))
					continue
				}
				rpc.Respond(answer(req), nil)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}

func appendEntriesRequest(from raft.Transport) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{
			ProtocolVersion: raft.ProtocolVersionMax,
			ID:              []byte("node-1"),
			Addr:            []byte(from.LocalAddr()),
		},
		Term:              7,
		PrevLogEntry:      41,
		PrevLogTerm:       6,
		LeaderCommitIndex: 41,
		Entries: []*raft.Log{
			{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("record batch 42")},
			{Index: 43, Term: 7, Type: raft.LogCommand, Data: []byte("record batch 43")},
		},
	}
}

func TestStreamLayerAppendEntries(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name      string
		serverTLS *tls.Config // of the receiving node
		clientTLS *tls.Config // of the sending node
		host      string      // host the sender dials; the receiver listens on 127.0.0.1
		wantErr   string      // regexp matching the sender's error; "" for success
	}{
		{name: "plaintext", host: "127.0.0.1"},
		{name: "mutual TLS", serverTLS: pki.serverConfig(), clientTLS: pki.clientConfig(pki.node), host: "127.0.0.1"},
		{name: "mutual TLS to localhost", serverTLS: pki.serverConfig(), clientTLS: pki.clientConfig(pki.node), host: "localhost"},
		{name: "client-only certificate is refused", serverTLS: pki.serverConfig(), clientTLS: pki.clientConfig(pki.clientOnly), host: "127.0.0.1", wantErr: "bad certificate"},
		{name: "no certificate is refused", serverTLS: pki.serverConfig(), clientTLS: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pki.pool}, host: "127.0.0.1", wantErr: "certificate required"},
		{name: "plaintext dialer against TLS is refused", serverTLS: pki.serverConfig(), host: "127.0.0.1", wantErr: "EOF|connection reset"},
		{name: "TLS dialer against plaintext is refused", clientTLS: pki.clientConfig(pki.node), host: "127.0.0.1", wantErr: "tls handshake"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			w := newTestLogWriter(t)
			var sentServerName string
			if tc.clientTLS != nil {
				sentServerName = tc.clientTLS.ServerName
			}
			trans1, _ := newTestTransport(t, w, pki.serverConfig(), tc.clientTLS)
			trans2, _ := newTestTransport(t, w, tc.serverTLS, nil)
			reqs := serveAppendEntries(t, trans2)

			_, port, err := net.SplitHostPort(string(trans2.LocalAddr()))
			if err != nil {
				t.Fatal(err)
			}
			target := raft.ServerAddress(net.JoinHostPort(tc.host, port))
			req := appendEntriesRequest(trans1)
			var resp raft.AppendEntriesResponse
			err = trans1.AppendEntries("node-2", target, req, &resp)

			if tc.clientTLS != nil && tc.clientTLS.ServerName != sentServerName {
				t.Errorf("Dial modified the caller's tls.Config: ServerName = %q", tc.clientTLS.ServerName)
			}
			if tc.wantErr != "" {
				if err == nil || !regexp.MustCompile(tc.wantErr).MatchString(err.Error()) {
					t.Fatalf("AppendEntries: err = %v, want an error matching %q", err, tc.wantErr)
				}
				t.Logf("AppendEntries failed as expected: %v", err)
				select {
				case got := <-reqs:
					t.Fatalf("receiver got a request from a refused peer: %+v", got)
				default:
				}
				return
			}
			if err != nil {
				t.Fatalf("AppendEntries: %v", err)
			}
			if !resp.Success || resp.Term != req.Term || resp.LastLog != 43 {
				t.Fatalf("response = %+v, want success, term %d, last log 43", resp, req.Term)
			}
			got := <-reqs
			if got.Term != req.Term || got.PrevLogEntry != req.PrevLogEntry || len(got.Entries) != len(req.Entries) {
				t.Fatalf("receiver got %+v, want %+v", got, req)
			}
			for i, e := range got.Entries {
				if e.Index != req.Entries[i].Index || !bytes.Equal(e.Data, req.Entries[i].Data) {
					t.Fatalf("entry %d = {Index: %d, Data: %q}, want {Index: %d, Data: %q}",
						i, e.Index, e.Data, req.Entries[i].Index, req.Entries[i].Data)
				}
			}

			// A second RPC reuses the pooled connection.
			resp = raft.AppendEntriesResponse{}
			if err := trans1.AppendEntries("node-2", target, req, &resp); err != nil || !resp.Success {
				t.Fatalf("second AppendEntries: resp %+v, err %v", resp, err)
			}
		})
	}
}

// A peer that sends the marker and never starts its handshake must not hold
// up Accept for the next peer, and is dropped after the handshake timeout.
func TestStreamLayerAcceptDoesNotWaitForHandshake(t *testing.T) {
	verifyNoLeaks(t)
	pki := newTestPKI(t)
	m, _ := newTestMux(t, routeTimeout)
	server := NewStreamLayer(m.Raft(), m.ln.Addr(), pki.serverConfig(), nil)
	server.handshakeTimeout = 100 * time.Millisecond
	client := NewStreamLayer(nil, nil, nil, pki.clientConfig(pki.node))

	silent := dialTCP(t, m.Raft().Addr())
	write(t, silent, []byte{RaftRPC})
	silentSrv := accept(t, server) // returns although no handshake started

	// The silent peer's handshake runs, and times out, on the first Read.
	silentRead := make(chan error, 1)
	go func() {
		_, err := silentSrv.Read(make([]byte, 1))
		silentRead <- err
	}()

	// Meanwhile a real peer connects and talks.
	dialed := make(chan acceptResult, 1)
	go func() {
		c, err := client.Dial(raft.ServerAddress(m.ln.Addr().String()), ioTimeout)
		dialed <- acceptResult{c, err}
	}()
	srv := accept(t, server)
	echoed := make(chan error, 1)
	go func() {
		p := make([]byte, 4)
		_, err := io.ReadFull(srv, p)
		if err == nil {
			_, err = srv.Write(p)
		}
		echoed <- err
	}()
	r := <-dialed
	if r.err != nil {
		t.Fatalf("dial: %v", r.err)
	}
	defer r.c.Close()
	if err := r.c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	write(t, r.c, []byte("ping"))
	expectRead(t, r.c, "ping")
	if err := <-echoed; err != nil {
		t.Fatalf("server echo: %v", err)
	}

	err := <-silentRead
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read from silent peer: err = %v, want the handshake to time out", err)
	}
}

func TestStreamLayerDialTimeout(t *testing.T) {
	verifyNoLeaks(t)
	pki := newTestPKI(t)
	// A listener that accepts but never answers the handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := acceptAsync(ln)

	client := NewStreamLayer(nil, nil, nil, pki.clientConfig(pki.node))
	start := time.Now()
	_, err = client.Dial(raft.ServerAddress(ln.Addr().String()), 100*time.Millisecond)
	if err == nil {
		t.Fatal("dial to a peer that never handshakes succeeded")
	}
	if elapsed := time.Since(start); elapsed > ioTimeout/2 {
		t.Fatalf("dial took %v with a 100ms timeout", elapsed)
	}
	t.Logf("dial failed as expected: %v", err)
	if r := <-accepted; r.err == nil {
		r.c.Close()
	}
}

func TestStreamLayerAddr(t *testing.T) {
	advertise := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8400}
	s := NewStreamLayer(nil, advertise, nil, nil)
	if got := s.Addr(); got != advertise {
		t.Fatalf("Addr() = %v, want %v", got, advertise)
	}
}
