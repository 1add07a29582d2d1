package node_test

import (
	"context"
	"io"
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

// TestProduceBatchStream: a stream's batches get offsets in the order sent,
// each answered once with its first offset and count; a batch sent again
// with its sequence is answered as the duplicate it is; a follower forwards
// the stream's batches; and a refused batch ends the stream with its error.
func TestProduceBatchStream(t *testing.T) {
	c := nodetest.StartCluster(t, 3, nil, nil)
	batchOf := func(seq uint64, n int) *logv1.ProduceBatchRequest {
		req := &logv1.ProduceBatchRequest{ProducerId: "bs", Sequence: seq}
		for i := range n {
			req.Records = append(req.Records, &logv1.Record{Value: []byte{byte(seq), byte(i)}})
		}
		return req
	}
	type answer struct {
		first uint64
		count uint32
		dup   bool
	}
	run := func(addr string, reqs []*logv1.ProduceBatchRequest) ([]answer, error) {
		t.Helper()
		stream, err := c.PKI.Client(t, addr, certs.RootSubject).ProduceBatchStream(nodetest.Context(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range reqs {
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		var got []answer
		for {
			res, err := stream.Recv()
			if err != nil {
				return got, err
			}
			if res.Durability != logv1.Durability_DURABILITY_QUORUM_FSYNC {
				t.Fatalf("answer %d: durability %v", len(got), res.Durability)
			}
			got = append(got, answer{res.FirstOffset, res.Count, res.Duplicate})
		}
	}
	// Ten batches of 1..10 records in one go: all in flight together.
	var reqs []*logv1.ProduceBatchRequest
	for seq := uint64(1); seq <= 10; seq++ {
		reqs = append(reqs, batchOf(seq, int(seq)))
	}
	got, err := run(c.Leader(t).Addr(), reqs)
	if err != io.EOF {
		t.Fatalf("stream ended with %v after %d answers", err, len(got))
	}
	var next uint64
	for i, a := range got {
		if want := (answer{next, uint32(i + 1), false}); a != want {
			t.Fatalf("answer %d = %+v, want %+v", i, a, want)
		}
		next += uint64(a.count)
	}
	if len(got) != 10 {
		t.Fatalf("%d answers, want 10", len(got))
	}
	// Through a follower: sequences 9 and 10 again, then 11.
	got, err = run(c.Follower(t).Addr(), []*logv1.ProduceBatchRequest{batchOf(9, 9), batchOf(10, 10), batchOf(11, 2)})
	want := []answer{{36, 9, true}, {45, 10, true}, {55, 2, false}}
	if err != io.EOF || len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("through a follower: %+v, %v; want %+v", got, err, want)
	}
	// Sequence 11 again with another count is refused, and ends the stream.
	got, err = run(c.Leader(t).Addr(), []*logv1.ProduceBatchRequest{batchOf(12, 1), batchOf(11, 3)})
	if len(got) != 1 || got[0] != (answer{57, 1, false}) {
		t.Fatalf("before the refused batch: %+v", got)
	}
	nodetest.WantCode(t, "sequence 11 again with 3 records", err, codes.FailedPrecondition)
	// Records are where the answers said, in order.
	rec, err := c.PKI.Client(t, c.Leader(t).Addr(), certs.RootSubject).Consume(nodetest.Context(t), &logv1.ConsumeRequest{Offset: 45 + 9})
	if err != nil || string(rec.Record.Value) != string([]byte{10, 9}) {
		t.Fatalf("offset 54 holds %v, %v; want batch 10's last record", rec, err)
	}
}
