package raftfsm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// A snapshot of the FSM is a checkpoint of the local log (logstore.Checkpoint):
// its sealed segments hard-linked, the active one copied, so taking one costs at
// most one segment, not the size of the log; beside the segments, the file
// producersFile holds the exactly-once table (producers.go). The snapshot store keeps it as a
// directory; a follower that needs it receives it as an archive stream.

var checkpointSeq atomic.Uint64

// Snapshot implements raft.FSM. It runs on the FSM goroutine, so the
// checkpoint holds exactly the entries applied so far. The log is synced
// first: Raft compacts its own log once the snapshot is stored, and the
// entries it drops must be durable here.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if f.gaveUp {
		// Raft counts entries applied that are not in the log.
		return nil, errors.New("raftfsm: no snapshot: the FSM gave up applying entries")
	}
	start := time.Now()
	if err := f.log.Sync(); err != nil {
		return nil, err
	}
	dir := filepath.Join(f.scratch, "checkpoint-"+strconv.FormatUint(checkpointSeq.Add(1), 10))
	if err := f.log.Checkpoint(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := f.prod.writeFile(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &fsmSnapshot{dir: dir, start: start, counters: &f.snaps}, nil
}

type fsmSnapshot struct {
	dir      string
	start    time.Time
	counters *snapshotCounters
}

// Persist implements raft.FSMSnapshot: the checkpoint's files move into our
// snapshot store's sink; any other sink gets them as an archive stream.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	size, err := archiveSize(s.dir)
	if err != nil {
		sink.Cancel()
		return err
	}
	if ss, ok := sink.(*snapshotSink); ok {
		err = ss.adopt(s.dir)
	} else {
		_, err = writeArchive(sink, s.dir)
	}
	if err != nil {
		sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	s.counters.taken.Add(1)
	s.counters.takeNanos.Add(uint64(time.Since(s.start)))
	s.counters.lastBytes.Store(size)
	return nil
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() { os.RemoveAll(s.dir) }

// Restore implements raft.FSM: the log and the producer table are replaced
// by the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	dir := filepath.Join(f.scratch, "restore-"+strconv.FormatUint(checkpointSeq.Add(1), 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("raftfsm: restore: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := readArchive(rc, dir); err != nil {
		return err
	}
	return f.replace(dir)
}

func (f *fsm) replace(dir string) error {
	// Read first: a table that does not load leaves the log as it was.
	prod := newProducers(f.conf)
	hasTable, err := prod.readFile(dir)
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, producersFile)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("raftfsm: restore: %w", err)
	}
	// A log that refuses appends after a failed write refuses Replace too.
	if err := f.log.Recover(); err != nil {
		return err
	}
	if err := f.log.Replace(dir); err != nil {
		return err
	}
	applied, err := appliedIndex(f.log.Meta())
	if err != nil {
		return err
	}
	if !hasTable {
		// A snapshot from before producer tables: no producer is known.
		prod.reset(applied, f.log.NextOffset(), true)
	}
	f.prod = prod
	f.logger.Info("restored the log from a snapshot", "applied_index", applied,
		"lowest_offset", f.log.LowestOffset(), "next_offset", f.log.NextOffset(), "producers", prod.len())
	f.applied = applied
	f.snaps.restored.Add(1)
	f.gaveUp = false // the log is the snapshot's, consistent with Raft again
	return nil
}

// catchUpWithSnapshot restores the newest snapshot when the local log is behind
// it, which only a crash during an earlier restore leaves: Raft no longer has
// the entries in between, and it does not restore snapshots on start itself.
// Otherwise it loads the producer table from the newest snapshot: Raft
// replays the entries after the snapshot, which bring it up to date (without
// a snapshot Raft replays its whole log into an empty table).
func (f *fsm) catchUpWithSnapshot(store *snapshotStore) error {
	metas, err := store.List()
	if err != nil || len(metas) == 0 {
		return err
	}
	if metas[0].Index <= f.applied {
		has, err := f.prod.readFile(store.filesDir(metas[0].ID))
		switch {
		case err != nil:
			return err
		case !has:
			// A snapshot from before producer tables: the offsets of
			// the entries replayed after it are unknown.
			f.prod.reset(metas[0].Index, 0, false)
		}
		// The table may be at an index below the snapshot's: Raft counts
		// entries it never hands the FSM (barriers, no-ops), which leave
		// the table as it is.
		return nil
	}
	f.logger.Warn("the local log is behind the newest snapshot; restoring it", "applied_index", f.applied, "snapshot_index", metas[0].Index)
	_, rc, err := store.Open(metas[0].ID)
	if err != nil {
		return err
	}
	return f.Restore(rc)
}
