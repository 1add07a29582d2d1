package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// TestFollowerReadsItsOwnWrites produces through a follower and at once
// consumes the offset it got from the same follower: the follower forwarded
// the write to the leader, and must neither answer OutOfRange for it nor
// answer the produce before it has applied the record itself.
func TestFollowerReadsItsOwnWrites(t *testing.T) {
	c, _, _ := startWithClient(t, follower)
	deadline := time.Now().Add(60 * time.Second)
	for i := range 200 {
		if time.Now().After(deadline) {
			t.Fatalf("200 produce-consume rounds took over a minute (at round %d)", i)
		}
		off := produce(t, c, value(i))
		// Produce answered only once the follower held the record.
		self := selfOf(t, c)
		if self.NextOffset <= off {
			t.Fatalf("round %d: produce of offset %d through %s answered before it applied it (its next offset %d)", i, off, self.State, self.NextOffset)
		}
		res, err := c.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: off})
		if err != nil {
			t.Fatalf("round %d: Consume(%d) from the node it was produced through: %v", i, off, err)
		}
		if !bytes.Equal(res.Record.Value, value(i)) || res.Record.Offset != off {
			t.Fatalf("round %d: Consume(%d) = %q at %d, want %q", i, off, res.Record.Value, res.Record.Offset, value(i))
		}
	}
}

// selfOf returns the answering server as it sees itself.
func selfOf(t testing.TB, c logv1.LogClient) *logv1.Server {
	t.Helper()
	res, err := c.GetServers(testCtx(t), &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Self
}

// lagCluster is a 3-node cluster whose followers learn that an entry is
// committed only with the next entry or after CommitTimeout (2 s): right
// after a write on the leader, a follower holds the record but has not
// applied it, deterministically.
func lagCluster(t *testing.T) (p *pki, leaderClient, followerClient logv1.LogClient) {
	t.Helper()
	p = newPKI(t)
	nodes := startCluster(t, p, 3, func(c *node.Config) { nodetest.Replica(c).CommitTimeout = 2 * time.Second })
	ld := leader(t, nodes)
	var f *node.Node
	for _, n := range nodes {
		if n != ld {
			f = n
			break
		}
	}
	return p, p.client(t, ld.Addr(), certs.RootSubject), p.client(t, f.Addr(), certs.RootSubject)
}

// produceUnapplied produces v through lc and returns its offset once fc's
// server is seen not to have applied it yet.
func produceUnapplied(t testing.TB, lc, fc logv1.LogClient, v []byte) uint64 {
	t.Helper()
	for range 10 {
		off := produce(t, lc, v)
		if self := selfOf(t, fc); self.NextOffset <= off && self.State == "Follower" {
			return off
		}
		// The follower applied it already (or leads now): the machine
		// stalled for a commit timeout. Try again.
	}
	t.Fatal("the follower applied every one of 10 records before it could be read: cannot set up a lagging follower")
	return 0
}

// TestFollowerReadWaitsForApply reads from a follower that holds a record the
// leader acknowledged but has not applied it yet: the read waits for it and
// returns it (Consume, ConsumeBatchStream without follow, GetOffsets), while a
// read far past the end still answers OutOfRange at once.
func TestFollowerReadWaitsForApply(t *testing.T) {
	_, lc, fc := lagCluster(t)

	t.Run("Consume", func(t *testing.T) {
		off := produceUnapplied(t, lc, fc, []byte("lagging"))
		res, err := fc.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: off})
		if err != nil {
			t.Fatalf("Consume(%d) on the follower right after the leader acknowledged it: %v", off, err)
		}
		if string(res.Record.Value) != "lagging" {
			t.Fatalf("Consume(%d) = %q", off, res.Record.Value)
		}
	})

	t.Run("FarPastTheEnd", func(t *testing.T) {
		off := produceUnapplied(t, lc, fc, []byte("end"))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := fc.Consume(ctx, &logv1.ConsumeRequest{Offset: off + 1000})
		took := time.Since(start)
		wantCode(t, "Consume far past the end on a follower", err, codes.OutOfRange)
		// The end named is the leader's, not the follower's lagging one.
		if want := fmt.Sprintf("next offset %d", off+1); !strings.Contains(status.Convert(err).Message(), want) {
			t.Fatalf("message %q does not name the leader's end (%s)", status.Convert(err).Message(), want)
		}
		// Well under the 2 s a follower waits to learn of a commit.
		if took > time.Second {
			t.Fatalf("OutOfRange took %v", took)
		}
	})

	t.Run("ConsumeBatchStream", func(t *testing.T) {
		first := produce(t, lc, []byte("batch-0"))
		off := produceUnapplied(t, lc, fc, []byte("batch-1"))
		s, err := fc.ConsumeBatchStream(testCtx(t), &logv1.ConsumeBatchRequest{Offset: first})
		if err != nil {
			t.Fatal(err)
		}
		var got []*logv1.Record
		for {
			m, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("ConsumeBatchStream from %d: %v", first, err)
			}
			got = append(got, m.Records...)
		}
		if len(got) != int(off-first+1) || string(got[len(got)-1].Value) != "batch-1" {
			t.Fatalf("ConsumeBatchStream without follow from %d gave %d records; want %d, the last %q", first, len(got), off-first+1, "batch-1")
		}
		// Starting past the follower's end but below the leader's is no
		// error either.
		off = produceUnapplied(t, lc, fc, []byte("batch-2"))
		s, err = fc.ConsumeBatchStream(testCtx(t), &logv1.ConsumeBatchRequest{Offset: off + 1})
		if err == nil {
			_, err = s.Recv()
		}
		if err != io.EOF {
			t.Fatalf("ConsumeBatchStream at the leader's end (%d), past the follower's: %v, want an empty stream", off+1, err)
		}
	})

	t.Run("GetOffsets", func(t *testing.T) {
		off := produceUnapplied(t, lc, fc, []byte("offsets"))
		res, err := fc.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if res.NextOffset != off+1 {
			t.Fatalf("GetOffsets on the follower: next offset %d, want %d (the record the leader acknowledged)", res.NextOffset, off+1)
		}
	})
}

// TestFollowerReadWithoutLeaderIsUnavailable reads past the end of a follower
// whose peers are all gone: with no leader to confirm where the log ends it
// answers Unavailable within the call's deadline, never OutOfRange. What it
// holds it still serves.
func TestFollowerReadWithoutLeaderIsUnavailable(t *testing.T) {
	c, f, nodes := startWithClient(t, follower)
	off := produce(t, c, []byte("held"))
	// Close the other follower first: closing the leader may hand f the
	// leadership, which it then loses for want of a quorum.
	for _, n := range nodes {
		if n != f && !n.IsLeader() {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range nodes {
		if n != f {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}

	const deadline = 5 * time.Second
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Consume", func(ctx context.Context) error {
			_, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: off + 1})
			return err
		}},
		{"GetOffsets", func(ctx context.Context) error {
			_, err := c.GetOffsets(ctx, &logv1.GetOffsetsRequest{})
			return err
		}},
		{"ConsumeBatchStream", func(ctx context.Context) error {
			s, err := c.ConsumeBatchStream(ctx, &logv1.ConsumeBatchRequest{Offset: off + 1})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := tc.call(ctx)
			took := time.Since(start)
			wantCode(t, tc.name+" past the end with no leader", err, codes.Unavailable)
			if took >= deadline {
				t.Fatalf("Unavailable came after %v, not within the %v deadline", took, deadline)
			}
			t.Logf("%s: %v after %v", tc.name, status.Convert(err).Message(), took)
		})
	}
	res, err := c.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: off})
	if err != nil || string(res.Record.Value) != "held" {
		t.Fatalf("Consume(%d) of a record the follower holds, with no leader: %q, %v", off, res.GetRecord().GetValue(), err)
	}
}

// TestFollowerReadWaitsOutAnElection reads past the end of a follower while
// no leader is known, and a leader is then elected within the call's
// deadline: the read waits for it and succeeds rather than answering
// Unavailable at once (a consume that starts during an election would fail
// otherwise).
func TestFollowerReadWaitsOutAnElection(t *testing.T) {
	c := nodetest.StartCluster(t, 3, nil, nil)
	f := c.Follower(t)
	fc := c.PKI.Client(t, f.Addr(), certs.RootSubject)
	off := produce(t, fc, []byte("before"))
	// The other follower first, then the leader, so that f is left
	// without a leader (as in TestFollowerReadWithoutLeaderIsUnavailable).
	var closed []int
	for _, leading := range []bool{false, true} {
		for i, n := range c.Nodes {
			if n != f && n.IsLeader() == leading {
				c.Close(t, i)
				closed = append(closed, i)
			}
		}
	}
	// f may have been handed the leadership, or still name the old leader:
	// wait until it names none.
	waitFor(t, 10*time.Second, "the follower to know no leader", func() bool {
		res, err := fc.GetServers(testCtx(t), &logv1.GetServersRequest{})
		if err != nil {
			return false
		}
		for _, sv := range res.Servers {
			if sv.IsLeader {
				return false
			}
		}
		return true
	})

	type answer struct {
		res  *logv1.GetOffsetsResponse
		err  error
		took time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		res, err := fc.GetOffsets(ctx, &logv1.GetOffsetsRequest{})
		done <- answer{res, err, time.Since(start)}
	}()
	// With one of them back, f and it make a quorum and elect a leader.
	c.Nodes[closed[0]] = nodetest.StartNode(t, c.Configs[closed[0]])
	a := <-done
	if a.err != nil {
		t.Fatalf("GetOffsets on a follower during an election: %v after %v, want the read index once a leader is elected", a.err, a.took)
	}
	if a.res.NextOffset <= off {
		t.Fatalf("next offset %d, want past %d", a.res.NextOffset, off)
	}
	t.Logf("GetOffsets answered after %v, next offset %d", a.took, a.res.NextOffset)
}

// BenchmarkFollowerConsume measures Consume on a follower of a 3-node
// cluster: of an offset it holds (served from its log at once, as before
// read indexes) and of the offset past the end (OutOfRange after asking the
// leader for a read index). Each call has a 10 s deadline, as a client's
// would.
func BenchmarkFollowerConsume(b *testing.B) {
	c, _, _ := startWithClient(b, follower)
	off := produce(b, c, []byte("x"))
	consume := func(off uint64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
		return err
	}
	b.Run("held", func(b *testing.B) {
		for b.Loop() {
			if err := consume(off); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tail", func(b *testing.B) {
		for b.Loop() {
			if err := consume(off + 1); status.Code(err) != codes.OutOfRange {
				b.Fatalf("Consume past the end: %v", err)
			}
		}
	})
}
