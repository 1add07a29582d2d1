package raftfsm

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/logstore"
)

// Config configures one replica of the log. Start from DefaultConfig.
type Config struct {
	// Dir holds everything the replica keeps: raft/ (Raft's log and stable
	// store), snapshots/, log/ (the records) and scratch directories.
	Dir string
	// NodeID names this server in the Raft configuration; it must be unique
	// in the cluster and stable across restarts.
	NodeID string
	// Bootstrap makes a new cluster with this server as its only voter when Dir
	// holds no Raft state yet. A server with state never bootstraps again.
	Bootstrap bool
	// Transport carries Raft's RPCs: NewTransport over a StreamLayer on the
	// node's shared port in production, raft.NewInmemTransport in tests. The
	// Log closes it.
	Transport raft.Transport

	// Raft timing; see raft.Config.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval and SnapshotThreshold decide when Raft snapshots and
	// compacts its log; TrailingLogs entries are kept behind a snapshot.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
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

	// Store configures the local log the records are applied to.
	Store logstore.Config

	Logger *slog.Logger

	// applyFault, when set, fails the FSM's appends for tests (see fsm.fault).
	applyFault func() (err error, written bool)
}

// DefaultConfig returns settings for a LAN cluster.
func DefaultConfig() Config {
	rc := raft.DefaultConfig()
	return Config{
		HeartbeatTimeout:        rc.HeartbeatTimeout,
		ElectionTimeout:         rc.ElectionTimeout,
		LeaderLeaseTimeout:      rc.LeaderLeaseTimeout,
		CommitTimeout:           rc.CommitTimeout,
		SnapshotInterval:        rc.SnapshotInterval,
		SnapshotThreshold:       rc.SnapshotThreshold,
		TrailingLogs:            rc.TrailingLogs,
		SnapshotsRetained:       2,
		MaxEntryBytes:           2 << 20, // a whole record of Store.MaxRecordBytes fits
		MaxPendingEntries:       4,
		ApplyTimeout:            10 * time.Second,
		ShutdownTransferTimeout: 5 * time.Second,
		ShutdownTimeout:         3 * time.Second,
		Store:                   logstore.DefaultConfig(),
		Logger:                  slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("raftfsm: Dir is empty")
	case c.NodeID == "":
		return errors.New("raftfsm: NodeID is empty")
	case c.Transport == nil:
		return errors.New("raftfsm: Transport is nil")
	case c.Logger == nil:
		return errors.New("raftfsm: Logger is nil")
	case c.SnapshotsRetained < 1:
		return fmt.Errorf("raftfsm: SnapshotsRetained %d must be at least 1", c.SnapshotsRetained)
	case c.MaxEntryBytes < entrySize([][]byte{make([]byte, c.Store.MaxRecordBytes)}):
		return fmt.Errorf("raftfsm: MaxEntryBytes %d cannot hold one record of Store.MaxRecordBytes %d", c.MaxEntryBytes, c.Store.MaxRecordBytes)
	case int64(c.MaxEntryBytes) > c.Store.MaxStoreBytes/2:
		return fmt.Errorf("raftfsm: MaxEntryBytes %d must be at most half of Store.MaxStoreBytes %d", c.MaxEntryBytes, c.Store.MaxStoreBytes)
	case c.MaxPendingEntries < 1:
		return fmt.Errorf("raftfsm: MaxPendingEntries %d must be at least 1", c.MaxPendingEntries)
	case c.ApplyTimeout <= 0 || c.ShutdownTransferTimeout <= 0 || c.ShutdownTimeout <= 0:
		return errors.New("raftfsm: ApplyTimeout, ShutdownTransferTimeout and ShutdownTimeout must be positive")
	}
	if err := c.Store.Validate(); err != nil {
		return err
	}
	return raft.ValidateConfig(c.raftConfig())
}

func (c Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
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
