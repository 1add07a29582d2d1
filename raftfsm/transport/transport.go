// Package transport carries Raft on the node's one TCP port, shared with
// gRPC, under mutual TLS.
//
// A node listens on a single RPC port. The first byte a client sends decides
// where its connection goes:
//
//	Raft peer:  | RaftRPC (0x01) | TLS handshake | raft msgpack RPCs ...  → Mux.Raft()
//	gRPC:       | 0x16 (TLS ClientHello) ...                              → Mux.Other()
//	            | 'P' ("PRI * HTTP/2.0", plaintext h2c) ...               → Mux.Other()
//
// The marker travels outside TLS so the port can be split before any handshake;
// neither a TLS record nor the HTTP/2 preface can start with 0x01. Mux reads
// exactly one byte per connection (a peer that sends only the marker and waits
// for a reply is routed at once), strips it from Raft connections and hands it
// back on the first Read of every other connection.
//
// Concurrency: Mux starts its accept loop in NewMux and routes each accepted
// connection on its own goroutine, under a read deadline, so a silent client
// delays only itself; Mux.Close stops and joins all of them. StreamLayer starts
// no goroutines: raft.NetworkTransport calls Accept from its listen goroutine
// and Dial from whichever goroutine sends an RPC.
//
// Transport wraps raft.NetworkTransport with a pipeline that cannot wedge
// (pipeline.go) and follows each follower as the leader sees it (peers.go):
// Transport.FollowerStats reports them and a peer going down or coming back is
// logged once. NewHCLogger (hclog.go) hands Raft's own logs to slog.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// RaftRPC is the first byte a Raft peer sends on a new connection to the
// shared RPC port. Wire format; never change.
const RaftRPC byte = 0x01

const (
	// routeTimeout bounds how long Mux waits for the first byte of a new
	// connection before closing it.
	routeTimeout = 10 * time.Second
	// handshakeTimeout bounds the server side of a Raft TLS handshake.
	handshakeTimeout = 10 * time.Second
	// acceptRetryMax caps the back-off after a failed Accept on the shared
	// listener (for example EMFILE).
	acceptRetryMax = time.Second
)

var (
	_ raft.StreamLayer = (*StreamLayer)(nil)
	_ net.Listener     = (*muxListener)(nil)
)

// Mux splits one listener into a Raft listener and a listener for everything
// else (gRPC), by the first byte of each connection; see RaftRPC.
//
// NewMux starts the accept loop; there is no separate Serve. The accept loop
// goroutine is the only caller of ln.Accept, and each accepted connection is
// routed on a goroutine of its own. mu guards pending and stopped. Close stops
// and joins every goroutine the Mux started.
type Mux struct {
	ln           net.Listener
	logger       *slog.Logger
	routeTimeout time.Duration

	raft  *muxListener
	other *muxListener

	done     chan struct{} // closed when the mux stops; never reopened
	stopOnce sync.Once
	wg       sync.WaitGroup // the accept loop and every routing goroutine

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections whose first byte is awaited
	stopped bool
}

// NewMux starts routing the connections accepted from ln and returns at once.
// Connections that start with RaftRPC are yielded by Raft with the marker
// consumed; all others by Other with their first byte intact. A connection
// that sends nothing within 10 s is closed. logger receives routing failures;
// nil discards them. The caller must Close the Mux, which also closes ln.
func NewMux(ln net.Listener, logger *slog.Logger) *Mux {
	return newMux(ln, logger, routeTimeout)
}

func newMux(ln net.Listener, logger *slog.Logger, timeout time.Duration) *Mux {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Mux{
		ln:           ln,
		logger:       logger,
		routeTimeout: timeout,
		done:         make(chan struct{}),
		pending:      make(map[net.Conn]struct{}),
	}
	m.raft = &muxListener{mux: m, name: "raft", conns: make(chan net.Conn), closed: make(chan struct{})}
	m.other = &muxListener{mux: m, name: "other", conns: make(chan net.Conn), closed: make(chan struct{})}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

// Raft returns the listener for Raft connections; the RaftRPC marker has been
// read from every connection it yields. Closing it stops only this listener:
// connections routed to it afterwards are closed.
func (m *Mux) Raft() net.Listener { return m.raft }

// Other returns the listener for every connection that does not start with
// RaftRPC; the first byte is delivered again by the connection's first Read.
// Closing it stops only this listener.
func (m *Mux) Other() net.Listener { return m.other }

// Close closes the shared listener and both child listeners, closes every
// connection not yet handed to a caller of Accept, and waits for the
// goroutines the Mux started. Connections already accepted stay open. Close is
// idempotent; later calls return the first call's result.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.stop()
		if err := m.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			m.closeErr = fmt.Errorf("raftfsm: close mux listener %s: %w", m.ln.Addr(), err)
		}
	})
	m.wg.Wait()
	return m.closeErr
}

// stop ends routing: child Accepts return, pending connections are closed and
// no new ones are tracked. It does not close ln or wait.
func (m *Mux) stop() {
	m.stopOnce.Do(func() {
		close(m.done)
		m.mu.Lock()
		m.stopped = true
		for c := range m.pending {
			c.Close()
		}
		clear(m.pending)
		m.mu.Unlock()
	})
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				// Closed under us: stop the children too, or their Accept
				// would wait forever.
				m.logger.Warn("raftfsm: mux listener closed", "addr", m.ln.Addr().String())
				m.stop()
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), acceptRetryMax)
			m.logger.Warn("raftfsm: mux accept failed", "addr", m.ln.Addr().String(), "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-m.done:
				t.Stop()
				return
			}
			continue
		}
		delay = 0

		m.mu.Lock()
		if m.stopped {
			m.mu.Unlock()
			c.Close()
			return
		}
		m.pending[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go m.route(c)
	}
}

// route reads exactly one byte from c and hands c to the matching child.
func (m *Mux) route(c net.Conn) {
	defer m.wg.Done()

	var first [1]byte
	err := c.SetReadDeadline(time.Now().Add(m.routeTimeout))
	if err == nil {
		_, err = io.ReadFull(c, first[:])
	}
	if err == nil {
		err = c.SetReadDeadline(time.Time{})
	}

	m.mu.Lock()
	stopped := m.stopped
	delete(m.pending, c)
	m.mu.Unlock()

	if stopped {
		c.Close()
		return
	}
	if err != nil {
		m.logger.Debug("raftfsm: mux dropped connection before routing", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	if first[0] == RaftRPC {
		m.raft.deliver(c)
		return
	}
	pc := &peekedConn{Conn: c, first: first[0]}
	pc.held.Store(true)
	m.other.deliver(pc)
}

// muxListener is one side of a Mux. Routing goroutines send on conns; callers
// of Accept receive.
type muxListener struct {
	mux       *Mux
	name      string
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

// deliver waits until a caller of Accept takes c, or closes c if the listener
// or the mux closes first.
func (l *muxListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	case <-l.mux.done:
		c.Close()
	}
}

func (l *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
	case <-l.mux.done:
	}
	return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
}

func (l *muxListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *muxListener) Addr() net.Addr { return l.mux.ln.Addr() }

// peekedConn hands back the byte the Mux read before routing, then reads from
// the connection.
type peekedConn struct {
	net.Conn
	first byte
	held  atomic.Bool
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(p) > 0 && c.held.Load() && c.held.CompareAndSwap(true, false) {
		p[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(p)
}

// StreamLayer is the raft.StreamLayer over the shared RPC port: Dial opens a
// TCP connection, sends RaftRPC and then speaks TLS; Accept takes connections
// whose marker has already been read (Mux.Raft) and serves TLS on them.
//
// The server handshake is lazy: Accept wraps the connection and returns at
// once, and the handshake runs on the connection's first Read or Write, bounded
// by a 10 s timeout. raft.NetworkTransport calls Accept in a loop on one
// goroutine and serves each connection on its own, so a peer that never
// completes a handshake holds only its own goroutine, and only until the
// timeout, instead of stalling every other peer's Accept. A rejected peer
// (wrong CA, or a certificate without the server-auth usage, as enforced by
// serverTLS) therefore surfaces as an error on that connection, which
// NetworkTransport logs and closes.
//
// Close closes the listener and every connection Accept returned:
// raft.NetworkTransport serves each until its peer hangs up, so without this a
// stopped node would keep serving connections of peers that still run.
//
// StreamLayer starts no goroutines; mu guards the set of accepted connections
// and clientTLS is swapped atomically (SetClientTLS). It is safe for
// concurrent use.
type StreamLayer struct {
	ln               net.Listener
	advertise        net.Addr
	serverTLS        *tls.Config
	clientTLS        atomic.Pointer[tls.Config]
	handshakeTimeout time.Duration

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// NewStreamLayer returns a StreamLayer accepting from ln, which must yield Raft
// connections after their RaftRPC marker (Mux.Raft). advertise is the address
// peers dial to reach this node and what Addr reports, so Raft stores it in
// its configuration: it must be non-nil and routable (never 0.0.0.0 or ::).
// serverTLS secures accepted connections and clientTLS dialed ones; nil means
// plaintext. When clientTLS has no ServerName, each Dial verifies the peer
// against the host it dialed, using a clone of clientTLS; the configs passed
// in are never modified.
func NewStreamLayer(ln net.Listener, advertise net.Addr, serverTLS, clientTLS *tls.Config) *StreamLayer {
	s := &StreamLayer{
		ln:               ln,
		advertise:        advertise,
		serverTLS:        serverTLS,
		handshakeTimeout: handshakeTimeout,
		conns:            map[*trackedConn]struct{}{},
	}
	s.clientTLS.Store(clientTLS)
	return s
}

// SetClientTLS replaces the configuration Dial secures connections with from
// now on (a certificate or CA rotated on disk); connections dialed before
// keep theirs. A StreamLayer made with plaintext dialing stays plaintext: a
// nil c is ignored.
func (s *StreamLayer) SetClientTLS(c *tls.Config) {
	if c != nil && s.clientTLS.Load() != nil {
		s.clientTLS.Store(c)
	}
}

// Accept waits for the next Raft connection. With serverTLS it returns a TLS
// connection whose handshake runs on first use (see StreamLayer).
func (s *StreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	if s.serverTLS != nil {
		c = &serverConn{Conn: tls.Server(c, s.serverTLS), timeout: s.handshakeTimeout}
	}
	tc := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: s.advertise, Err: net.ErrClosed}
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// Close closes the listener the StreamLayer accepts from and every connection
// it accepted.
func (s *StreamLayer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[*trackedConn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

// trackedConn is an accepted connection that leaves its StreamLayer's set when
// closed.
type trackedConn struct {
	net.Conn
	s *StreamLayer
}

// Read ends with io.EOF once the connection is closed under it (by
// StreamLayer.Close): to Raft that is the end of the peer's commands, not a
// command that failed to decode.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// Addr returns the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to the Raft peer at address, sends RaftRPC and, with
// clientTLS, completes the TLS handshake. Connecting, the marker and the
// handshake together take at most timeout (none if timeout <= 0).
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var cfg *tls.Config
	if ct := s.clientTLS.Load(); ct != nil {
		var err error
		if cfg, err = clientConfig(ct, address); err != nil {
			return nil, err
		}
	}

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raftfsm: dial raft peer %s: %w", address, err)
	}
	deadline, _ := ctx.Deadline() // zero: no deadline
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raftfsm: dial raft peer %s: %w", address, err)
	}
	if _, err := conn.Write([]byte{RaftRPC}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raftfsm: dial raft peer %s: write marker: %w", address, err)
	}
	var out net.Conn = conn
	if cfg != nil {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("raftfsm: dial raft peer %s: tls handshake: %w", address, err)
		}
		out = tc
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		out.Close()
		return nil, fmt.Errorf("raftfsm: dial raft peer %s: %w", address, err)
	}
	return out, nil
}

// clientConfig returns ct, or a clone of it naming the dialed host when ct has
// no ServerName.
func clientConfig(ct *tls.Config, address raft.ServerAddress) (*tls.Config, error) {
	if ct.ServerName != "" {
		return ct, nil
	}
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, fmt.Errorf("raftfsm: dial raft peer %s: %w", address, err)
	}
	cfg := ct.Clone()
	cfg.ServerName = host
	return cfg, nil
}

// serverConn is an accepted TLS connection whose handshake runs, with a
// timeout, on the first Read or Write.
type serverConn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			c.err = fmt.Errorf("raftfsm: tls handshake with raft peer %s: %w", c.RemoteAddr(), err)
		}
	})
	return c.err
}

func (c *serverConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *serverConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// NewTransport returns Raft's network transport over stream, with timeout
// bounding each connection and RPC, logging into logger. The replica closes it
// when it closes.
func NewTransport(stream *StreamLayer, timeout time.Duration, logger *slog.Logger) *Transport {
	return &Transport{
		NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  stream,
			MaxPool: 5,
			Timeout: timeout,
			Logger:  NewHCLogger(logger, "raft-net"),
		}),
		peers: newPeers(logger.With("component", "raft")),
	}
}
