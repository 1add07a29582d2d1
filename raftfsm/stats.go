package raftfsm

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
	"github.com/proglogctl/proglogctl/raftfsm/transport"
)

// snapshotCounters is the FSM's SnapshotStats, updated by the snapshot
// goroutines and read by Stats.
type snapshotCounters struct {
	taken, takeNanos, restored atomic.Uint64
	lastBytes                  atomic.Int64
}

func (c *snapshotCounters) load() replica.SnapshotStats {
	return replica.SnapshotStats{
		Taken:        c.taken.Load(),
		TakeDuration: time.Duration(c.takeNanos.Load()),
		LastBytes:    c.lastBytes.Load(),
		Restored:     c.restored.Load(),
	}
}

// Stats returns the replica's state. It takes no lock that writes wait for.
func (l *Log) Stats() replica.Stats {
	s := replica.Stats{
		State:        l.raft.State().String(),
		Term:         l.raft.CurrentTerm(),
		LastIndex:    l.raft.LastIndex(),
		CommitIndex:  l.raft.CommitIndex(),
		AppliedIndex: l.raft.AppliedIndex(),
		LastContact:  l.raft.LastContact(),
		Store:        replica.StoreStats(l.store.Stats()),
		Snapshots:    l.fsm.snaps.load(),
	}
	if l.raft.State() == raft.Leader {
		s.LastContact = time.Now()
		if t, ok := l.id.Transport.(*transport.Transport); ok {
			if servers, err := l.Servers(); err == nil {
				var ids []string
				for _, srv := range servers {
					if srv.ID != l.id.NodeID {
						ids = append(ids, srv.ID)
					}
				}
				s.Followers = t.FollowerStats(ids, s.LastIndex)
			}
		}
	}
	return s
}
