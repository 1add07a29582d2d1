package raftfsm

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// stuckTransport is an in-memory transport whose pipelined appends, once
// armed, park until released: a stand-in for any replication goroutine that
// never returns.
type stuckTransport struct {
	*raft.InmemTransport
	armed   atomic.Bool
	release chan struct{}
}

func (s *stuckTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := s.InmemTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &stuckPipeline{AppendPipeline: p, s: s}, nil
}

type stuckPipeline struct {
	raft.AppendPipeline
	s *stuckTransport
}

func (p *stuckPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if p.s.armed.Load() {
		<-p.s.release
		return nil, raft.ErrPipelineShutdown
	}
	return p.AppendPipeline.AppendEntries(args, resp)
}

// TestCloseIsBoundedWhenRaftHangs: a Raft that never finishes shutting down
// must not keep Close (and so the process) from returning.
func TestCloseIsBoundedWhenRaftHangs(t *testing.T) {
	_, t0 := raft.NewInmemTransport("mem-node-0")
	_, t1 := raft.NewInmemTransport("mem-node-1")
	stuck := &stuckTransport{InmemTransport: t0, release: make(chan struct{})}
	t0.Connect(t1.LocalAddr(), t1)
	t1.Connect(t0.LocalAddr(), t0)

	c0 := testConfig()
	c0.ShutdownTransferTimeout = 500 * time.Millisecond
	c0.ShutdownTimeout = time.Second
	l0, err := New(testIdentity(t, filepath.Join(t.TempDir(), nodeID(0)), 0, stuck, true), c0)
	if err != nil {
		t.Fatal(err)
	}
	l1, err := New(testIdentity(t, filepath.Join(t.TempDir(), nodeID(1)), 1, t1, false), testConfig())
	if err != nil {
		l0.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l1.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := l0.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l0.Join(nodeID(1), string(t1.LocalAddr())); err != nil {
		t.Fatal(err)
	}
	appendValues(t, l0, 0, 10)
	if err := l1.Wait(ctx, 9); err != nil {
		t.Fatalf("follower did not apply: %v", err)
	}

	stuck.armed.Store(true)
	// The next append parks Raft's replication goroutine in the pipeline.
	appendCtx, cancelAppend := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelAppend()
	l0.Append(appendCtx, []byte("never replicated"))

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- l0.Close() }()
	var closeErr error
	select {
	case closeErr = <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close of a replica whose Raft hangs did not return within 10s")
	}
	close(stuck.release) // let the parked goroutines end before the leak check
	if !errors.Is(closeErr, replica.ErrShutdownTimeout) {
		t.Fatalf("Close = %v, want replica.ErrShutdownTimeout", closeErr)
	}
	t.Logf("Close returned after %v: %v", time.Since(start).Round(time.Millisecond), closeErr)
}
