package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

func value(i int) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

// produce appends v through c, retrying while leadership moves, and returns
// its offset.
func produce(t testing.TB, c logv1.LogClient, v []byte) uint64 {
	t.Helper()
	var off uint64
	retry(t, 20*time.Second, func() error {
		res, err := c.Produce(testCtx(t), &logv1.ProduceRequest{Record: &logv1.Record{Value: v}})
		off = res.GetOffset()
		return err
	})
	return off
}

// consumeAll waits until c serves offsets [from, from+n) and returns them.
func consumeAll(t testing.TB, c logv1.LogClient, from uint64, n int) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// ConsumeStream waits for records not yet applied on a follower.
	s, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: from})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(out) < n {
		res, err := s.Recv()
		if err != nil {
			t.Fatalf("ConsumeStream from %d after %d records: %v", from, len(out), err)
		}
		if want := from + uint64(len(out)); res.Record.Offset != want {
			t.Fatalf("ConsumeStream: got offset %d, want %d", res.Record.Offset, want)
		}
		out = append(out, res.Record.Value)
	}
	return out
}

// produceStream sends vals on one ProduceStream, all before reading any
// response (the server must read ahead for that not to stall), retrying the
// whole stream while leadership moves. It checks that the offsets are dense
// and in request order and returns them.
func produceStream(t testing.TB, c logv1.LogClient, vals [][]byte) []uint64 {
	t.Helper()
	var offs []uint64
	retry(t, 20*time.Second, func() error {
		offs = offs[:0]
		s, err := c.ProduceStream(testCtx(t))
		if err != nil {
			return err
		}
		sendErr := make(chan error, 1)
		go func() {
			for _, v := range vals {
				if err := s.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: v}}); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- s.CloseSend()
		}()
		for {
			res, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				<-sendErr
				return err
			}
			offs = append(offs, res.Offset)
		}
		return <-sendErr
	})
	if len(offs) != len(vals) {
		t.Fatalf("%d responses, want %d", len(offs), len(vals))
	}
	for i := 1; i < len(offs); i++ {
		if offs[i] != offs[i-1]+1 {
			t.Fatalf("response %d: offset %d after %d; a stream's records must be dense and in order", i, offs[i], offs[i-1])
		}
	}
	return offs
}

func TestCluster(t *testing.T) {
	p := newPKI(t)
	nodes := startCluster(t, p, 3, nil)
	ld := leader(t, nodes)
	root := p.client(t, ld.Addr(), certs.RootSubject)

	t.Run("ProduceConsume", func(t *testing.T) {
		off := produce(t, root, []byte("hello"))
		res, err := root.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Record.Value) != "hello" || res.Record.Offset != off {
			t.Fatalf("Consume(%d) = %q at %d", off, res.Record.Value, res.Record.Offset)
		}
	})

	t.Run("ProduceBatch", func(t *testing.T) {
		recs := []*logv1.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: nil}}
		var res *logv1.ProduceBatchResponse
		retry(t, 20*time.Second, func() (err error) {
			res, err = root.ProduceBatch(testCtx(t), &logv1.ProduceBatchRequest{Records: recs})
			return err
		})
		if res.Count != 3 {
			t.Fatalf("count %d, want 3", res.Count)
		}
		got := consumeAll(t, root, res.FirstOffset, 3)
		for i, r := range recs {
			if !bytes.Equal(got[i], r.Value) {
				t.Fatalf("record %d: %q, want %q", i, got[i], r.Value)
			}
		}
	})

	t.Run("ProduceStreamPipelined", func(t *testing.T) {
		// On the leader and on a follower (forwarding), small records and
		// records near the limit (several Raft entries per window).
		for _, size := range []int{0, 6 << 10} {
			for _, target := range []*node.Node{leader(t, nodes), follower(t, nodes)} {
				n := 1000
				if size > 0 {
					n = 200
				}
				vals := make([][]byte, n)
				for i := range vals {
					vals[i] = append(value(i), make([]byte, size)...)
				}
				c := p.client(t, target.Addr(), certs.RootSubject)
				offs := produceStream(t, c, vals)
				got := consumeAll(t, c, offs[0], n)
				for i := range n {
					if !bytes.Equal(got[i], vals[i]) {
						t.Fatalf("offset %d: %q, want %q", offs[i], got[i][:13], vals[i][:13])
					}
				}
			}
		}
	})

	t.Run("ForwardFromFollower", func(t *testing.T) {
		f := follower(t, nodes)
		c := p.client(t, f.Addr(), certs.RootSubject)
		off := produce(t, c, []byte("via follower"))
		for _, n := range nodes {
			got := consumeAll(t, p.client(t, n.Addr(), certs.RootSubject), off, 1)
			if string(got[0]) != "via follower" {
				t.Fatalf("%s: offset %d is %q", n.Addr(), off, got[0])
			}
		}
	})

	t.Run("ConsumeStreamFollows", func(t *testing.T) {
		f := follower(t, nodes)
		c := p.client(t, f.Addr(), certs.RootSubject)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		// Start at the leader's end, which is at or past the follower's.
		start := produce(t, root, []byte("marker")) + 1
		s, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: start})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			off := produce(t, root, value(i))
			res, err := s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if res.Record.Offset != off || !bytes.Equal(res.Record.Value, value(i)) {
				t.Fatalf("got %q at %d, want %q at %d", res.Record.Value, res.Record.Offset, value(i), off)
			}
		}
	})

	t.Run("ConsumeBatchStream", func(t *testing.T) {
		recs := make([]*logv1.Record, 50)
		for i := range recs {
			recs[i] = &logv1.Record{Value: bytes.Repeat([]byte{byte(i)}, 100)}
		}
		var res *logv1.ProduceBatchResponse
		retry(t, 20*time.Second, func() (err error) {
			res, err = root.ProduceBatch(testCtx(t), &logv1.ProduceBatchRequest{Records: recs})
			return err
		})
		first := res.FirstOffset
		read := func(req *logv1.ConsumeBatchRequest) ([]*logv1.Record, int, error) {
			s, err := root.ConsumeBatchStream(testCtx(t), req)
			if err != nil {
				return nil, 0, err
			}
			var out []*logv1.Record
			msgs := 0
			for {
				m, err := s.Recv()
				if err == io.EOF {
					return out, msgs, nil
				}
				if err != nil {
					return out, msgs, err
				}
				msgs++
				out = append(out, m.Records...)
			}
		}
		// Bounded, small budget: several messages, exactly 50 records.
		got, msgs, err := read(&logv1.ConsumeBatchRequest{Offset: first, EndOffset: first + 50, MaxBytes: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 50 || msgs < 5 {
			t.Fatalf("got %d records in %d messages, want 50 in several", len(got), msgs)
		}
		for i, r := range got {
			if r.Offset != first+uint64(i) || !bytes.Equal(r.Value, recs[i].Value) {
				t.Fatalf("record %d at offset %d is wrong", i, r.Offset)
			}
		}
		// A record larger than the budget still comes, alone.
		got, _, err = read(&logv1.ConsumeBatchRequest{Offset: first, EndOffset: first + 2, MaxBytes: 1})
		if err != nil || len(got) != 2 {
			t.Fatalf("budget 1: %d records, %v", len(got), err)
		}
		// Without follow the stream ends at the end of the log; at
		// next_offset it is empty; past it, OutOfRange.
		offs, err := root.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err = read(&logv1.ConsumeBatchRequest{Offset: first})
		if err != nil || uint64(len(got)) != offs.NextOffset-first {
			t.Fatalf("to the end: %d records, %v; want %d", len(got), err, offs.NextOffset-first)
		}
		if got, _, err = read(&logv1.ConsumeBatchRequest{Offset: offs.NextOffset}); err != nil || len(got) != 0 {
			t.Fatalf("at next_offset: %d records, %v", len(got), err)
		}
		_, _, err = read(&logv1.ConsumeBatchRequest{Offset: offs.NextOffset + 1})
		wantCode(t, "past the end without follow", err, codes.OutOfRange)
		// end_offset at or below offset: empty.
		if got, _, err = read(&logv1.ConsumeBatchRequest{Offset: first + 5, EndOffset: first + 5}); err != nil || len(got) != 0 {
			t.Fatalf("empty range: %d records, %v", len(got), err)
		}
		// With follow it waits for new records until end_offset.
		done := make(chan error, 1)
		var followed []*logv1.Record
		go func() {
			var err error
			followed, _, err = read(&logv1.ConsumeBatchRequest{Offset: offs.NextOffset, EndOffset: offs.NextOffset + 3, Follow: true})
			done <- err
		}()
		for i := range 3 {
			produce(t, root, value(i))
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(followed) != 3 || followed[0].Offset != offs.NextOffset {
			t.Fatalf("follow: %d records", len(followed))
		}
	})

	t.Run("GetServers", func(t *testing.T) {
		for _, n := range nodes {
			var res *logv1.GetServersResponse
			retry(t, 10*time.Second, func() (err error) {
				res, err = p.client(t, n.Addr(), certs.RootSubject).GetServers(testCtx(t), &logv1.GetServersRequest{})
				return err
			})
			if len(res.Servers) != 3 {
				t.Fatalf("%d servers, want 3", len(res.Servers))
			}
			leaders := 0
			for _, s := range res.Servers {
				if !s.IsVoter || s.RpcAddr == "" {
					t.Fatalf("server %+v", s)
				}
				if s.IsLeader {
					leaders++
					if s.State != "Leader" {
						t.Fatalf("leader state %q", s.State)
					}
				}
				if s.RpcAddr == n.Addr() && (s.NextOffset == 0 || s.RssBytes == 0 || s.DiskBytes == 0) {
					t.Fatalf("answering server has no next_offset, RSS or disk bytes: %+v", s)
				}
				if s.RpcAddr != n.Addr() && (s.RssBytes != 0 || s.DiskBytes != 0) {
					t.Fatalf("another server's RSS and disk bytes are reported, which the answering one does not know: %+v", s)
				}
			}
			if leaders != 1 {
				t.Fatalf("%d leaders", leaders)
			}
			self, wantState := res.Self, "Follower"
			if self.GetIsLeader() {
				wantState = "Leader"
			}
			if self.GetRpcAddr() != n.Addr() || self.Id == "" || !self.IsVoter || self.NextOffset == 0 || self.State != wantState {
				t.Fatalf("self = %+v, want the answering server %s, a voter with its state and next offset", self, n.Addr())
			}
			// The process holds three nodes, and each data dir at least
			// Raft's zero-filled segment.
			if self.RssBytes < 1<<20 || self.DiskBytes < 1<<20 {
				t.Fatalf("self reports RSS %d and disk %d bytes, want each at least 1 MiB", self.RssBytes, self.DiskBytes)
			}
		}
	})

	t.Run("Security", func(t *testing.T) {
		addr := follower(t, nodes).Addr()
		// Transport-level refusals show as UNAVAILABLE on the client: the
		// connection never carries a call.
		t.Run("Plaintext", func(t *testing.T) {
			_, err := logv1.NewLogClient(dial(t, addr, nil)).GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{})
			wantCode(t, "plaintext", err, codes.Unavailable)
			t.Logf("plaintext refused: %v", err)
		})
		t.Run("NoClientCert", func(t *testing.T) {
			c := logv1.NewLogClient(dial(t, addr, clientTLS(t, p.dir, p.dir, "")))
			_, err := c.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{})
			// The server ends the handshake (TLS alert "certificate
			// required"); depending on timing the client reports the alert
			// or a broken pipe, always as UNAVAILABLE.
			wantCode(t, "no client certificate", err, codes.Unavailable)
			t.Logf("no client certificate refused: %v", err)
		})
		t.Run("OtherCA", func(t *testing.T) {
			c := logv1.NewLogClient(dial(t, addr, clientTLS(t, p.otherDir, p.dir, certs.RootSubject)))
			_, err := c.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{})
			wantCode(t, "certificate of another CA", err, codes.Unavailable)
			t.Logf("other CA refused: %v", err)
		})
		t.Run("ExpiredClientCert", func(t *testing.T) {
			// A certificate from the right CA whose validity ended an hour ago.
			cc := certs.DefaultConfig()
			cc.NotBefore = time.Now().Add(-3 * time.Hour)
			cc.LeafValidity = 2 * time.Hour
			ca, err := certs.LoadCA(filepath.Join(p.dir, certs.CACertFileName), filepath.Join(p.dir, certs.CAKeyFileName), cc)
			if err != nil {
				t.Fatal(err)
			}
			kp, err := ca.IssueClient("expired")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := kp.Write(filepath.Join(dir, certs.ClientCertFileName("expired")), filepath.Join(dir, certs.ClientKeyFileName("expired")), false); err != nil {
				t.Fatal(err)
			}
			c := logv1.NewLogClient(dial(t, addr, clientTLS(t, dir, p.dir, "expired")))
			_, err = c.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{})
			wantCode(t, "expired client certificate", err, codes.Unavailable)
			t.Logf("expired certificate refused: %v", err)
		})
		produceReq := &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}
		for _, tc := range []struct {
			subject          string
			produce, consume codes.Code
			offsets, servers codes.Code
		}{
			{certs.NobodySubject, codes.PermissionDenied, codes.PermissionDenied, codes.PermissionDenied, codes.OK},
			{producerSubject, codes.OK, codes.PermissionDenied, codes.PermissionDenied, codes.OK},
			{consumerSubject, codes.PermissionDenied, codes.OK, codes.OK, codes.OK},
		} {
			t.Run(tc.subject, func(t *testing.T) {
				c := p.client(t, addr, tc.subject)
				var err error
				retry(t, 20*time.Second, func() error {
					_, err = c.Produce(testCtx(t), produceReq)
					if status.Code(err) == tc.produce {
						return nil
					}
					return err
				})
				_, err = c.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: 0})
				wantCode(t, "Consume", err, tc.consume)
				s, err := c.ConsumeStream(testCtx(t), &logv1.ConsumeRequest{Offset: 0})
				if err == nil {
					_, err = s.Recv()
				}
				wantCode(t, "ConsumeStream", err, tc.consume)
				ps, err := c.ProduceStream(testCtx(t))
				if err == nil {
					ps.Send(produceReq)
					_, err = ps.Recv()
					ps.CloseSend()
				}
				if tc.produce != codes.OK {
					wantCode(t, "ProduceStream", err, tc.produce)
				}
				_, err = c.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{})
				wantCode(t, "GetOffsets", err, tc.offsets)
				_, err = c.GetOffsetForTime(testCtx(t), &logv1.GetOffsetForTimeRequest{Timestamp: 1})
				wantCode(t, "GetOffsetForTime", err, tc.consume)
				_, err = c.GetServers(testCtx(t), &logv1.GetServersRequest{})
				wantCode(t, "GetServers", err, tc.servers)
			})
		}
		// A node certificate (serverAuth) is how forwarded writes reach the
		// leader: it may write and ask for offsets, and reads records as any
		// subject the ACL names.
		t.Run("NodeCertificate", func(t *testing.T) {
			conf, err := certs.ClientTLSConfig(p.nodeFiles())
			if err != nil {
				t.Fatal(err)
			}
			c := logv1.NewLogClient(dial(t, leader(t, nodes).Addr(), conf))
			retry(t, 20*time.Second, func() error {
				_, err := c.Produce(testCtx(t), produceReq)
				return err
			})
			_, err = c.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: 0})
			wantCode(t, "Consume with the node certificate", err, codes.PermissionDenied)
			// A follower asks the leader for a read index with it.
			if _, err := c.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{}); err != nil {
				t.Fatalf("GetOffsets with the node certificate: %v", err)
			}
		})
		t.Run("HealthNeedsOnlyTLS", func(t *testing.T) {
			h := healthpb.NewHealthClient(dial(t, addr, clientTLS(t, p.dir, p.dir, certs.NobodySubject)))
			if _, err := h.Check(testCtx(t), &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("BadInput", func(t *testing.T) {
		big := &logv1.Record{Value: make([]byte, 8<<10+1)}
		_, err := root.Produce(testCtx(t), &logv1.ProduceRequest{Record: big})
		wantCode(t, "Produce of a record over the limit", err, codes.InvalidArgument)
		_, err = root.ProduceBatch(testCtx(t), &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: []byte("ok")}, big}})
		wantCode(t, "ProduceBatch with a record over the limit", err, codes.InvalidArgument)
		_, err = root.ProduceBatch(testCtx(t), &logv1.ProduceBatchRequest{})
		wantCode(t, "empty ProduceBatch", err, codes.InvalidArgument)
		// Five records at the limit exceed one Raft entry (32 KiB here):
		// refused rather than committed in parts.
		atLimit := &logv1.Record{Value: make([]byte, 8<<10)}
		_, err = root.ProduceBatch(testCtx(t), &logv1.ProduceBatchRequest{Records: []*logv1.Record{atLimit, atLimit, atLimit, atLimit, atLimit}})
		wantCode(t, "ProduceBatch larger than one entry", err, codes.InvalidArgument)
		_, err = root.Produce(testCtx(t), &logv1.ProduceRequest{})
		wantCode(t, "Produce without a record", err, codes.InvalidArgument)
		ps, err := root.ProduceStream(testCtx(t))
		if err == nil {
			ps.Send(&logv1.ProduceRequest{Record: big})
			_, err = ps.Recv()
		}
		wantCode(t, "ProduceStream of a record over the limit", err, codes.InvalidArgument)
		// Bytes that are not a protobuf message: gRPC refuses them before the
		// service sees them (INTERNAL, its code for an undecodable request),
		// and the node goes on serving.
		conn := dial(t, leader(t, nodes).Addr(), clientTLS(t, p.dir, p.dir, certs.RootSubject))
		var out rawMessage
		err = conn.Invoke(testCtx(t), "/log.v1.Log/Produce", rawMessage{0xff, 0xff, 0xff, 0xff}, &out, grpc.ForceCodecV2(rawCodec{}))
		wantCode(t, "malformed Produce", err, codes.Internal)
		if _, err := root.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{}); err != nil {
			t.Fatalf("node unusable after a malformed message: %v", err)
		}
		_, err = root.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: math.MaxUint64})
		wantCode(t, "Consume at 2^64-1", err, codes.OutOfRange)
		if !strings.Contains(status.Convert(err).Message(), "past the end of the log") {
			t.Fatalf("message %q does not say why", status.Convert(err).Message())
		}
	})

	t.Run("CancelConsumeStreamFreesServer", func(t *testing.T) {
		c := p.client(t, follower(t, nodes).Addr(), certs.RootSubject)
		ctx, cancel := context.WithCancel(testCtx(t))
		s, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: math.MaxUint64})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the ConsumeStream handler to start waiting", func() bool {
			return handlers("ConsumeStream") == 1
		})
		cancel()
		if _, err := s.Recv(); status.Code(err) != codes.Canceled {
			t.Fatalf("Recv after cancel: %v", err)
		}
		waitFor(t, 10*time.Second, "the ConsumeStream handler to return", func() bool {
			return handlers("ConsumeStream") == 0
		})
	})

	t.Run("Health", func(t *testing.T) {
		for _, n := range nodes {
			h := healthpb.NewHealthClient(dial(t, n.Addr(), clientTLS(t, p.dir, p.dir, certs.RootSubject)))
			for _, svc := range []string{"", logv1.Log_ServiceDesc.ServiceName} {
				waitFor(t, 10*time.Second, "SERVING on "+n.Addr(), func() bool {
					res, err := h.Check(testCtx(t), &healthpb.HealthCheckRequest{Service: svc})
					return err == nil && res.Status == healthpb.HealthCheckResponse_SERVING
				})
			}
		}
	})
}

// handlers counts the goroutines running the service method name.
func handlers(name string) int {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	return strings.Count(b.String(), "node.(*service)."+name+"(")
}

func TestRetentionOutOfRange(t *testing.T) {
	p := newPKI(t)
	nodes := startCluster(t, p, 1, func(c *node.Config) {
		r := nodetest.Replica(c)
		r.Store.MaxStoreBytes = 16 << 10
		r.Store.MaxRecordBytes = 1 << 10
		r.MaxEntryBytes = 8 << 10
		r.Store.RetainBytes = 32 << 10
	})
	c := p.client(t, nodes[0].Addr(), certs.RootSubject)
	var offs *logv1.GetOffsetsResponse
	for i := 0; ; i++ {
		recs := make([]*logv1.Record, 8)
		for j := range recs {
			recs[j] = &logv1.Record{Value: make([]byte, 1000)}
		}
		retry(t, 20*time.Second, func() error {
			_, err := c.ProduceBatch(testCtx(t), &logv1.ProduceBatchRequest{Records: recs})
			return err
		})
		var err error
		if offs, err = c.GetOffsets(testCtx(t), &logv1.GetOffsetsRequest{}); err != nil {
			t.Fatal(err)
		}
		if offs.LowestOffset > 0 {
			break
		}
		if i > 1000 {
			t.Fatal("retention never dropped a segment")
		}
	}
	_, err := c.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: offs.LowestOffset - 1})
	wantCode(t, "Consume below the lowest offset", err, codes.OutOfRange)
	if _, err := c.Consume(testCtx(t), &logv1.ConsumeRequest{Offset: offs.LowestOffset}); err != nil {
		t.Fatalf("Consume at the lowest offset: %v", err)
	}
	s, err := c.ConsumeStream(testCtx(t), &logv1.ConsumeRequest{Offset: 0})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, "ConsumeStream below the lowest offset", err, codes.OutOfRange)
	bs, err := c.ConsumeBatchStream(testCtx(t), &logv1.ConsumeBatchRequest{Offset: 0, Follow: true})
	if err == nil {
		_, err = bs.Recv()
	}
	wantCode(t, "ConsumeBatchStream below the lowest offset", err, codes.OutOfRange)
}

// TestLeaderCloseLosesNothing closes the leader while a client keeps
// producing through a follower, and checks that a new leader takes over and
// every acknowledged record is on both remaining nodes at its offset.
func TestLeaderCloseLosesNothing(t *testing.T) {
	p := newPKI(t)
	nodes := startCluster(t, p, 3, nil)
	old := leader(t, nodes)
	var rest []*node.Node
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	c := p.client(t, rest[0].Addr(), certs.RootSubject)

	const total = 300
	var (
		mu    sync.Mutex
		acked = map[uint64][]byte{}
	)
	halfway := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; i < total; {
			res, err := c.Produce(testCtx(t), &logv1.ProduceRequest{Record: &logv1.Record{Value: value(i)}})
			if err != nil {
				// Unavailable while the leadership moves: retry (the
				// record may then be in the log twice, which is allowed).
				if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
					done <- err
					return
				}
				continue
			}
			mu.Lock()
			acked[res.Offset] = value(i)
			mu.Unlock()
			if i++; i == total/2 {
				close(halfway)
			}
		}
		done <- nil
	}()
	<-halfway
	if err := old.Close(); err != nil {
		t.Fatalf("Close of the leader: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("producer: %v", err)
	}
	newLeader := leader(t, rest)
	t.Logf("leadership moved from %s to %s", old.Addr(), newLeader.Addr())

	var max uint64
	for off := range acked {
		max = maxU(max, off)
	}
	for _, n := range rest {
		got := consumeAll(t, p.client(t, n.Addr(), certs.RootSubject), 0, int(max+1))
		for off, v := range acked {
			if !bytes.Equal(got[off], v) {
				t.Fatalf("%s: acknowledged offset %d holds %q, want %q", n.Addr(), off, got[off], v)
			}
		}
	}
	if len(acked) != total {
		t.Fatalf("%d acknowledged offsets, want %d distinct", len(acked), total)
	}
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func TestConfigValidate(t *testing.T) {
	p := newPKI(t)
	good := testConfig(t, p, 0)
	if err := good.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	reloader, err := certs.NewReloader(p.nodeFiles(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*node.Config)
		want string
	}{
		{"no data dir", func(c *node.Config) { c.DataDir = "" }, "DataDir"},
		{"no node id", func(c *node.Config) { c.NodeID = "" }, "NodeID"},
		{"bad rpc addr", func(c *node.Config) { c.RPCAddr = "nope" }, "RPCAddr"},
		{"no server tls", func(c *node.Config) { c.ServerTLS = nil }, "ServerTLS"},
		{"no peer tls", func(c *node.Config) { c.PeerTLS = nil }, "PeerTLS"},
		{"server tls twice", func(c *node.Config) { c.ServerCerts = reloader }, "not both"},
		{"peer tls twice", func(c *node.Config) { c.PeerCerts = reloader }, "not both"},
		{"no authorizer", func(c *node.Config) { c.Authorizer = nil }, "Authorizer"},
		{"unroutable advertise", func(c *node.Config) { c.AdvertiseAddr = "0.0.0.0:8400" }, "not routable"},
		{"no logger", func(c *node.Config) { c.Logger = nil }, "Logger"},
		{"bad replica", func(c *node.Config) { nodetest.Replica(c).MaxPendingEntries = 0 }, "MaxPendingEntries"},
		{"bad gossip", func(c *node.Config) { c.Gossip.BindAddr, c.Gossip.RetryJoinInterval = "127.0.0.1:0", 0 }, "RetryJoinInterval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error about %s", err, tc.want)
			}
			if _, err := node.New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
	// Bound to an unspecified address with no AdvertiseAddr: New refuses.
	c := good
	c.RPCAddr = "0.0.0.0:0"
	if _, err := node.New(c); err == nil || !strings.Contains(err.Error(), "not routable") {
		t.Fatalf("New on 0.0.0.0 without AdvertiseAddr: %v", err)
	}
}

// TestCloseEndsStreams closes a node under a waiting ConsumeStream and an
// open ProduceStream: both end with UNAVAILABLE and Close does not wait out
// its graceful-stop bound.
func TestCloseEndsStreams(t *testing.T) {
	p := newPKI(t)
	nodes := startCluster(t, p, 1, func(c *node.Config) { c.GracefulStopTimeout = time.Minute })
	c := p.client(t, nodes[0].Addr(), certs.RootSubject)
	cs, err := c.ConsumeStream(testCtx(t), &logv1.ConsumeRequest{Offset: math.MaxUint64})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.ProduceStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Recv(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the ConsumeStream handler to start waiting", func() bool {
		return handlers("ConsumeStream") == 1
	})
	start := time.Now()
	if err := nodes[0].Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Close took %v: streams did not end", d)
	}
	_, err = cs.Recv()
	wantCode(t, "ConsumeStream after Close", err, codes.Unavailable)
	_, err = ps.Recv()
	wantCode(t, "ProduceStream after Close", err, codes.Unavailable)
	t.Logf("Close took %v", time.Since(start))
}

// rawMessage and rawCodec send bytes as they are, to feed a node messages
// that are not protobuf.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(rawMessage))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*rawMessage) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

func TestPortInUse(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := testConfig(t, p, 0)
	c.RPCAddr = ln.Addr().String()
	if n, err := node.New(c); err == nil {
		n.Close()
		t.Fatal("a node started on a port already in use")
	} else if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("error %q does not name the address", err)
	}
}

// TestBootstrapKeepsAdvertisedName checks that a bootstrapping node is a
// Raft server at its advertised address as written, a host name and not
// what it resolves to: joining nodes are added by name, and a restarted
// container keeps its name but not its IP address.
func TestBootstrapKeepsAdvertisedName(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	c := testConfig(t, p, 0)
	c.RPCAddr = net.JoinHostPort("127.0.0.1", port)
	c.AdvertiseAddr = net.JoinHostPort("localhost", port)
	n := startNode(t, c)
	res, err := p.client(t, c.RPCAddr, certs.RootSubject).GetServers(testCtx(t), &logv1.GetServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Servers) != 1 || res.Servers[0].RpcAddr != c.AdvertiseAddr || n.Addr() != c.AdvertiseAddr {
		t.Fatalf("servers %v, node address %s; want the one server at %s", res.Servers, n.Addr(), c.AdvertiseAddr)
	}
}
