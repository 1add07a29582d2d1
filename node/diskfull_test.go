package node_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node"
)

// A follower whose disk fills up says NOT_SERVING while it cannot apply, and
// once the filesystem is grown catches up and says SERVING again, without a
// restart. Its log directory is a 1 MiB tmpfs, so the test needs root; it is
// skipped elsewhere.
func TestHealthWhileDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	p := newPKI(t)
	const full = "node-2"
	var logDir string
	nodes := startCluster(t, p, 3, func(c *node.Config) {
		if c.NodeID != full {
			return
		}
		logDir = filepath.Join(c.DataDir, "log")
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", logDir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs on %s: %v: %s", logDir, err, out)
		}
		// Registered before startNode's Close, so it runs after it.
		t.Cleanup(func() {
			if out, err := exec.Command("umount", logDir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", logDir, err, out)
			}
		})
	})
	f := nodes[2]
	if f.IsLeader() {
		t.Skip("the node on the tmpfs leads")
	}
	health := healthpb.NewHealthClient(dial(t, f.Addr(), clientTLS(t, p.dir, p.dir, certs.RootSubject)))
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		res, err := health.Check(testCtx(t), &healthpb.HealthCheckRequest{Service: logv1.Log_ServiceDesc.ServiceName})
		if err != nil {
			t.Fatalf("health check of %s: %v", full, err)
		}
		return res.Status
	}
	waitFor(t, 10*time.Second, full+" to be SERVING", func() bool { return status() == healthpb.HealthCheckResponse_SERVING })

	// 1 MiB holds about 2,000 records of 500 bytes; 4,000 overfill it.
	const total = 4000
	lc := p.client(t, leader(t, nodes).Addr(), certs.RootSubject)
	for i := 0; i < total; i += 50 {
		req := &logv1.ProduceBatchRequest{}
		for j := range 50 {
			req.Records = append(req.Records, &logv1.Record{Value: append(value(i+j), make([]byte, 500)...)})
		}
		if res, err := lc.ProduceBatch(testCtx(t), req); err != nil || res.FirstOffset != uint64(i) {
			t.Fatalf("ProduceBatch(%d..) = %v, %v", i, res, err)
		}
	}
	waitFor(t, 10*time.Second, full+" to be NOT_SERVING on a full disk", func() bool {
		return status() == healthpb.HealthCheckResponse_NOT_SERVING
	})
	fc := p.client(t, f.Addr(), certs.RootSubject)
	// GetOffsets answers with the leader's end (a read index); the node's own
	// end is its self in GetServers.
	applied := func() (uint64, error) {
		res, err := fc.GetServers(testCtx(t), &logv1.GetServersRequest{})
		if err != nil {
			return 0, err
		}
		return res.GetSelf().GetNextOffset(), nil
	}
	if next, err := applied(); err != nil || next >= total {
		t.Fatalf("%s applied up to %d, %v; want it behind %d", full, next, err, total)
	}

	if out, err := exec.Command("mount", "-o", "remount,size=16m", logDir).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v: %s", err, out)
	}
	waitFor(t, 15*time.Second, full+" to be SERVING again after the disk was grown", func() bool {
		return status() == healthpb.HealthCheckResponse_SERVING
	})
	waitFor(t, 10*time.Second, full+" to catch up", func() bool {
		next, err := applied()
		return err == nil && next == total
	})
	got := consumeAll(t, fc, total-1, 1)
	if want := append(value(total-1), make([]byte, 500)...); string(got[0]) != string(want) {
		t.Fatalf("%s offset %d = %.20q, want %.20q", full, total-1, got[0], want)
	}
}
