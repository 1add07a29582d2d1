package raftfsm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// refusingFollower serves Raft RPCs on loopback and answers every
// AppendEntries with Success=false, echoing the request's PrevLogEntry in
// LastLog so a caller can tell whose response it read.
func refusingFollower(t *testing.T) raft.ServerAddress {
	t.Helper()
	trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trans.Close() }) // after the answering goroutine stops
	answerAppendEntries(t, trans, func(req *raft.AppendEntriesRequest) *raft.AppendEntriesResponse {
		return &raft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry, Success: false}
	})
	return trans.LocalAddr()
}

// within runs f and fails the test if it does not return within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// TestPipelineDoesNotWedgeAfterRefusal plays Raft's side of pipelined
// replication the way raft.pipelineReplicate and pipelineDecode do: after the
// follower refuses an append, the decoder stops reading responses while the
// sender may still send before it notices. With raft.NetworkTransport's own
// pipeline the second send after the refusal parks forever (and so does Raft's
// Shutdown, which waits for that goroutine).
func TestPipelineDoesNotWedgeAfterRefusal(t *testing.T) {
	follower := refusingFollower(t)
	inner, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	trans := &Transport{NetworkTransport: inner, peers: newPeers(slog.New(slog.DiscardHandler))}
	t.Cleanup(func() {
		trans.CloseStreams() // the follower serves each pooled connection until it closes
		trans.Close()
	})

	p, err := trans.AppendEntriesPipeline("follower", follower)
	if err != nil {
		t.Fatal(err)
	}
	send := func(prev uint64) {
		t.Helper()
		req := &raft.AppendEntriesRequest{Term: 1, PrevLogEntry: prev}
		within(t, 5*time.Second, "pipelined AppendEntries", func() {
			if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
				t.Errorf("AppendEntries(prev %d): %v", prev, err)
			}
		})
	}

	send(1)
	var first raft.AppendFuture
	within(t, 5*time.Second, "the first response", func() { first = <-p.Consumer() })
	if first.Response().Success {
		t.Fatal("the follower accepted an append it must refuse")
	}
	// Raft's decoder has returned; its sender sends a few more before it sees.
	for prev := uint64(2); prev <= 4; prev++ {
		send(prev)
	}
	within(t, 5*time.Second, "closing the pipeline", func() { p.Close() })

	// The connection went back to the pool: the next plain RPC on it must read
	// its own response, not one the pipeline left behind.
	for prev := uint64(100); prev < 103; prev++ {
		var resp raft.AppendEntriesResponse
		within(t, 5*time.Second, "a plain AppendEntries", func() {
			if err := trans.AppendEntries("follower", follower, &raft.AppendEntriesRequest{Term: 1, PrevLogEntry: prev}, &resp); err != nil {
				t.Errorf("AppendEntries: %v", err)
			}
		})
		if resp.LastLog != prev {
			t.Fatalf("a plain RPC read a stale pipelined response: got the answer to prev %d, want %d", resp.LastLog, prev)
		}
	}
}

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
	var closeErr error
	within(t, 10*time.Second, "Close of a replica whose Raft hangs", func() {
		closeErr = l0.Close()
	})
	close(stuck.release) // let the parked goroutines end before the leak check
	if !errors.Is(closeErr, ErrShutdownTimeout) {
		t.Fatalf("Close = %v, want ErrShutdownTimeout", closeErr)
	}
	t.Logf("Close returned after %v: %v", time.Since(start).Round(time.Millisecond), closeErr)
}
