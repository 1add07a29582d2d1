package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// batches returns n batches of sequences 1..n, batch i holding i%7+1
// records "seq/index".
func batches(n int) []discovery.Batch {
	var out []discovery.Batch
	for seq := uint64(1); seq <= uint64(n); seq++ {
		b := discovery.Batch{Seq: seq}
		for i := range int(seq%7) + 1 {
			b.Records = append(b.Records, fmt.Appendf(nil, "%d/%d", seq, i))
		}
		out = append(out, b)
	}
	return out
}

// produceAll runs ProduceBatches over bs, calling before(i) as batch i is
// handed over, and returns the outcomes in the order done got them.
func produceAll(t *testing.T, cl *discovery.Client, producer string, bs []discovery.Batch, before func(i int)) ([]discovery.Batch, []discovery.Produced) {
	t.Helper()
	i := 0
	next := func(ctx context.Context) (discovery.Batch, bool, error) {
		if i == len(bs) {
			return discovery.Batch{}, false, nil
		}
		if before != nil {
			before(i)
		}
		i++
		return bs[i-1], true, nil
	}
	var got []discovery.Batch
	var res []discovery.Produced
	done := func(b discovery.Batch, r discovery.Produced) error {
		got, res = append(got, b), append(res, r)
		return nil
	}
	if err := cl.ProduceBatches(nodetest.Context(t), producer, 4, 10*time.Second, next, done); err != nil {
		t.Fatalf("ProduceBatches: %v (after %d batches answered)", err, len(got))
	}
	return got, res
}

// checkInOrder fails t unless every batch of bs was answered once, in order,
// at offsets that follow each other from 0, and the log holds their records
// there, on the server at addr.
func checkInOrder(t *testing.T, c *cluster, addr string, bs, got []discovery.Batch, res []discovery.Produced) {
	t.Helper()
	if len(got) != len(bs) {
		t.Fatalf("%d batches answered, want %d", len(got), len(bs))
	}
	client := c.PKI.Client(t, addr, certs.RootSubject)
	var next uint64
	for i, b := range got {
		if b.Seq != bs[i].Seq || res[i].First != next {
			t.Fatalf("answer %d: sequence %d at %d, want sequence %d at %d", i, b.Seq, res[i].First, bs[i].Seq, next)
		}
		for j, want := range b.Records {
			var r *logv1.ConsumeResponse
			nodetest.Retry(t, nodetest.ClusterTimeout, func() (err error) {
				r, err = client.Consume(nodetest.Context(t), &logv1.ConsumeRequest{Offset: next + uint64(j)})
				return err
			})
			if string(r.Record.Value) != string(want) {
				t.Fatalf("offset %d holds %q, want %q", next+uint64(j), r.Record.Value, want)
			}
		}
		next += uint64(len(b.Records))
	}
}

// ProduceBatches keeps several batches in flight on one stream and answers
// them in order, at offsets in the order sent.
func TestProduceBatchesInOrder(t *testing.T) {
	c := startCluster(t, 3)
	var s served
	cl := c.dial(t, c.target(), &s)
	bs := batches(60)
	got, res := produceAll(t, cl, "in-order", bs, nil)
	checkInOrder(t, c, c.Leader(t).Addr(), bs, got, res)
	if n := s.take("/log.v1.Log/ProduceBatchStream"); len(n) == 0 {
		t.Fatalf("no ProduceBatchStream was opened: %v", n)
	}
}

// When the leader goes away with batches in flight, those are sent again
// with their sequences and the rest go on a stream to the new leader: every
// batch is in the log once, in order.
func TestProduceBatchesAcrossALeaderChange(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.dial(t, c.target(), nil)
	bs := batches(80)
	var survivor string
	got, res := produceAll(t, cl, "across", bs, func(i int) {
		if i != 40 {
			return
		}
		for j, n := range c.Nodes {
			if n.IsLeader() {
				survivor = c.Nodes[(j+1)%3].Addr()
				c.Close(t, j)
				return
			}
		}
	})
	checkInOrder(t, c, survivor, bs, got, res)
}

// A server without ProduceBatchStream (an older version) gets the batches
// one by one, with ProduceBatch.
func TestProduceBatchesWithoutTheStream(t *testing.T) {
	c := startCluster(t, 1)
	ln := nodetest.Listen(t)
	old := &oldServer{addr: ln.Addr().String(), cluster: c.PKI.Client(t, c.Nodes[0].Addr(), certs.RootSubject)}
	nodetest.Serve(t, ln, old, nodetest.ServerTLS(t, c.PKI.Dir))
	cl := c.dial(t, discovery.Scheme+"://"+old.addr, nil)
	bs := batches(10)
	got, res := produceAll(t, cl, "old", bs, nil)
	checkInOrder(t, c, c.Nodes[0].Addr(), bs, got, res)
}

// oldServer leads a cluster of itself and passes ProduceBatch on to a real
// node; it has no ProduceBatchStream.
type oldServer struct {
	logv1.UnimplementedLogServer
	addr    string
	cluster logv1.LogClient
}

func (s *oldServer) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	self := &logv1.Server{Id: "old", RpcAddr: s.addr, IsVoter: true, IsLeader: true, State: "Leader"}
	return &logv1.GetServersResponse{Self: self, Servers: []*logv1.Server{self}}, nil
}

func (s *oldServer) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	return s.cluster.ProduceBatch(ctx, req)
}

// A batch the cluster refuses (a record over the limit) ends ProduceBatches
// with a *BatchError naming it, after the batches before it were answered.
func TestProduceBatchesRefusal(t *testing.T) {
	c := startCluster(t, 1)
	cl := c.dial(t, c.target(), nil)
	bs := batches(5)
	bs[2].Records = append(bs[2].Records, make([]byte, 64<<10)) // over the test nodes' 8 KiB
	i := 0
	next := func(context.Context) (discovery.Batch, bool, error) {
		if i == len(bs) {
			return discovery.Batch{}, false, nil
		}
		i++
		return bs[i-1], true, nil
	}
	var answered []uint64
	err := cl.ProduceBatches(nodetest.Context(t), "refused", 4, 10*time.Second, next, func(b discovery.Batch, _ discovery.Produced) error {
		answered = append(answered, b.Seq)
		return nil
	})
	var be *discovery.BatchError
	if !errors.As(err, &be) || be.Seq != 3 || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ProduceBatches = %v, want a *BatchError for sequence 3 with INVALID_ARGUMENT", err)
	}
	if len(answered) != 2 || answered[0] != 1 || answered[1] != 2 {
		t.Fatalf("answered %v before the refusal, want [1 2]", answered)
	}
	t.Logf("%v (%d later batches sent)", err, be.Later)
}
