package transport

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Transport is Raft's network transport with a pipeline that cannot wedge.
//
// raft.NetworkTransport's pipeline hands every sent request to a decoding
// goroutine, which delivers each response on an unbuffered channel (with the
// default MaxRPCsInFlight). Raft reads that channel from pipelineDecode, which
// returns as soon as a follower answers Success=false or a newer term. If the
// replication loop sends once more before it notices, the decoder parks
// delivering that response, the send parks handing the next request to the
// decoder, and the pipeline's Close (deferred in the parked loop) never runs:
// the leader keeps heartbeating the follower but never replicates to it again,
// and Raft's Shutdown waits for that goroutine forever (hashicorp/raft issue
// 612). Transport keeps pipelining but puts a queue between the decoder and
// Raft, drained by a goroutine of its own, so a decoded response never waits for
// a reader. Close first waits (briefly) for the responses still owed, so the
// connection NetworkTransport returns to its pool carries no stale response that
// a later RPC would read as its own.
//
// It also follows how each peer answers (peers): the leader's view of each
// follower's replication, and one log line when a peer goes down and one when
// it comes back.
type Transport struct {
	*raft.NetworkTransport
	peers *peers
}

var (
	_ raft.Transport      = (*Transport)(nil)
	_ raft.WithClose      = (*Transport)(nil)
	_ raft.WithPreVote    = (*Transport)(nil)
	_ raft.AppendPipeline = (*pipeline)(nil)
)

// AppendEntriesPipeline implements raft.Transport.
func (t *Transport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	pl := newPipeline(p)
	pl.done = t.pipelineResult(id, target)
	return pl, nil
}

// pipelineDrainTimeout bounds how long closing a pipeline waits for the
// responses to requests already sent.
const pipelineDrainTimeout = 2 * time.Second

// pipeline forwards the responses of an inner pipeline through an unbounded
// queue. Raft calls AppendEntries and Close from one goroutine. The forward
// goroutine is the only reader of the inner consumer channel and the only
// writer of out; Close stops and joins it.
type pipeline struct {
	inner    raft.AppendPipeline
	out      chan raft.AppendFuture
	sent     atomic.Uint64 // requests handed to the inner pipeline
	closing  chan struct{} // closed by Close: forward returns once nothing is owed
	stop     chan struct{} // closed by Close after the drain timeout: forward returns
	wg       sync.WaitGroup
	drainFor time.Duration
	// done, when set, is called by forward with each response received.
	done func(raft.AppendFuture)

	closeOnce sync.Once
	closeErr  error
}

func newPipeline(inner raft.AppendPipeline) *pipeline {
	p := &pipeline{
		inner:    inner,
		out:      make(chan raft.AppendFuture),
		closing:  make(chan struct{}),
		stop:     make(chan struct{}),
		drainFor: pipelineDrainTimeout,
	}
	p.wg.Add(1)
	go p.forward()
	return p
}

// forward moves decoded responses from the inner pipeline to out in order,
// never blocking the inner decoder for longer than one channel operation. The
// queue holds at most the requests sent after Raft stopped reading, which Raft
// bounds by closing the pipeline.
func (p *pipeline) forward() {
	defer p.wg.Done()
	in := p.inner.Consumer()
	closing := p.closing
	var queue []raft.AppendFuture
	var received uint64
	for {
		var out chan raft.AppendFuture
		var head raft.AppendFuture
		if len(queue) > 0 {
			out, head = p.out, queue[0]
		}
		select {
		case f := <-in:
			received++
			if p.done != nil {
				p.done(f)
			}
			queue = append(queue, f)
			if closing == nil && received >= p.sent.Load() {
				return
			}
		case out <- head:
			queue[0] = nil
			queue = queue[1:]
		case <-closing:
			if received >= p.sent.Load() {
				return
			}
			closing = nil // keep draining until nothing is owed
		case <-p.stop:
			return
		}
	}
}

// AppendEntries implements raft.AppendPipeline.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	f, err := p.inner.AppendEntries(args, resp)
	if err == nil {
		p.sent.Add(1)
	} else if p.done != nil {
		p.done(failedFuture{args, resp, err})
	}
	return f, err
}

// Consumer implements raft.AppendPipeline.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.out }

// Close implements raft.AppendPipeline: it waits up to drainFor for the
// responses still owed, joins the forward goroutine and closes the inner
// pipeline (which stops its decoder). It is idempotent.
func (p *pipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.closing)
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		timer := time.NewTimer(p.drainFor)
		select {
		case <-done:
		case <-timer.C:
			close(p.stop)
			<-done
		}
		timer.Stop()
		p.closeErr = p.inner.Close()
	})
	return p.closeErr
}

// failedFuture is an AppendFuture for a request that could not be sent.
type failedFuture struct {
	req  *raft.AppendEntriesRequest
	resp *raft.AppendEntriesResponse
	err  error
}

func (f failedFuture) Error() error                          { return f.err }
func (f failedFuture) Start() time.Time                      { return time.Time{} }
func (f failedFuture) Request() *raft.AppendEntriesRequest   { return f.req }
func (f failedFuture) Response() *raft.AppendEntriesResponse { return f.resp }
