package raftfsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/logstore"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// fsm applies committed entries to the local log.
//
// It is persistent, so it must be idempotent: the Raft index of the last entry
// it applied is stored as the log's metadata, atomically with the records, and
// entries at or below it are skipped. Raft replays its log on every start; a
// record is never appended twice.
//
// A committed entry is never skipped: when an append fails (the disk is full,
// an I/O error), ApplyBatch retries the same records after a backoff, calling
// logstore's Recover before each try, until they are in the log or the
// replica closes. Raft waits meanwhile (it counts nothing applied), and
// ApplyStatus reports the failure so the node says it is not serving.
//
// It also keeps the exactly-once table of producers (producers.go), which
// decides whether an entry with a producer id is appended, answered as a
// duplicate or refused; entries replayed at or below the applied index are
// not appended again but still update the table.
//
// Raft calls ApplyBatch, Apply, Snapshot and Restore from one goroutine, which
// owns applied, recs, prod and gaveUp; Persist and Release of a snapshot run
// concurrently with it. status is read by any goroutine.
type fsm struct {
	log     *logstore.Log
	logger  *slog.Logger
	conf    Config // the producer table's limits
	scratch string // directory for checkpoints and restores
	applied uint64 // Raft index of the last entry applied
	recs    [][]byte
	prod    *producers

	// stop is closed by Log.Close before Raft shuts down: an append that
	// keeps failing gives up, so Raft's shutdown does not wait for a disk.
	stop <-chan struct{}
	// gaveUp is set when an append gave up (on stop) or found the log lost
	// entries it had applied: Raft counts those entries applied, so the FSM
	// must apply nothing after them and refuse snapshots until restarted.
	gaveUp bool
	status atomic.Pointer[applyStatus]
	// snaps counts snapshots taken and restored.
	snaps snapshotCounters
	// fault, when set, is asked before each append: a non-nil error fails it,
	// after the records reached the log when written is true. Tests inject
	// write failures with it (Config.applyFault).
	fault func() (err error, written bool)
}

// applyStatus is why the FSM cannot apply committed entries (nil err: it can),
// published with a channel closed when it changes.
type applyStatus struct {
	err     error
	changed chan struct{}
}

// Bounds of the wait before the FSM retries a failed append; it doubles with
// each failure in a row.
const (
	applyRetryMin = 100 * time.Millisecond
	applyRetryMax = 5 * time.Second
)

// ErrLostApplied: recovering the local log after a failed write lost entries
// this server had already applied. Raft will not send them again; a restart,
// which replays Raft's log, repairs it.
var ErrLostApplied = errors.New("raftfsm: the local log lost applied entries while recovering from a failed write; restart the node")

var _ raft.BatchingFSM = (*fsm)(nil)

// applyResult is the response of an applied entry: the offset of its first
// record (for a duplicate, the first offset the batch got when it was
// appended), or why it could not be applied.
type applyResult struct {
	first     uint64
	duplicate bool
	err       error
}

// appliedIndex decodes the Raft index stored as the log's metadata.
func appliedIndex(meta []byte) (uint64, error) {
	switch len(meta) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(meta), nil
	}
	return 0, fmt.Errorf("raftfsm: log metadata is %d bytes, want 8", len(meta))
}

func indexMeta(index uint64) []byte { return binary.BigEndian.AppendUint64(nil, index) }

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: each entry is one logstore append
// carrying its Raft index, an entry without records (a barrier, a
// configuration change) a metadata-only append. One append per entry, never
// per batch of entries, makes every replica's segments identical: how many
// entries Raft hands over at once differs from server to server, the entries
// do not, and a segment is sealed between appends. So retention, which drops
// whole segments, moves the lowest offset the same way on every server.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	resp := make([]interface{}, len(logs))
	for i, l := range logs {
		e, derr := f.decode(l)
		if l.Index <= f.applied {
			if !f.prod.replay(l.Index, e) {
				f.logger.Warn("a replayed batch of a producer could not be remembered (the snapshot has no producer table); a retry of it would be appended again",
					"index", l.Index, "producer", e.producer, "sequence", e.seq)
			}
			clear(e.recs)
			resp[i] = applyResult{err: errReplayed}
			continue
		}
		if f.gaveUp {
			// Given up: Raft is shutting down, or only a restart helps.
			clear(e.recs)
			resp[i] = applyResult{err: replica.ErrClosed}
			continue
		}
		dup, serr := f.prod.check(e.producer, e.seq, len(e.recs))
		recs := e.recs
		if dup != nil || serr != nil {
			recs = nil // the entry still advances the applied index
		}
		first, err := f.append(l.Index, e.ts, recs)
		clear(e.recs) // do not pin entry data
		switch {
		case err != nil:
			f.gaveUp = true
			resp[i] = applyResult{err: err}
			continue
		case derr != nil:
			resp[i] = applyResult{err: derr}
		case serr != nil:
			resp[i] = applyResult{err: serr}
		case dup != nil:
			resp[i] = applyResult{first: dup.first, duplicate: true}
		case l.Type == raft.LogCommand:
			resp[i] = applyResult{first: first}
		}
		f.prod.applied(l.Index, e, first, len(recs), f.log.NextOffset())
		f.applied = l.Index
	}
	return resp
}

// decode decodes a command entry's data (with f.recs as the records'
// storage); other entries, and a malformed one, decode as an entry without
// records.
func (f *fsm) decode(l *raft.Log) (entry, error) {
	if l.Type != raft.LogCommand {
		return entry{recs: f.recs[:0]}, nil
	}
	e, err := decodeEntry(f.recs[:0], l.Data)
	f.recs = e.recs[:0]
	if err != nil {
		// Every replica decodes the same bytes the same way, so all skip it.
		f.logger.Error("skipping a malformed entry", "index", l.Index, "err", err)
		return entry{recs: f.recs[:0]}, err
	}
	return e, nil
}

// append appends recs to the log as the entries up to index, and does not
// give up while the replica runs: a failed append is retried after a backoff
// (applyRetryMin, doubling up to applyRetryMax), each time after Recover. A
// failed append may have reached the log whole before failing; the applied
// index Recover finds in the log's metadata says so, and then the records are
// not appended again. It returns an error only when it gives up: ErrClosed
// once the replica closes, ErrLostApplied (after waiting for Close) when
// recovery lost entries applied before.
//
// ts is the entry's leader timestamp (unix nanoseconds, 0: none).
func (f *fsm) append(index uint64, ts int64, recs [][]byte) (uint64, error) {
	want := f.log.NextOffset()
	first, err := f.appendOnce(index, ts, recs)
	if err == nil {
		return first, nil
	}
	start := time.Now()
	f.setStatus(err)
	f.logger.Error("cannot apply committed entries to the local log; retrying until it works, not serving meanwhile",
		"first_index", f.applied+1, "last_index", index, "next_offset", want, "records", len(recs), "err", err)
	backoff := applyRetryMin
	for tries := 1; ; tries++ {
		t := time.NewTimer(backoff)
		select {
		case <-f.stop:
			t.Stop()
			f.logger.Warn("giving up applying committed entries: the replica is closing", "last_index", index, "err", err)
			return 0, replica.ErrClosed
		case <-t.C:
		}
		backoff = min(2*backoff, applyRetryMax)
		if err = f.log.Recover(); err != nil {
			if errors.Is(err, logstore.ErrClosed) {
				return 0, replica.ErrClosed
			}
			f.logger.Debug("the local log cannot recover yet", "tries", tries, "err", err)
			continue
		}
		applied, merr := appliedIndex(f.log.Meta())
		next := f.log.NextOffset()
		switch {
		case merr == nil && applied == index && next == want+uint64(len(recs)):
			first, err = want, nil // the failed append had reached the log whole
		case merr == nil && applied == f.applied && next == want:
			first, err = f.appendOnce(index, ts, recs)
		default:
			err = fmt.Errorf("%w: it holds entries up to index %d (next offset %d), it had applied up to %d (next offset %d); meta: %v",
				ErrLostApplied, applied, next, f.applied, want, merr)
			f.setStatus(err)
			f.logger.Error("cannot apply committed entries to the local log", "err", err)
			<-f.stop
			return 0, err
		}
		if err == nil {
			f.setStatus(nil)
			f.logger.Warn("applying committed entries to the local log again", "after", time.Since(start).Round(time.Millisecond),
				"tries", tries+1, "last_index", index, "next_offset", f.log.NextOffset())
			return first, nil
		}
		f.logger.Debug("append still fails", "tries", tries+1, "err", err)
	}
}

// appendOnce appends recs with index as the log's metadata, each record
// stamped with ts, the entry's leader timestamp (0: an entry without one, a
// kind 1 entry, appended without time), through the test's fault when one is
// set. Every replica appends the same entry with the same ts, and logstore
// raises a ts below the log's latest time to it the same way on each, so the
// replicas' times agree. A retried append stamps the same ts again.
func (f *fsm) appendOnce(index uint64, ts int64, recs [][]byte) (uint64, error) {
	if f.fault != nil {
		if err, written := f.fault(); err != nil {
			if written {
				f.appendLog(index, ts, recs)
			}
			return 0, err
		}
	}
	return f.appendLog(index, ts, recs)
}

func (f *fsm) appendLog(index uint64, ts int64, recs [][]byte) (uint64, error) {
	if ts <= 0 {
		return f.log.AppendWithMeta(indexMeta(index), recs...)
	}
	return f.log.AppendTimed(indexMeta(index), ts, recs...)
}

// setStatus publishes err (nil: applying works) as the FSM's status.
func (f *fsm) setStatus(err error) {
	old := f.status.Swap(&applyStatus{err: err, changed: make(chan struct{})})
	if old != nil {
		close(old.changed)
	}
}

// errReplayed is the response to an entry applied before this start.
var errReplayed = fmt.Errorf("raftfsm: entry already applied")
