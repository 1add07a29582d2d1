package node_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// TestRetriedProduceIsNotDuplicated: a ProduceBatch retried with the same
// producer id and sequence, on a follower and after a leader change, gets the
// offsets of the first append marked duplicate, and the log holds it once.
func TestRetriedProduceIsNotDuplicated(t *testing.T) {
	c := nodetest.StartCluster(t, 3, nil, nil)
	req := &logv1.ProduceBatchRequest{ProducerId: "producer-a", Sequence: 1,
		Records: []*logv1.Record{{Value: []byte("one")}, {Value: []byte("two")}}}
	produce := func(addr string) *logv1.ProduceBatchResponse {
		t.Helper()
		var res *logv1.ProduceBatchResponse
		client := c.PKI.Client(t, addr, certs.RootSubject)
		nodetest.Retry(t, nodetest.ClusterTimeout, func() error {
			ctx, cancel := context.WithTimeout(nodetest.Context(t), 5*time.Second)
			defer cancel()
			var err error
			res, err = client.ProduceBatch(ctx, req)
			return err
		})
		return res
	}
	first := produce(c.Leader(t).Addr())
	if first.Duplicate || first.Durability != logv1.Durability_DURABILITY_QUORUM_FSYNC {
		t.Fatalf("first append: %v", first)
	}
	// Through a follower, which forwards it.
	if res := produce(c.Follower(t).Addr()); !res.Duplicate || res.FirstOffset != first.FirstOffset || res.Count != 2 {
		t.Fatalf("retry through a follower: %v, want duplicate at %d", res, first.FirstOffset)
	}
	// After the leader goes away.
	var old int
	for i, n := range c.Nodes {
		if n.IsLeader() {
			old = i
		}
	}
	c.Close(t, old)
	others := []int{(old + 1) % 3, (old + 2) % 3}
	nodetest.WaitFor(t, nodetest.ClusterTimeout, "a new leader", func() bool {
		return c.Nodes[others[0]].IsLeader() || c.Nodes[others[1]].IsLeader()
	})
	res := produce(c.Nodes[others[0]].Addr())
	if !res.Duplicate || res.FirstOffset != first.FirstOffset {
		t.Fatalf("retry after the leader changed: %v, want duplicate at %d", res, first.FirstOffset)
	}
	// Unary Produce and a new sequence append.
	one := c.PKI.Client(t, c.Nodes[others[0]].Addr(), certs.RootSubject)
	var pr *logv1.ProduceResponse
	nodetest.Retry(t, nodetest.ClusterTimeout, func() error {
		var err error
		pr, err = one.Produce(nodetest.Context(t), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("three")}, ProducerId: "producer-a", Sequence: 2})
		return err
	})
	if pr.Duplicate || pr.Offset != first.FirstOffset+2 || pr.Durability != logv1.Durability_DURABILITY_QUORUM_FSYNC {
		t.Fatalf("sequence 2: %v", pr)
	}
	// Sequence 1 with another count is refused.
	req.Records = req.Records[:1]
	_, err := one.ProduceBatch(nodetest.Context(t), req)
	nodetest.WantCode(t, "sequence 1 again with 1 record", err, codes.FailedPrecondition)
	t.Log(err)
	_, err = one.ProduceBatch(nodetest.Context(t), &logv1.ProduceBatchRequest{ProducerId: "p", Records: req.Records})
	nodetest.WantCode(t, "a producer id without a sequence", err, codes.InvalidArgument)
	offs, err := one.GetOffsets(nodetest.Context(t), &logv1.GetOffsetsRequest{})
	if err != nil || offs.NextOffset != first.FirstOffset+3 {
		t.Fatalf("next offset %v, %v; want %d", offs, err, first.FirstOffset+3)
	}
}

// TestProduceStreamWithProducer: stream requests carry a producer id and
// sequence each; a resent one is answered as a duplicate.
func TestProduceStreamWithProducer(t *testing.T) {
	c := nodetest.StartCluster(t, 1, nil, nil)
	client := c.PKI.Client(t, c.Nodes[0].Addr(), certs.RootSubject)
	stream, err := client.ProduceStream(nodetest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1, 2, 1, 3} {
		if err := stream.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte{byte(seq)}}, ProducerId: "s", Sequence: seq}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		off uint64
		dup bool
	}{{0, false}, {1, false}, {0, true}, {2, false}}
	for i, w := range want {
		res, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if res.Offset != w.off || res.Duplicate != w.dup || res.Durability != logv1.Durability_DURABILITY_QUORUM_FSYNC {
			t.Fatalf("answer %d: %v, want offset %d duplicate %v", i, res, w.off, w.dup)
		}
	}
}

func TestServersReportDurability(t *testing.T) {
	c := nodetest.StartCluster(t, 1, nil, nil)
	res, err := c.PKI.Client(t, c.Nodes[0].Addr(), certs.RootSubject).GetServers(nodetest.Context(t), &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Self.Durability != logv1.Durability_DURABILITY_QUORUM_FSYNC || res.Servers[0].Durability != logv1.Durability_DURABILITY_QUORUM_FSYNC {
		t.Fatalf("GetServers: %v", res)
	}
}
