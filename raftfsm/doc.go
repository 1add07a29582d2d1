// Package raftfsm is the replicated log: records appended on the leader are
// committed by a quorum with hashicorp/raft, then applied exactly once, at the
// same offsets, to every replica's local logstore.Log, which serves reads.
//
// # Write path
//
//	Append ──► batchLoop ──► raft.Apply (≤ MaxPendingEntries entries in Raft)
//	  callers     packs queued requests          │ BatchApplyCh: many entries
//	  wait        into entries ≤ MaxEntryBytes   ▼ per bolt transaction (fsync)
//	                                       quorum commit
//	completeLoop ◄── futures, in order ◄── fsm.ApplyBatch: one logstore append
//	  answers callers (first offsets)        per entry, carrying its Raft index
//	                                         as metadata (identical segments on
//	                                         every replica)
//
// An entry's data is `kind u8 | count uvarint | (len uvarint | value)*`
// (kind 1), or, for every entry written now, kind 2 with the leader's
// timestamp, a producer id and a sequence before the count (entry.go). An
// entry with a producer id holds that producer's one batch: the FSM answers
// a retried sequence with its original offsets instead of appending it again
// (producers.go), and the producer table is part of every snapshot. The FSM is persistent and idempotent: the applied Raft index is
// stored with the records (logstore metadata), and replayed entries at or below
// it are skipped, so a record is never appended twice whatever is killed when.
// Nor is an entry ever skipped: an append that fails (a full disk) is retried,
// after logstore's Recover, until it works or the replica closes, and
// ApplyStatus reports the failure meanwhile (fsm.go).
//
// # Read index
//
// ReadIndex (readindex.go) gives, on the leader, an offset past every record
// committed before the call, all applied locally: a VerifyLeader round when a
// barrier of the current term at or past the commit index has completed,
// else a Raft barrier. Followers get a *NotLeaderError and ask the leader.
//
// # Snapshots
//
// A snapshot is a logstore checkpoint: sealed segments hard-linked, the active
// one copied, so taking one costs at most one segment. The snapshot store keeps
// each as a directory (snapshotstore.go); a follower that needs one receives
// the files as an archive stream (archive.go) and installs it with
// logstore.Replace. Raft does not restore snapshots on start
// (NoSnapshotRestoreOnStart): the FSM resumes from its own state.
//
// # Boundaries
//
// A node sees a replica only through package replica: *Log implements
// replica.Log and Config implements replica.Config, whose Open calls New.
// The errors of the local log are translated at this package's edge
// (storeerr.go), so nothing above names logstore. Raft's network transport,
// sharing the node's RPC port with gRPC under mutual TLS, is package
// raftfsm/transport.
//
// # Concurrency
//
// Append, Join, Leave, Servers and the read methods are safe for concurrent
// use. batchLoop owns entry encoding, completeLoop owns answering requests,
// observeLoop publishes leader changes; Close stops all three. Raft calls the
// FSM from its own goroutine (see fsm.go).
package raftfsm
