package raftfsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/logstore"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// validateIdentity reports the first field of id that is missing.
func validateIdentity(id replica.Identity) error {
	switch {
	case id.Dir == "":
		return errors.New("raftfsm: Identity.Dir is empty")
	case id.NodeID == "":
		return errors.New("raftfsm: Identity.NodeID is empty")
	case id.Transport == nil:
		return errors.New("raftfsm: Identity.Transport is nil")
	case id.Logger == nil:
		return errors.New("raftfsm: Identity.Logger is nil")
	}
	return nil
}

// Config tunes one replica of the log: Raft timing, snapshots, entries and
// the local log. Start from DefaultConfig.
type Config struct {
	// Raft timing; see raft.Config.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval and SnapshotThreshold decide when Raft snapshots and
	// compacts its log by its count of entries; TrailingLogs is the most
	// entries kept behind a snapshot.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotBytes makes the replica snapshot, and Raft compact its log, by
	// the bytes of entries applied since the last snapshot: once
	// SnapshotBytes were applied and the active segment holds at most a
	// quarter of that (a snapshot copies only the active segment), or in any
	// case after 4×SnapshotBytes. 0 leaves snapshots to the counts above.
	SnapshotBytes int64
	// TrailingBytes is about how many bytes of entries Raft keeps behind a
	// snapshot taken for SnapshotBytes (never more than TrailingLogs
	// entries), so a follower that lags by less catches up from the log
	// rather than by receiving a snapshot, which is the whole local log.
	TrailingBytes int64
	// RaftLogStore is Raft's log and stable store for a new data directory:
	// RaftLogStoreSegments, RaftLogStoreWAL or RaftLogStoreBolt. A data
	// directory that holds one keeps it, whatever this says.
	RaftLogStore string
	// RaftSegmentBytes is the size of a segment file of Raft's log store
	// (segments or wal): the unit in which it grows, is zero-filled, and
	// is deleted when Raft compacts. 0 is the store's default (8 MiB for
	// segments, 16 MiB for wal).
	RaftSegmentBytes int
	// LogCacheBytes bounds the data of the newest entries kept in memory in
	// front of Raft's log store (they are what Raft reads back when it
	// replicates and applies); 0 disables the cache.
	LogCacheBytes int
	// SnapshotsRetained is how many snapshots are kept on disk.
	SnapshotsRetained int

	// MaxEntryBytes bounds the data of one Raft entry: concurrent appends are
	// coalesced into entries up to this size, and larger batches are split.
	MaxEntryBytes int
	// MaxPendingEntries is how many entries of appends may be in Raft at
	// once; requests arriving meanwhile are packed into the next entries.
	MaxPendingEntries int
	// ApplyTimeout bounds how long an append waits to be enqueued in Raft.
	ApplyTimeout time.Duration
	// ShutdownTransferTimeout bounds the leadership transfer on Close.
	ShutdownTransferTimeout time.Duration
	// ShutdownTimeout bounds how long Close waits for Raft to stop.
	ShutdownTimeout time.Duration

	// Exactly-once produce (producers.go): per producer id, the last
	// ProducerWindow batches are remembered (a retry of any of them is
	// answered with its original offsets), for at most MaxProducers
	// producers, each until it has not appended for ProducerMaxAge by the
	// leaders' clocks. Every server of a cluster must have the same
	// values: the table is part of the replicated state.
	ProducerWindow int
	MaxProducers   int
	ProducerMaxAge time.Duration

	// Store configures the local log the records are applied to. It logs
	// to Identity.Logger.
	Store logstore.Config

	// applyFault, when set, fails the FSM's appends for tests (see fsm.fault).
	applyFault func() (err error, written bool)
}

// DefaultConfig returns settings for a LAN cluster.
func DefaultConfig() Config {
	rc := raft.DefaultConfig()
	return Config{
		// Half of Raft's defaults (1 s, 1 s, 500 ms): a follower notices a
		// dead leader after 0.5–1 s rather than 1–2 s (see docs/DESIGN.md).
		HeartbeatTimeout:        500 * time.Millisecond,
		ElectionTimeout:         500 * time.Millisecond,
		LeaderLeaseTimeout:      250 * time.Millisecond,
		CommitTimeout:           rc.CommitTimeout,
		SnapshotInterval:        rc.SnapshotInterval,
		SnapshotThreshold:       rc.SnapshotThreshold,
		TrailingLogs:            rc.TrailingLogs,
		SnapshotBytes:           32 << 20,
		TrailingBytes:           16 << 20,
		LogCacheBytes:           8 << 20,
		RaftLogStore:            RaftLogStoreSegments, // see docs/DESIGN.md
		SnapshotsRetained:       2,
		MaxEntryBytes:           2 << 20, // a whole record of Store.MaxRecordBytes fits
		MaxPendingEntries:       4,
		ApplyTimeout:            10 * time.Second,
		ShutdownTransferTimeout: 5 * time.Second,
		ShutdownTimeout:         3 * time.Second,
		ProducerWindow:          32,
		MaxProducers:            100_000,
		ProducerMaxAge:          7 * 24 * time.Hour,
		Store:                   logstore.DefaultConfig(),
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.SnapshotsRetained < 1:
		return fmt.Errorf("raftfsm: SnapshotsRetained %d must be at least 1", c.SnapshotsRetained)
	case c.MaxEntryBytes < entrySize([][]byte{make([]byte, c.Store.MaxRecordBytes)}):
		return fmt.Errorf("raftfsm: MaxEntryBytes %d cannot hold one record of Store.MaxRecordBytes %d", c.MaxEntryBytes, c.Store.MaxRecordBytes)
	case int64(c.MaxEntryBytes) > c.Store.MaxStoreBytes/2:
		return fmt.Errorf("raftfsm: MaxEntryBytes %d must be at most half of Store.MaxStoreBytes %d", c.MaxEntryBytes, c.Store.MaxStoreBytes)
	case c.SnapshotBytes < 0 || c.TrailingBytes < 0 || c.LogCacheBytes < 0:
		return errors.New("raftfsm: SnapshotBytes, TrailingBytes and LogCacheBytes must not be negative")
	case c.SnapshotBytes > 0 && c.TrailingBytes < int64(c.MaxEntryBytes):
		return fmt.Errorf("raftfsm: TrailingBytes %d must hold at least one entry of MaxEntryBytes %d", c.TrailingBytes, c.MaxEntryBytes)
	case c.RaftSegmentBytes < 0:
		return fmt.Errorf("raftfsm: RaftSegmentBytes %d must not be negative", c.RaftSegmentBytes)
	case c.RaftLogStore != RaftLogStoreSegments && c.RaftLogStore != RaftLogStoreWAL && c.RaftLogStore != RaftLogStoreBolt:
		return fmt.Errorf("raftfsm: RaftLogStore %q: want %s", c.RaftLogStore, raftLogStoreKinds)
	case c.MaxPendingEntries < 1:
		return fmt.Errorf("raftfsm: MaxPendingEntries %d must be at least 1", c.MaxPendingEntries)
	case c.ProducerWindow < 1 || c.MaxProducers < 1 || c.ProducerMaxAge <= 0:
		return errors.New("raftfsm: ProducerWindow, MaxProducers and ProducerMaxAge must be positive")
	case c.ApplyTimeout <= 0 || c.ShutdownTransferTimeout <= 0 || c.ShutdownTimeout <= 0:
		return errors.New("raftfsm: ApplyTimeout, ShutdownTransferTimeout and ShutdownTimeout must be positive")
	}
	if err := c.Store.Validate(); err != nil {
		return err
	}
	// Raft checks the timing; the server ID it also wants is the Identity's.
	return raft.ValidateConfig(c.raftConfig("id"))
}

// MaxRecordBytes is the largest record the replica takes: Store's limit.
func (c Config) MaxRecordBytes() int { return c.Store.MaxRecordBytes }

// CheckDir refuses a data directory that holds a log without Raft state:
// raft/ was removed, or a first start was killed between creating the log
// and the Raft store. Raft would start from nothing while the log holds what
// it applied before, so entries would be skipped as applied.
func (c Config) CheckDir(dir string) error {
	has, err := HasRaftState(dir)
	if err != nil {
		return err
	}
	if !has {
		if entries, err := os.ReadDir(filepath.Join(dir, logDir)); err == nil && len(entries) > 0 {
			return fmt.Errorf("raftfsm: %s is half made: it holds a log (log/) but no Raft state (raft/), as after a first start that was killed or a raft/ that was removed; move the directory away and start again (a member of a cluster gets its records back from the others)", dir)
		}
	}
	return nil
}

// Open opens the replica id names with New.
func (c Config) Open(id replica.Identity) (replica.Log, error) {
	l, err := New(id, c)
	if err != nil {
		return nil, err
	}
	return l, nil
}

var _ replica.Config = Config{}

// raftConfig is Raft's configuration for c on the server id.
func (c Config) raftConfig(id string) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	// Many applies queued at once are written to Raft's log in one go.
	rc.BatchApplyCh = true
	// The FSM is persistent: it resumes from its own state, and New restores a
	// snapshot itself only when that state is behind it.
	rc.NoSnapshotRestoreOnStart = true
	return rc
}
