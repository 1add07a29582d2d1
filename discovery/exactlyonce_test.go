package discovery_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// hungOnceLeader is a log.v1 server that says it leads; the first
// ProduceBatch it holds until the call's context ends (a leader that took
// the write and never answered), the second it fails as a leader change
// does (UNAVAILABLE, outcome unknown), and later ones it answers as a
// duplicate at offset 7. It records every request.
type hungOnceLeader struct {
	stubLeader
	mu   sync.Mutex
	reqs []*logv1.ProduceBatchRequest
}

func (s *hungOnceLeader) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	n := len(s.reqs)
	s.mu.Unlock()
	switch n {
	case 1:
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case 2:
		return nil, status.Error(codes.Unavailable, "leadership changed before the records were known to commit")
	}
	return &logv1.ProduceBatchResponse{FirstOffset: 7, Count: uint32(len(req.Records)), Duplicate: true,
		Durability: logv1.Durability_DURABILITY_QUORUM_FSYNC}, nil
}

// TestProduceBatchAsRetriesUnknownOutcomes: a write with a producer id is
// sent again, with the same producer id and sequence, after an attempt timed
// out and after a leader change, until an answer tells the outcome.
func TestProduceBatchAsRetriesUnknownOutcomes(t *testing.T) {
	p := nodetest.NewPKI(t)
	ln := nodetest.Listen(t)
	stub := &hungOnceLeader{}
	stub.addr = ln.Addr().String()
	nodetest.Serve(t, ln, stub, nodetest.ServerTLS(t, p.Dir))
	cl := dialStub(t, p, &stub.stubLeader)
	ctx, cancel := context.WithTimeout(nodetest.Context(t), 4*time.Second)
	defer cancel()
	res, err := cl.ProduceBatchAs(ctx, "prod", 42, [][]byte{[]byte("x"), []byte("y")})
	if err != nil || res.First != 7 || !res.Duplicate || res.Attempts != 3 || res.Durability != logv1.Durability_DURABILITY_QUORUM_FSYNC {
		t.Fatalf("ProduceBatchAs = %+v, %v; want a duplicate at 7 after 3 attempts", res, err)
	}
	stub.mu.Lock()
	defer stub.mu.Unlock()
	for i, r := range stub.reqs {
		if r.ProducerId != "prod" || r.Sequence != 42 || len(r.Records) != 2 {
			t.Fatalf("attempt %d sent %v", i+1, r)
		}
	}
}

// TestProduceBatchAsGivesUpWithTheContext: a write no server ever answers
// ends with the context; one that never reached a server is not sent.
func TestProduceBatchAsGivesUpWithTheContext(t *testing.T) {
	p := nodetest.NewPKI(t)
	stub := startStubLeader(t, p)
	ctx, cancel := context.WithTimeout(nodetest.Context(t), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := dialStub(t, p, stub).ProduceBatchAs(ctx, "prod", 1, [][]byte{[]byte("x")})
	var notSent *discovery.NotSentError
	if err == nil || errors.As(err, &notSent) || res.Attempts < 2 || stub.received.Load() < 2 {
		t.Fatalf("ProduceBatchAs to a leader that never answers: %+v, %v (%T), received %d; want an error after several attempts",
			res, err, err, stub.received.Load())
	}
	if d := time.Since(start); d > 1500*time.Millisecond+slack {
		t.Fatalf("took %v", d)
	}
}

// TestProduceBatchAsOnACluster: across a leader change the retried batch is
// answered with its first offset.
func TestProduceBatchAsOnACluster(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.dial(t, c.target(), nil)
	batch := [][]byte{[]byte("a"), []byte("b")}
	first, err := cl.ProduceBatchAs(nodetest.Context(t), "prod", 1, batch)
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v, %v", first, err)
	}
	var old int
	for i, n := range c.Nodes {
		if n.IsLeader() {
			old = i
		}
	}
	c.Close(t, old)
	again, err := cl.ProduceBatchAs(nodetest.Context(t), "prod", 1, batch)
	if err != nil || !again.Duplicate || again.First != first.First {
		t.Fatalf("after a leader change: %+v, %v; want a duplicate at %d", again, err, first.First)
	}
}
