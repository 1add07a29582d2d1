package raftfsm

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// readMark records a Raft barrier this server completed as leader: every
// entry up to index has been applied to the local log.
type readMark struct {
	term  uint64 // the term the barrier was committed in
	index uint64 // the barrier's Raft index
}

// ReadIndex returns a read index: an offset at or past the end of every record
// committed anywhere in the cluster before the call began, all of which are
// applied to this server's log when it returns. A read of an offset below it
// may wait for the local log (Wait) and is then served; an offset at or past
// it was not written when the call began, so OutOfRange is a linearizable
// answer.
//
// Only the leader can answer. It confirms that it still leads after the call
// began, and that it has applied every committed entry:
//
//   - when, in its current term, it has completed a barrier at or past the
//     commit index, a VerifyLeader round (a heartbeat to a quorum) is enough;
//   - otherwise it commits a Raft barrier. That covers a new leader that has
//     not yet applied entries of earlier terms, and a leader whose own apply
//     trails a follower's (a follower learns of a commit as soon as the
//     leader, and may apply first).
//
// So a read index costs one quorum round trip, and a barrier (one small Raft
// entry) only when something was committed since the last one.
//
// The VerifyLeader round is lease-like, not strict: hashicorp/raft counts a
// heartbeat answer that arrives after the round began, also for a heartbeat
// sent just before (its replication goroutine notifies every round waiting
// then). Such an answer proves the followers took this server as leader a
// heartbeat's round trip before the call; none of them can vote another in
// before its heartbeat timeout runs out, long after. So a leader cut off
// from its quorum may still confirm read indexes with the answers already in
// flight (a heartbeat and an append per follower at most), and then refuses.
//
// On a follower it returns a *NotLeaderError naming the leader, which the
// caller asks instead. If this server loses its leadership during the call it
// returns a *NotLeaderError too. It returns ctx.Err() if ctx ends first.
func (l *Log) ReadIndex(ctx context.Context) (uint64, error) {
	for {
		if l.closed.Load() {
			return 0, replica.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		term := l.raft.CurrentTerm()
		if l.raft.State() != raft.Leader {
			return 0, l.notLeader()
		}
		commit := l.raft.CommitIndex()
		var f raft.Future
		barrier := false
		if m := l.readMark.Load(); m != nil && m.term == term && m.index >= commit {
			f = l.raft.VerifyLeader()
		} else {
			f, barrier = l.raft.Barrier(l.conf.ApplyTimeout), true
		}
		if err := l.await(ctx, f); err != nil {
			return 0, err
		}
		if l.raft.CurrentTerm() != term {
			// Leadership was lost and won again meanwhile: the barrier may
			// be of a later term, and a verification may not cover entries
			// of the terms between. Start again.
			continue
		}
		if barrier {
			if idx, ok := f.(raft.IndexFuture); ok {
				l.markRead(readMark{term: term, index: idx.Index()})
			}
		}
		return l.store.NextOffset(), nil
	}
}

// markRead records m unless a later barrier is recorded already.
func (l *Log) markRead(m readMark) {
	for {
		old := l.readMark.Load()
		if old != nil && (old.term > m.term || old.term == m.term && old.index >= m.index) {
			return
		}
		if l.readMark.CompareAndSwap(old, &m) {
			return
		}
	}
}

// await waits for a Raft future, ctx or Close. A future Raft has not answered
// when ctx ends is left to a goroutine of its own, which returns when Raft
// answers it (at the latest when this server stops leading or shuts down).
func (l *Log) await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.stop:
		return replica.ErrClosed
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout):
		return l.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown):
		return replica.ErrClosed
	}
	return l.mapErr(err)
}
