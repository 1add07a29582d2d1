package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrUnreachable is the kind of a *ConnectError when every server the
	// client knows refused the connection (or its name did not resolve) for
	// UnreachableAfter: nothing listens there.
	ErrUnreachable = errors.New("discovery: no server reachable")
	// ErrHandshake is the kind of a *ConnectError when the TLS handshake
	// with a server failed: a certificate was not accepted by one end.
	ErrHandshake = errors.New("discovery: TLS handshake failed")
)

// UnreachableAfter is how long a new client keeps asking servers that all
// refuse the connection before its calls fail with ErrUnreachable (a server
// that is starting has that long to listen).
const UnreachableAfter = 700 * time.Millisecond

// ConnectError is why a client gave up before any server answered it: every
// server refused the connection (Kind ErrUnreachable), or a TLS handshake
// failed (Kind ErrHandshake). Calls fail with it at once instead of waiting
// out their context. Once a server has answered, a client never gives up
// this way: it waits (within each call's context) through restarts and
// leader changes.
type ConnectError struct {
	Kind error  // ErrUnreachable or ErrHandshake
	Addr string // the server the last failure came from
	Err  error  // that failure, as gRPC reported it
}

// Error names the kind, the server and the cause.
func (e *ConnectError) Error() string {
	return fmt.Sprintf("%v: %s: %s", e.Kind, e.Addr, e.Cause())
}

// Cause is the underlying failure without gRPC's wrapping: for example
// "dial tcp 127.0.0.1:1: connect: connection refused" or
// "tls: failed to verify certificate: x509: certificate signed by unknown authority".
func (e *ConnectError) Cause() string {
	msg := status.Convert(e.Err).Message()
	msg = strings.TrimPrefix(msg, "connection error: desc = ")
	msg = strings.ReplaceAll(strings.Trim(msg, `"`), `\"`, `"`)
	for _, p := range []string{"transport: authentication handshake failed: ", "transport: Error while dialing: ", "error reading server preface: ", "transport: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// Unwrap returns Kind and Err, so errors.Is(err, ErrHandshake) works.
func (e *ConnectError) Unwrap() []error { return []error{e.Kind, e.Err} }

// GRPCStatus is UNAUTHENTICATED for a handshake failure and UNAVAILABLE
// otherwise, so status.Code sees it as the call's code.
func (e *ConnectError) GRPCStatus() *status.Status {
	code := codes.Unavailable
	if e.Kind == ErrHandshake {
		code = codes.Unauthenticated
	}
	return status.New(code, e.Error())
}

// connectKind classifies the error of a call to one server that did not
// answer: ErrHandshake, ErrUnreachable (refused, or the name does not
// resolve), or nil when the server may yet answer (a timeout).
func connectKind(err error) error {
	if status.Code(err) != codes.Unavailable {
		return nil
	}
	msg := status.Convert(err).Message()
	switch {
	case strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") || strings.Contains(msg, "authentication handshake failed"):
		return ErrHandshake
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host"):
		return ErrUnreachable
	}
	return nil
}

// reach tells a Client's calls whether its resolver has reached the
// cluster: they wait until a server has answered (contacted) or the
// resolver gave up (failed, with err). Its fields are set once each.
type reach struct {
	contacted chan struct{}
	failed    chan struct{}
	err       *ConnectError // set before failed is closed

	contactOnce, failOnce sync.Once

	// Owned by the resolver goroutine: when the servers began to refuse.
	refusedSince time.Time
}

func newReach() *reach {
	return &reach{contacted: make(chan struct{}), failed: make(chan struct{})}
}

// contact records that a server answered.
func (r *reach) contact() { r.contactOnce.Do(func() { close(r.contacted) }) }

// fail records why the client gives up, unless a server has answered.
func (r *reach) fail(err *ConnectError) {
	select {
	case <-r.contacted:
		return
	default:
	}
	r.failOnce.Do(func() { r.err = err; close(r.failed) })
}

// round takes the errors of one resolve in which no server answered (each
// with the server it came from) and decides whether to give up: at once on
// a handshake failure, after UnreachableAfter of nothing but refusals.
func (r *reach) round(now time.Time, addrs []string, errs []error) {
	refused := len(errs) > 0
	for i, err := range errs {
		switch connectKind(err) {
		case ErrHandshake:
			r.fail(&ConnectError{Kind: ErrHandshake, Addr: addrs[i], Err: err})
			return
		case ErrUnreachable:
		default:
			refused = false
		}
	}
	if !refused {
		r.refusedSince = time.Time{}
		return
	}
	if r.refusedSince.IsZero() {
		r.refusedSince = now
	}
	if now.Sub(r.refusedSince) >= UnreachableAfter {
		r.fail(&ConnectError{Kind: ErrUnreachable, Addr: addrs[len(addrs)-1], Err: errs[len(errs)-1]})
	}
}

// await waits until a server has answered (nil), the client gave up (its
// *ConnectError) or ctx ends (nil: the call itself then fails with ctx's
// error, as it would have).
func (r *reach) await(ctx context.Context) error {
	select {
	case <-r.contacted:
		return nil
	default:
	}
	select {
	case <-r.contacted:
		return nil
	case <-r.failed:
		return r.err
	case <-ctx.Done():
		return nil
	}
}

func (r *reach) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := r.await(ctx); err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (r *reach) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if err := r.await(ctx); err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}
