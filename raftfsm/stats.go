package raftfsm

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/logstore"
)

// Stats is a replica's state at one moment, for metrics.
type Stats struct {
	// State is the Raft state: "Follower", "Candidate", "Leader" or
	// "Shutdown".
	State string
	// Term is the current Raft term.
	Term uint64
	// LastIndex, CommitIndex and AppliedIndex are the Raft indexes of the
	// last entry in this server's Raft log, of the last it knows committed
	// and of the last applied to the local log.
	LastIndex, CommitIndex, AppliedIndex uint64
	// LastContact is when a follower last heard from the leader (zero if
	// never); a leader reports the time of the call.
	LastContact time.Time
	// Store is the local log's size and position.
	Store logstore.Stats
	// Snapshots counts the snapshots this server took and installed.
	Snapshots SnapshotStats
	// Followers is, on the leader with the node's network transport, each
	// follower's replication as the leader sees it; nil elsewhere.
	Followers []FollowerStats
}

// SnapshotStats counts snapshots since the replica started.
type SnapshotStats struct {
	// Taken counts snapshots persisted, TakeDuration is the time they took
	// in all (checkpoint and persist) and LastBytes the size of the last.
	Taken        uint64
	TakeDuration time.Duration
	LastBytes    int64
	// Restored counts snapshots installed (sent by the leader, or restored
	// on start after a crash during an install).
	Restored uint64
}

// snapshotCounters is the FSM's SnapshotStats, updated by the snapshot
// goroutines and read by Stats.
type snapshotCounters struct {
	taken, takeNanos, restored atomic.Uint64
	lastBytes                  atomic.Int64
}

func (c *snapshotCounters) load() SnapshotStats {
	return SnapshotStats{
		Taken:        c.taken.Load(),
		TakeDuration: time.Duration(c.takeNanos.Load()),
		LastBytes:    c.lastBytes.Load(),
		Restored:     c.restored.Load(),
	}
}

// Stats returns the replica's state. It takes no lock that writes wait for.
func (l *Log) Stats() Stats {
	s := Stats{
		State:        l.raft.State().String(),
		Term:         l.raft.CurrentTerm(),
		LastIndex:    l.raft.LastIndex(),
		CommitIndex:  l.raft.CommitIndex(),
		AppliedIndex: l.raft.AppliedIndex(),
		LastContact:  l.raft.LastContact(),
		Store:        l.store.Stats(),
		Snapshots:    l.fsm.snaps.load(),
	}
	if l.raft.State() == raft.Leader {
		s.LastContact = time.Now()
		if t, ok := l.id.Transport.(*Transport); ok {
			if servers, err := l.Servers(); err == nil {
				var ids []string
				for _, srv := range servers {
					if srv.ID != l.id.NodeID {
						ids = append(ids, srv.ID)
					}
				}
				s.Followers = t.peers.stats(ids, s.LastIndex)
			}
		}
	}
	return s
}

// Retain applies the local log's retention limits now (logstore.Log.Retain):
// the age limit needs it called from time to time on a log that is not being
// written, as sealing a segment is what applies them otherwise.
func (l *Log) Retain() error { return l.store.Retain() }
