package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// TestRecordsCarryTimes: every consume RPC returns each record's leader
// timestamp, the same on every node, and GetOffsetForTime finds records by
// it at its boundaries, on the leader and on followers.
func TestRecordsCarryTimes(t *testing.T) {
	c := nodetest.StartCluster(t, 3, nil, nil)
	leaderClient := c.PKI.Client(t, c.Leader(t).Addr(), certs.RootSubject)
	produce := func(seq uint64, vals ...string) uint64 {
		t.Helper()
		req := &logv1.ProduceBatchRequest{ProducerId: "time-test", Sequence: seq}
		for _, v := range vals {
			req.Records = append(req.Records, &logv1.Record{Value: []byte(v), Timestamp: 42})
		}
		var res *logv1.ProduceBatchResponse
		nodetest.Retry(t, nodetest.ClusterTimeout, func() error {
			var err error
			res, err = leaderClient.ProduceBatch(nodetest.Context(t), req)
			return err
		})
		return res.FirstOffset
	}
	lo := time.Now().UnixNano()
	if first := produce(1, "a0", "a1", "a2"); first != 0 {
		t.Fatalf("first batch at offset %d, want 0", first)
	}
	mid := time.Now().UnixNano()
	produce(2, "b0", "b1")
	produce(3, "c0")
	hi := time.Now().UnixNano()
	const next = 6

	var want []*logv1.Record
	for i, n := range c.Nodes {
		client := c.PKI.Client(t, n.Addr(), certs.RootSubject)
		t.Run(fmt.Sprintf("node%d", i), func(t *testing.T) {
			// ConsumeBatchStream: every record with a time in the window,
			// not decreasing, the first batch's before mid, the rest after
			// (the timestamp a producer sent is ignored).
			got := readAllRecords(t, client)
			if len(got) != next {
				t.Fatalf("ConsumeBatchStream returned %d records, want %d", len(got), next)
			}
			for off, r := range got {
				switch {
				case r.Offset != uint64(off):
					t.Fatalf("record %d has offset %d", off, r.Offset)
				case r.Timestamp < lo || r.Timestamp > hi:
					t.Fatalf("offset %d timestamp %d outside [%d, %d]", off, r.Timestamp, lo, hi)
				case off > 0 && r.Timestamp < got[off-1].Timestamp:
					t.Fatalf("offset %d timestamp %d below the previous %d", off, r.Timestamp, got[off-1].Timestamp)
				case off < 3 && r.Timestamp >= mid, off >= 3 && r.Timestamp < mid:
					t.Fatalf("offset %d timestamp %d on the wrong side of %d", off, r.Timestamp, mid)
				case want != nil && r.Timestamp != want[off].Timestamp:
					t.Fatalf("offset %d timestamp %d, the leader's node has %d", off, r.Timestamp, want[off].Timestamp)
				}
			}
			if want == nil {
				want = got
			}
			// Consume and ConsumeStream carry the same times.
			for _, off := range []uint64{0, 4} {
				res, err := client.Consume(nodetest.Context(t), &logv1.ConsumeRequest{Offset: off})
				if err != nil || res.Record.Timestamp != want[off].Timestamp {
					t.Fatalf("Consume(%d) = %v, %v; want timestamp %d", off, res, err, want[off].Timestamp)
				}
			}
			ctx, cancel := context.WithCancel(nodetest.Context(t))
			defer cancel()
			s, err := client.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 2})
			if err != nil {
				t.Fatal(err)
			}
			for off := uint64(2); off < next; off++ {
				res, err := s.Recv()
				if err != nil || res.Record.Offset != off || res.Record.Timestamp != want[off].Timestamp {
					t.Fatalf("ConsumeStream at %d: %v, %v; want timestamp %d", off, res, err, want[off].Timestamp)
				}
			}
			// GetOffsetForTime at its boundaries.
			for _, tc := range []struct {
				name string
				ts   int64
				want uint64
			}{
				{"zero", 0, 0},
				{"negative", -1, 0},
				{"before every record", lo, 0},
				{"the first record's time", want[0].Timestamp, 0},
				{"just after the first batch", want[2].Timestamp + 1, 3},
				{"between the batches", mid, 3},
				{"the last record's time", want[5].Timestamp, firstAtOrAfter(want, want[5].Timestamp)},
				{"after every record", want[5].Timestamp + 1, next},
				{"far ahead", hi + int64(time.Hour), next},
			} {
				res, err := client.GetOffsetForTime(nodetest.Context(t), &logv1.GetOffsetForTimeRequest{Timestamp: tc.ts})
				if err != nil || res.Offset != tc.want {
					t.Errorf("GetOffsetForTime(%s, %d) = %v, %v; want %d", tc.name, tc.ts, res, err, tc.want)
				}
			}
		})
	}
}

// firstAtOrAfter is the offset of the first record with a time at or after ts.
func firstAtOrAfter(recs []*logv1.Record, ts int64) uint64 {
	for _, r := range recs {
		if r.Timestamp >= ts {
			return r.Offset
		}
	}
	return uint64(len(recs))
}

// readAllRecords reads the whole log with ConsumeBatchStream without follow.
func readAllRecords(t *testing.T, client logv1.LogClient) []*logv1.Record {
	t.Helper()
	s, err := client.ConsumeBatchStream(nodetest.Context(t), &logv1.ConsumeBatchRequest{MaxBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*logv1.Record
	for {
		res, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatalf("ConsumeBatchStream: %v", err)
		}
		recs = append(recs, res.Records...)
	}
}
