package transport

import (
	"io"
	"log/slog"
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
