package node

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

var (
	// errInvalid marks a malformed request.
	errInvalid = errors.New("node: invalid request")
	// errShuttingDown ends calls when the node closes.
	errShuttingDown = errors.New("node: shutting down")
	// errNoLeader: a read at or past this node's end of the log needs the
	// leader to confirm where the log ends (a read index), and no leader
	// did in time. Nothing is known about the offset; the client retries,
	// on another server if need be.
	errNoLeader = errors.New("node: no leader could confirm the end of the log")
)

// status turns an error of the layers below into the gRPC status the client
// gets. It is the one place status codes are chosen (log.proto documents
// them); a status error (from a forwarded call) passes through unchanged.
func (n *Node) status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := withoutPackage(err.Error())
	var code codes.Code
	var nl *replica.NotLeaderError
	switch {
	case errors.Is(err, errNoLeader):
		// Before the context cases: obtaining a read index is bounded
		// below the call's deadline precisely so that the client hears
		// this instead.
		code = codes.Unavailable
		msg += "; retry later or on another server"
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, replica.ErrOffsetOutOfRange):
		code = codes.OutOfRange
	case errors.Is(err, certs.ErrUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, authz.ErrPermissionDenied), errors.Is(err, errUnknownMethod):
		code = codes.PermissionDenied
	case errors.Is(err, replica.ErrRecordTooLarge), errors.Is(err, replica.ErrBatchTooLarge), errors.Is(err, replica.ErrBadProducer), errors.Is(err, errInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, replica.ErrSequence):
		// Nothing was appended; the same request will be refused again.
		code = codes.FailedPrecondition
	case errors.As(err, &nl):
		msg = "not the leader, and the write could not be forwarded; the leader is " + nl.LeaderID + " at " + nl.LeaderAddr
		if nl.LeaderAddr == "" {
			msg = "no leader is known yet; retry later"
		}
		// Nothing was appended: the client may send the write again.
		st, derr := status.New(codes.Unavailable, msg).WithDetails(&errdetails.ErrorInfo{Domain: logv1.ErrorDomain, Reason: logv1.ReasonNotAppended})
		if derr != nil {
			return status.Error(codes.Unavailable, msg)
		}
		return st.Err()
	case errors.Is(err, replica.ErrLeadershipLost):
		code = codes.Unavailable
		msg = "leadership changed before the records were known to commit: the outcome is unknown, they may or may not be in the log"
	case errors.Is(err, replica.ErrClosed), errors.Is(err, replica.ErrStoreClosed), errors.Is(err, errShuttingDown):
		code = codes.Unavailable
		msg = "the node is shutting down"
	case errors.Is(err, replica.ErrCorrupt):
		code = codes.Internal
		n.logger.Error("corrupt data", "err", err)
	default:
		code = codes.Internal
		n.logger.Error("internal error", "err", err)
	}
	return status.Error(code, msg)
}

// withoutPackage drops the "package: " an error message of the layers below
// starts with: the client reads a sentence, not a Go error chain's prefix.
func withoutPackage(msg string) string {
	i := strings.Index(msg, ": ")
	if i <= 0 {
		return msg
	}
	for _, r := range msg[:i] {
		if r < 'a' || r > 'z' {
			return msg
		}
	}
	return msg[i+2:]
}
