package raftfsm

import (
	"errors"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// Raft compacts its log after a snapshot, and decides when to snapshot by
// counting entries (SnapshotThreshold) and keeps a number of entries behind
// it (TrailingLogs). An entry here carries one record or MaxEntryBytes of
// them, so counts bound nothing: with large entries Raft's log would hold a
// second copy of the whole log. The Log therefore snapshots by bytes:
//
//   - meteredFSM counts the bytes of the entries applied since the last
//     snapshot (entries replayed on start count too: they are in Raft's log);
//   - compactLoop asks Raft for a snapshot once SnapshotBytes were applied and
//     the snapshot is cheap, that is when the active segment, the one part a
//     checkpoint copies, holds at most SnapshotBytes/4 (just after a segment
//     was sealed), or in any case once 4×SnapshotBytes were applied;
//   - before each snapshot TrailingLogs is set, with raft.ReloadConfig, to the
//     number of entries of the average size since the last snapshot that make
//     TrailingBytes (at most Config.TrailingLogs, at least one).
//
// So Raft's log holds about SnapshotBytes..4×SnapshotBytes plus TrailingBytes
// of entries, whatever their size; Raft's own count-driven snapshots still run
// too.

// meteredFSM is the FSM Raft runs: fsm, plus the count of bytes and entries
// applied since the last snapshot. The counters are atomics written on the FSM
// goroutine and reset by compactLoop.
type meteredFSM struct {
	*fsm
	bytes     atomic.Int64
	entries   atomic.Int64
	threshold int64         // SnapshotBytes; 0: never kick
	kick      chan struct{} // cap 1: bytes reached threshold
}

var _ raft.BatchingFSM = (*meteredFSM)(nil)

// Apply implements raft.FSM.
func (m *meteredFSM) Apply(l *raft.Log) interface{} { return m.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM.
func (m *meteredFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	resp := m.fsm.ApplyBatch(logs)
	n := 0
	for _, l := range logs {
		n += len(l.Data)
	}
	m.entries.Add(int64(len(logs)))
	if m.bytes.Add(int64(n)) >= m.threshold && m.threshold > 0 {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return resp
}

// compactLoop takes the snapshots that bound Raft's log by bytes.
func (l *Log) compactLoop() {
	defer l.wg.Done()
	s := l.conf.SnapshotBytes
	for {
		select {
		case <-l.metered.kick:
		case <-l.stop:
			return
		}
		applied := l.metered.bytes.Load()
		if applied < s || (applied < 4*s && l.store.ActiveBytes() > s/4) {
			continue
		}
		if err := l.snapshotByBytes(); err != nil {
			if errors.Is(err, replica.ErrClosed) {
				return
			}
			l.logger.Warn("snapshot to compact Raft's log failed", "err", err, "applied_bytes", applied)
		}
	}
}

// reloadTrailingLogs sets Raft's TrailingLogs, keeping its other reloadable
// settings (a fast election may have lowered the timeouts).
func (l *Log) reloadTrailingLogs(n uint64) error {
	l.tuning.mu.Lock()
	defer l.tuning.mu.Unlock()
	rc := l.raft.ReloadableConfig()
	rc.TrailingLogs = n
	return l.raft.ReloadConfig(rc)
}

// snapshotByBytes sets TrailingLogs for TrailingBytes and takes a snapshot.
func (l *Log) snapshotByBytes() error {
	bytes, entries := l.metered.bytes.Load(), l.metered.entries.Load()
	trailing := l.conf.TrailingLogs
	if avg := bytes / max(entries, 1); avg > 0 {
		trailing = min(trailing, max(1, uint64(l.conf.TrailingBytes/avg)))
	}
	if err := l.reloadTrailingLogs(trailing); err != nil {
		return err
	}
	f := l.raft.Snapshot()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-l.stop:
		// Raft has been shut down (Close stops it first); the future
		// returns when Raft's goroutines have.
		return replica.ErrClosed
	}
	switch {
	case errors.Is(err, raft.ErrRaftShutdown):
		return replica.ErrClosed
	case err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot):
		return err
	}
	// What was applied meanwhile is in the snapshot too; counting it again
	// only brings the next snapshot forward a little.
	l.metered.bytes.Add(-bytes)
	l.metered.entries.Add(-entries)
	select {
	case l.compacted <- struct{}{}:
	default:
	}
	l.logger.Debug("snapshot to compact Raft's log", "applied_bytes", bytes, "entries", entries, "trailing_logs", trailing)
	return nil
}
