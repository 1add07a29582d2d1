// Package replica is what a node sees of its replica of the log: the Log it
// appends to and reads from, the Config that opens one for an Identity, and
// the records, servers, statistics and errors a Log answers with.
//
// raftfsm implements it on Raft and the local log of package logstore; a node
// depends on this package and on raftfsm/transport, not on raftfsm or on the
// storage below it, so what the node sees is fixed here, in one place, and
// how records are stored can change under it.
package replica

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/raftfsm/transport"
)

// Identity is what makes a replica this one and no other: where it keeps its
// state, its name in the cluster, how peers reach it and where it logs. Its
// owner (the node) decides it; Config is the tuning, the same on every
// replica.
type Identity struct {
	// Dir holds everything the replica keeps: raft/ (Raft's log and stable
	// store), snapshots/, log/ (the records) and scratch directories.
	Dir string
	// NodeID names this server in the Raft configuration; it must be unique
	// in the cluster and stable across restarts.
	NodeID string
	// Bootstrap makes a new cluster with this server as its only voter when Dir
	// holds no Raft state yet. A server with state never bootstraps again.
	Bootstrap bool
	// Transport carries Raft's RPCs: a transport.Transport over a
	// StreamLayer on the node's shared port in production,
	// raft.NewInmemTransport in tests. The Log closes it.
	Transport raft.Transport
	// Logger receives the replica's logs, Raft's and its local log's.
	Logger *slog.Logger
	// OnSync, when set, is called after each fsync of the local log with
	// its duration and error, for metrics.
	OnSync func(time.Duration, error)
}

// Config is a replica's tuning, which opens the replica an Identity names.
// raftfsm.Config is the one a node runs.
type Config interface {
	// Validate reports the first setting that cannot work.
	Validate() error
	// MaxRecordBytes is the largest record an append takes.
	MaxRecordBytes() int
	// CheckDir reports why dir, a data directory that exists, cannot be
	// opened as a replica's (a half-made one, say), before anything is
	// made in it; nil if it can.
	CheckDir(dir string) error
	// Open opens (or creates) the replica id names and starts it. The Log
	// closes id.Transport; after a failed Open the caller closes it (twice
	// is harmless).
	Open(id Identity) (Log, error)
}

// Log is one server's replica of the log. Its methods are safe for
// concurrent use.
type Log interface {
	// CheckRecord refuses r with an error matching ErrRecordTooLarge when
	// it is over the record limit.
	CheckRecord(r []byte) error
	// AppendAs appends recs as one atomic batch and waits until they are
	// committed and applied here. A producer id and sequence (producer ""
	// for none) make it exactly once: a batch the producer sent before is
	// answered with its original first offset and duplicate true. A batch
	// that does not fit one Raft entry is refused with a
	// *BatchTooLargeError; on a follower a *NotLeaderError.
	AppendAs(ctx context.Context, producer string, seq uint64, recs ...[]byte) (first uint64, duplicate bool, err error)
	// SubmitAs is AppendAs without the wait: the batches one goroutine
	// submits get increasing offsets in the order submitted while several
	// of them are in Raft at once. A batch refused before it was handed
	// over returns an error and no Pending.
	SubmitAs(ctx context.Context, producer string, seq uint64, recs ...[]byte) (Pending, error)
	// NewBatch returns an empty batch bounded by one atomic append and by
	// maxBytes of records.
	NewBatch(maxBytes int) Batch

	// ReadRecords returns records from off on, at least one and then as
	// many as fit maxBytes; a *OutOfRangeError outside the records held.
	ReadRecords(off uint64, maxBytes int) ([]Record, error)
	// OffsetForTime returns the offset of the first record held here whose
	// time is at or after ts (unix nanoseconds): LowestOffset when ts is at
	// or before every record's time, NextOffset when no record is that
	// recent.
	OffsetForTime(ts int64) (uint64, error)
	// Wait blocks until off has been applied here, ctx ends or the log
	// closes.
	Wait(ctx context.Context, off uint64) error
	// LowestOffset and NextOffset bound the records held here: [lowest,
	// next).
	LowestOffset() uint64
	NextOffset() uint64
	// ReadIndex returns, on the leader, an offset past every record
	// committed before the call, all applied here; a *NotLeaderError on a
	// follower.
	ReadIndex(ctx context.Context) (uint64, error)

	// Join adds a voter, or changes a known one's address; Leave removes
	// one. Both are idempotent and must be called on the leader.
	Join(id, addr string) error
	Leave(id string) error
	// Servers returns the members of the cluster.
	Servers() ([]Server, error)

	// IsLeader reports whether this server leads; State is its Raft state
	// ("Follower", "Candidate", "Leader" or "Shutdown").
	IsLeader() bool
	State() string
	// Leader returns the leader as this server knows it (empty when none)
	// and a channel closed when that changes; WaitForLeader waits for one.
	Leader() (id, addr string, changed <-chan struct{})
	WaitForLeader(ctx context.Context) (id, addr string, err error)
	// CaughtUp reports whether this server has applied every entry it
	// knows to be committed.
	CaughtUp() bool
	// ApplyStatus reports why this server cannot apply committed entries
	// (a full disk, say), nil while it can; changed is closed when that
	// changes.
	ApplyStatus() (changed <-chan struct{}, err error)
	// Stats returns the replica's state, for metrics.
	Stats() Stats

	// Close stops the replica; a leader hands its leadership on first.
	Close() error
}

// Pending is a batch SubmitAs handed over, until its outcome.
type Pending interface {
	// Done is closed once the outcome is known. It stays open if the Log is
	// closed first.
	Done() <-chan struct{}
	// Wait waits for the outcome (see AppendAs). If ctx ends first the
	// records may still be appended.
	Wait(ctx context.Context) (first uint64, duplicate bool, err error)
}

// Batch gathers records for one atomic append.
type Batch interface {
	// Add adds r if the batch is empty or r fits, and reports whether it
	// did.
	Add(r []byte) bool
	// Records returns the records added, in order.
	Records() [][]byte
	// Len returns how many records were added.
	Len() int
}

// Record is a record read with its offset and time: the leader's unix
// nanoseconds when it appended the record, 0 for a record written before
// times were stored.
type Record struct {
	Offset uint64
	Time   int64
	Value  []byte
}

// Server is one member of the cluster.
type Server struct {
	ID       string
	Address  string
	IsLeader bool
	IsVoter  bool
}

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
	Store StoreStats
	// Snapshots counts the snapshots this server took and installed.
	Snapshots SnapshotStats
	// Followers is, on the leader with the node's network transport, each
	// follower's replication as the leader sees it; nil elsewhere.
	Followers []transport.FollowerStats
}

// StoreStats is the local log's size and position.
type StoreStats struct {
	// Segments is the number of segment files, the active one included,
	// and Bytes their size.
	Segments int
	Bytes    int64
	// LowestOffset and NextOffset bound the records held: [Lowest, Next).
	LowestOffset, NextOffset uint64
	// DroppedSegments counts the segments retention dropped since start.
	DroppedSegments uint64
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
