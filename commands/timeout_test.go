package commands

import (
	"context"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// silentLeader is a log.v1 server that says it leads a log of 1,000 records
// and accepts every read without ever sending a record, as a node that
// stopped applying does.
type silentLeader struct {
	logv1.UnimplementedLogServer
	addr string
}

func (s *silentLeader) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	self := &logv1.Server{Id: "silent", RpcAddr: s.addr, IsLeader: true, IsVoter: true, State: "Leader"}
	return &logv1.GetServersResponse{Servers: []*logv1.Server{self}, Self: self}, nil
}

func (s *silentLeader) GetOffsets(context.Context, *logv1.GetOffsetsRequest) (*logv1.GetOffsetsResponse, error) {
	return &logv1.GetOffsetsResponse{NextOffset: 1000}, nil
}

func (s *silentLeader) ConsumeBatchStream(_ *logv1.ConsumeBatchRequest, stream logv1.Log_ConsumeBatchStreamServer) error {
	<-stream.Context().Done()
	return stream.Context().Err()
}

// gencertIsolated runs gencert in a config directory of the test's own
// (isolateConfig) and returns that directory.
func gencertIsolated(t *testing.T) string {
	t.Helper()
	isolateConfig(t)
	mustRun(t, "", "gencert")
	dir, err := ConfigDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveSilentLeader serves a silentLeader with the node certificate in dir
// on a free loopback port until the test ends or stop is called, and returns
// its address.
func serveSilentLeader(t testing.TB, dir string) (addr string, stop func()) {
	t.Helper()
	ln := nodetest.Listen(t)
	s := &silentLeader{addr: ln.Addr().String()}
	return s.addr, nodetest.Serve(t, ln, s, nodetest.ServerTLS(t, dir))
}

// consume ends within --timeout (plus a second) with exit 3 when the server
// accepts the read and never sends the record.
func TestConsumeEndsWithinTimeout(t *testing.T) {
	dir := gencertIsolated(t)
	addr, stop := serveSilentLeader(t, dir)

	const timeout = time.Second
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, _, err := runIn(t, "", "consume", "--addr", "proglog://"+addr, "--timeout", timeout.String(), "--from", "500", "-n", "1")
		done <- err
	}()
	select {
	case err := <-done:
		elapsed := time.Since(start)
		exitError(t, err, ExitUnavailable, "no server sent offset 500 within 1s")
		if elapsed > timeout+time.Second {
			t.Fatalf("consume took %v with --timeout %v", elapsed, timeout)
		}
		t.Logf("consume ended after %v: %v", elapsed, err)
	case <-time.After(timeout + 5*time.Second):
		stop() // ends the stream, so the consume ends and leaks nothing
		<-done
		t.Fatalf("consume --timeout %v still running after %v", timeout, timeout+5*time.Second)
	}
}
