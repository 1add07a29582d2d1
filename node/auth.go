package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
)

// rule is what a log.v1 method requires of its caller.
type rule struct {
	// anyOf: the caller needs at least one of these actions; none listed
	// means any authenticated client may call.
	anyOf []string
	// peer: a node (peer certificate) is let through: it forwards a write
	// of a client it authorized itself, or asks the leader for a read index
	// (GetOffsets) to serve a read of a client it authorized; see authorize.
	peer bool
}

// rules maps every log.v1 method to what it requires, as log.proto documents.
// A log.v1 method missing here is refused (deny by default).
var rules = map[string]rule{
	logv1.Log_Produce_FullMethodName:            {anyOf: []string{authz.ActionProduce}, peer: true},
	logv1.Log_ProduceBatch_FullMethodName:       {anyOf: []string{authz.ActionProduce}, peer: true},
	logv1.Log_ProduceStream_FullMethodName:      {anyOf: []string{authz.ActionProduce}, peer: true},
	logv1.Log_ProduceBatchStream_FullMethodName: {anyOf: []string{authz.ActionProduce}, peer: true},
	logv1.Log_Consume_FullMethodName:            {anyOf: []string{authz.ActionConsume}},
	logv1.Log_ConsumeStream_FullMethodName:      {anyOf: []string{authz.ActionConsume}},
	logv1.Log_ConsumeBatchStream_FullMethodName: {anyOf: []string{authz.ActionConsume}},
	logv1.Log_GetOffsets_FullMethodName:         {anyOf: []string{authz.ActionConsume}, peer: true},
	logv1.Log_GetOffsetForTime_FullMethodName:   {anyOf: []string{authz.ActionConsume}},
	logv1.Log_GetServers_FullMethodName:         {}, // clients find the leader with it
}

var errUnknownMethod = errors.New("node: unknown method")

// caller is the authenticated other end of a call.
type caller struct {
	subject string
	// peer: the certificate carries the serverAuth usage, so it is a node's.
	peer bool
}

type callerKey struct{}

// callerFrom returns the caller authorize stored in ctx.
func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// authorize checks the caller of method and returns ctx carrying it.
//
// The subject is the common name of the verified client certificate. Calls
// of other services (health, reflection) need only the TLS handshake, which
// ServerTLS makes require a verified client certificate.
//
// Forwarded writes: a follower authorizes the original client itself and
// forwards with its own node certificate (CN "server"). The leader cannot see
// the original subject, so it accepts a write from any certificate with the
// serverAuth usage, which only node certificates carry; a node certificate can
// already speak Raft, so this grants it nothing new. Such a caller is never
// forwarded again (see Node.append).
//
// Read indexes: a follower serving a read past its end of the log asks the
// leader's GetOffsets with its node certificate, after authorizing the
// client's read itself; so GetOffsets lets a node through too. It tells
// offsets only, never records, and a node receives every record over Raft
// anyway.
func (n *Node) authorize(ctx context.Context, method string) (context.Context, error) {
	if !strings.HasPrefix(method, "/"+logv1.Log_ServiceDesc.ServiceName+"/") {
		return ctx, nil
	}
	c, err := callerOf(ctx)
	if err != nil {
		return ctx, err
	}
	r, ok := rules[method]
	if !ok {
		return ctx, fmt.Errorf("%w %s", errUnknownMethod, method)
	}
	ctx = context.WithValue(ctx, callerKey{}, c)
	if r.peer && c.peer || len(r.anyOf) == 0 {
		return ctx, nil
	}
	var errs []error
	for _, action := range r.anyOf {
		err := n.conf.Authorizer.Authorize(c.subject, authz.ObjectAny, action)
		if err == nil {
			return ctx, nil
		}
		errs = append(errs, err)
	}
	return ctx, errs[0]
}

// callerOf authenticates the other end of the call in ctx.
func callerOf(ctx context.Context) (caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return caller{}, certs.ErrUnauthenticated
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return caller{}, certs.ErrUnauthenticated
	}
	subject, err := certs.SubjectFromState(info.State)
	if err != nil {
		return caller{}, err
	}
	leaf := info.State.VerifiedChains[0][0]
	return caller{subject: subject, peer: slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth)}, nil
}

func (n *Node) authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := n.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, n.status(err)
	}
	return handler(ctx, req)
}

func (n *Node) authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := n.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return n.status(err)
	}
	return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

// ctxStream is a ServerStream with the context authorize returned.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
