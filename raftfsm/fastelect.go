package raftfsm

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A replica whose latest Raft configuration has itself as the only voter (a
// single-node cluster, restarted or just bootstrapped) can only ever be led
// by itself, yet Raft starts every server as a follower that waits a
// randomized HeartbeatTimeout (1 to 2 times it) without hearing from a leader
// before it stands for election: a restarted single node would serve a
// second or two late for nothing.
//
// So New lowers HeartbeatTimeout and ElectionTimeout with raft.ReloadConfig
// while such a replica follows. hashicorp/raft v1.7.3 (api.go ReloadConfig,
// raft.go runFollower): a HeartbeatTimeout lower than before notifies the
// follower loop, which fires its heartbeat timer at once; a server that has
// never heard from a leader since it started (lastContact is zero) then
// becomes a candidate, pre-votes and votes for itself, and as the only voter
// leads. The lowered timeouts are what Raft waits for should that first
// election not succeed. Raft requires HeartbeatTimeout ≥ LeaderLeaseTimeout,
// and the lease cannot be reloaded, so the timeouts go down to
// LeaderLeaseTimeout; a configuration with LeaderLeaseTimeout equal to
// HeartbeatTimeout leaves nothing to lower, and such a replica waits as
// before. Once a leader is known (itself, or another server that joined
// meanwhile) restoreTimeouts sets the configured timeouts again.
//
// Only timing changes: Raft elects the replica, under its own rules, as it
// would have one timeout later.

// raftTuning is the state of the replica's changes to Raft's reloadable
// settings at run time.
type raftTuning struct {
	// mu serializes raft.ReloadConfig calls: each reads the reloadable
	// settings, changes some and writes them all back (compactLoop sets
	// TrailingLogs, a fast election the timeouts).
	mu sync.Mutex
	// restored is closed once timeouts lowered for a fast election are set
	// back; nil when New did not lower them. Set by New before it returns.
	restored chan struct{}
}

// loneVoter reports whether id is the only voter of cfg.
func loneVoter(cfg raft.Configuration, id raft.ServerID) bool {
	self := false
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if s.ID != id {
			return false
		}
		self = true
	}
	return self
}

// startFastElection lowers Raft's election timeouts when this replica is the
// only voter of its configuration and they can be lowered, and starts the
// goroutine that restores them once a leader is known. New calls it once the
// loops run; Close joins the goroutine.
func (l *Log) startFastElection() {
	low := l.conf.LeaderLeaseTimeout
	if low >= l.conf.HeartbeatTimeout {
		return
	}
	if !loneVoter(l.raft.GetConfiguration().Configuration(), raft.ServerID(l.id.NodeID)) {
		return
	}
	if err := l.reloadTimeouts(low, low); err != nil {
		l.logger.Warn("cannot lower the election timeouts of a lone voter; it waits for a heartbeat timeout before leading", "err", err)
		return
	}
	l.logger.Debug("lone voter: election timeouts lowered until a leader is known", "timeout", low)
	l.tuning.restored = make(chan struct{})
	l.wg.Add(1)
	go l.restoreTimeouts()
}

// restoreTimeouts sets the configured election timeouts again once a leader
// is known.
func (l *Log) restoreTimeouts() {
	defer l.wg.Done()
	for {
		id, _, changed := l.Leader()
		if id != "" {
			break
		}
		select {
		case <-changed:
		case <-l.stop:
			return
		}
	}
	if err := l.reloadTimeouts(l.conf.HeartbeatTimeout, l.conf.ElectionTimeout); err != nil {
		l.logger.Error("cannot restore the election timeouts after a fast election", "err", err)
		return
	}
	l.logger.Debug("election timeouts restored", "heartbeat_timeout", l.conf.HeartbeatTimeout, "election_timeout", l.conf.ElectionTimeout)
	close(l.tuning.restored)
}

// reloadTimeouts sets Raft's HeartbeatTimeout and ElectionTimeout, keeping
// its other reloadable settings (compactLoop changes TrailingLogs).
func (l *Log) reloadTimeouts(heartbeat, election time.Duration) error {
	l.tuning.mu.Lock()
	defer l.tuning.mu.Unlock()
	rc := l.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = heartbeat, election
	return l.raft.ReloadConfig(rc)
}
