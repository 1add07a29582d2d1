package commands

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// produceJSON runs produce -o json with args and returns its records.
func produceJSON(t *testing.T, args ...string) ([]producedRecord, string) {
	t.Helper()
	out, errOut, err := runIn(t, "", append([]string{"produce", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("produce %v: %v\n%s", args, err, errOut)
	}
	var recs []producedRecord
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r producedRecord
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("produce -o json printed %q: %v", out, err)
		}
		recs = append(recs, r)
	}
	return recs, errOut
}

// TestProduceKeepsItsProducer: produce runs with one profile share a
// producer id and never reuse a sequence; --producer-id names another; a
// produce that finds the profile's producer in use takes a fresh id.
func TestProduceKeepsItsProducer(t *testing.T) {
	startDev(t, 1)
	first, _ := produceJSON(t, "a", "b")
	if len(first) != 2 || first[0].ProducerID == "" || first[0].Sequence == 0 || first[0].Duplicate || first[0].Durability != "quorum-fsync" {
		t.Fatalf("first produce: %+v", first)
	}
	second, _ := produceJSON(t, "c")
	if second[0].ProducerID != first[0].ProducerID || second[0].Sequence <= first[0].Sequence || second[0].Offset != 2 {
		t.Fatalf("second produce %+v after %+v: want the same producer, a later sequence, offset 2", second[0], first[0])
	}
	other, _ := produceJSON(t, "--producer-id", "my-app", "d")
	if other[0].ProducerID != "my-app" || other[0].Sequence != 1 {
		t.Fatalf("--producer-id my-app: %+v", other[0])
	}
	again, _ := produceJSON(t, "--producer-id", "my-app", "e")
	if again[0].ProducerID != "my-app" || again[0].Sequence != 2 || again[0].Duplicate {
		t.Fatalf("--producer-id my-app again: %+v", again[0])
	}

	// Another produce holds the profile's producer.
	dir, err := ConfigDir()
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, producersDir, devProfile+".lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	busy, errOut := produceJSON(t, "f")
	if busy[0].ProducerID == first[0].ProducerID || busy[0].Sequence != 1 || !strings.Contains(errOut, "another produce is using producer") {
		t.Fatalf("with the producer in use: %+v, stderr %q", busy[0], errOut)
	}
	lock.Close()
	after, _ := produceJSON(t, "g")
	if after[0].ProducerID != first[0].ProducerID || after[0].Sequence <= second[0].Sequence || after[0].Offset != 6 {
		t.Fatalf("after the other produce: %+v", after[0])
	}
}

// lossyLeader stands in for a leader that dies after committing a batch and
// before answering: it says it leads, forwards each ProduceBatch to the real
// cluster, and answers the first one as a lost leadership (UNAVAILABLE,
// outcome unknown) although the cluster appended it.
type lossyLeader struct {
	logv1.UnimplementedLogServer
	addr    string
	cluster logv1.LogClient
	calls   atomic.Int32
}

func (s *lossyLeader) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	self := &logv1.Server{Id: "lossy", RpcAddr: s.addr, IsLeader: true, IsVoter: true, State: "Leader"}
	return &logv1.GetServersResponse{Servers: []*logv1.Server{self}, Self: self}, nil
}

func (s *lossyLeader) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	res, err := s.cluster.ProduceBatch(ctx, req)
	if s.calls.Add(1) == 1 && err == nil {
		return nil, status.Error(codes.Unavailable, "leadership changed before the records were known to commit")
	}
	return res, err
}

// TestProduceRetryDoesNotDuplicate: a batch whose answer was lost with its
// leader is sent again and reported at the offsets it got, once in the log;
// and after the real leader is closed produce goes on with the next
// sequences.
func TestProduceRetryDoesNotDuplicate(t *testing.T) {
	isolateConfig(t)
	c := nodetest.StartCluster(t, 3, nil, nil)
	conn, err := grpc.NewClient("passthrough:///"+c.Leader(t).Addr(), grpc.WithTransportCredentials(credentials.NewTLS(c.PKI.ClientTLS(t, certs.RootSubject))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ln := nodetest.Listen(t)
	stub := &lossyLeader{addr: ln.Addr().String(), cluster: logv1.NewLogClient(conn)}
	nodetest.Serve(t, ln, stub, nodetest.ServerTLS(t, c.PKI.Dir))

	flags := []string{"--config-dir", c.PKI.Dir, "--timeout", "5s"}
	recs, errOut := produceJSON(t, append(flags, "--addr", "proglog://"+stub.addr, "x", "y")...)
	// produce may send x and y in one batch or in two; either way the first
	// batch is sent twice and reported as the duplicate it was, once.
	batches := map[uint64]bool{}
	for _, r := range recs {
		batches[r.Sequence] = true
	}
	if len(recs) != 2 || recs[0].Offset != 0 || recs[1].Offset != 1 || !recs[0].Duplicate ||
		recs[1].Duplicate != (recs[1].Sequence == recs[0].Sequence) || int(stub.calls.Load()) != len(batches)+1 {
		t.Fatalf("produce through a leader that lost the first answer: %+v after %d calls (stderr %q)", recs, stub.calls.Load(), errOut)
	}
	offsets, err := logv1.NewLogClient(conn).GetOffsets(nodetest.Context(t), &logv1.GetOffsetsRequest{})
	if err != nil || offsets.NextOffset != 2 {
		t.Fatalf("next offset %v, %v: want 2 (the batch once)", offsets, err)
	}

	// The leader goes; the next produce continues on the new one.
	for i, n := range c.Nodes {
		if n.IsLeader() {
			c.Close(t, i)
			break
		}
	}
	var addrs []string
	for _, n := range c.Nodes {
		if !n.IsLeader() {
			addrs = append(addrs, n.Addr())
		}
	}
	next, _ := produceJSON(t, append(flags, "--addr", "proglog://"+strings.Join(addrs, ","), "z")...)
	if next[0].Offset != 2 || next[0].Sequence <= recs[0].Sequence || next[0].ProducerID != recs[0].ProducerID || next[0].Duplicate {
		t.Fatalf("after the leader was closed: %+v (before: %+v)", next[0], recs[0])
	}
}
