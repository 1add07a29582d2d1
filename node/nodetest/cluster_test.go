package nodetest

import (
	"fmt"
	"slices"
	"testing"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
)

// StartCluster starts nodes that agree on a leader; Restart brings a node
// back on the same address with its data, and it catches up on what was
// written while it was down.
func TestStartClusterRestart(t *testing.T) {
	c := StartCluster(t, 3, nil, nil)
	addrs := c.Addrs()
	l := c.Leader(t)
	root := c.PKI.Client(t, l.Addr(), certs.RootSubject)
	produce := func(v string) uint64 {
		t.Helper()
		var off uint64
		Retry(t, ClusterTimeout, func() error {
			res, err := root.Produce(Context(t), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
			off = res.GetOffset()
			return err
		})
		return off
	}
	before := produce("before")
	i := slices.Index(c.Nodes, c.Follower(t))
	c.Close(t, i)
	after := produce("while down")
	c.Restart(t, i)
	if got := c.Addrs(); !slices.Equal(got, addrs) {
		t.Fatalf("addresses after Restart(%d) = %v, want %v", i, got, addrs)
	}
	back := c.PKI.Client(t, c.Nodes[i].Addr(), certs.RootSubject)
	for off, want := range map[uint64]string{before: "before", after: "while down"} {
		var got string
		WaitFor(t, ClusterTimeout, fmt.Sprintf("the restarted node to serve offset %d", off), func() bool {
			res, err := back.Consume(Context(t), &logv1.ConsumeRequest{Offset: off})
			got = string(res.GetRecord().GetValue())
			return err == nil
		})
		if got != want {
			t.Fatalf("restarted %s: offset %d = %q, want %q", NodeID(i), off, got, want)
		}
	}
}
