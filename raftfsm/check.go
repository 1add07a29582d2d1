package raftfsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/proglogctl/proglogctl/logstore"
)

// ErrInUse: another process has the replica's Raft store open.
var ErrInUse = errors.New("raftfsm: the Raft store is in use by another process (is a node running on this directory?)")

// A replica's data directory (Identity.Dir); on-disk layout, never change.
const (
	raftDir     = "raft"
	raftDBFile  = "raft.db"
	logDir      = "log"
	snapshotDir = "snapshots"
)

// Buckets and keys of raft-boltdb and hashicorp/raft, read by Check.
var (
	boltLogsBucket = []byte("logs")
	boltConfBucket = []byte("conf")
	keyCurrentTerm = []byte("CurrentTerm")
)

// IsReplicaDir reports whether dir looks like a replica's data directory: it
// holds raft/ and log/.
func IsReplicaDir(dir string) bool {
	for _, d := range []string{raftDir, logDir} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// RaftState is a replica's Raft state as its files hold it.
type RaftState struct {
	// FirstIndex and LastIndex bound the entries in Raft's log store (both 0
	// when it holds none: everything is in a snapshot).
	FirstIndex, LastIndex uint64
	// CurrentTerm is the term the server last knew.
	CurrentTerm uint64
	// CommandsAfter is how many entries of records Raft's log holds past
	// the index the log has applied (other entries, such as a new leader's
	// no-op and read barriers, are applied without a trace in the log).
	CommandsAfter int
	// Snapshot is the newest completed snapshot (nil if none), Snapshots how
	// many there are and Unfinished how many .tmp directories a crash left
	// (removed when the node starts).
	Snapshot   *SnapshotInfo
	Snapshots  int
	Unfinished int
}

// SnapshotInfo names one snapshot.
type SnapshotInfo struct {
	ID          string
	Index, Term uint64
}

// CheckReport is what Check found in a replica's data directory.
type CheckReport struct {
	Dir  string
	Log  *logstore.Report
	Raft RaftState
	// Applied is the last Raft index applied to the log (its metadata).
	Applied uint64
	// Problems are inconsistencies between the log and Raft's state that a
	// restart does not resolve; Notes are states worth telling that a
	// restart resolves.
	Problems []string
	Notes    []string
}

// Check verifies a replica's data directory offline: the log with
// logstore.Check (o says what it may repair; it fails with logstore.ErrLocked
// while a node has the log open), Raft's store opened read-only (failing
// with ErrInUse when it is held for longer than boltTimeout), the snapshots'
// metadata, and the log's applied index against Raft's indexes.
func Check(dir string, o logstore.CheckOptions, boltTimeout time.Duration) (*CheckReport, error) {
	r := &CheckReport{Dir: dir}
	var err error
	if r.Log, err = logstore.Check(filepath.Join(dir, logDir), o); err != nil {
		return r, err
	}
	applied, merr := appliedIndex(r.Log.Meta)
	if r.Raft, err = readRaftState(dir, boltTimeout, applied); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return r, err
		}
		r.Problems = append(r.Problems, fmt.Sprintf("%s is missing: the node has no Raft state", raftDir))
	}
	if merr != nil {
		r.Problems = append(r.Problems, merr.Error())
		return r, nil
	}
	r.Applied = applied
	if r.Log.Corrupt() {
		r.Notes = append(r.Notes, fmt.Sprintf("the log is corrupt: applied index %d is that of its last batch before the corrupt data", applied))
	}
	p, n := r.Raft.compare(r.Applied)
	r.Problems, r.Notes = append(r.Problems, p...), append(r.Notes, n...)
	return r, nil
}

// readRaftState reads Raft's bolt store without writing to it, counts the
// entries of records past applied, and lists the snapshots.
func readRaftState(dir string, boltTimeout time.Duration, applied uint64) (RaftState, error) {
	var s RaftState
	for kind, sub := range map[string]string{RaftLogStoreWAL: walDir, RaftLogStoreSegments: segmentsDir} {
		if _, err := os.Stat(filepath.Join(dir, raftDir, sub)); err == nil {
			return readStoreState(dir, kind, applied)
		}
	}
	path := filepath.Join(dir, raftDir, raftDBFile)
	if _, err := os.Stat(path); err != nil {
		return s, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: boltTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return s, fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if err != nil {
		return s, fmt.Errorf("raftfsm: open %s: %w", path, err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		logs, conf := tx.Bucket(boltLogsBucket), tx.Bucket(boltConfBucket)
		if logs == nil || conf == nil {
			return fmt.Errorf("raftfsm: %s is not a Raft store (no %q or %q bucket)", path, boltLogsBucket, boltConfBucket)
		}
		c := logs.Cursor()
		if k, _ := c.First(); len(k) == 8 {
			s.FirstIndex = binary.BigEndian.Uint64(k)
		}
		if k, _ := c.Last(); len(k) == 8 {
			s.LastIndex = binary.BigEndian.Uint64(k)
		}
		if v := conf.Get(keyCurrentTerm); len(v) == 8 {
			s.CurrentTerm = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	db.Close()
	if err != nil {
		return s, err
	}
	if s.CommandsAfter, err = commandsAfter(path, boltTimeout, max(applied+1, s.FirstIndex), s.LastIndex); err != nil {
		return s, err
	}
	return s, s.readSnapshots(filepath.Join(dir, snapshotDir))
}

// readStoreState reads Raft's state from a store of the given kind (wal or
// segments), which has no read-only mode: it is opened as a node opens it,
// which Check does only once logstore.Check has taken the log's lock (no
// node runs on dir).
func readStoreState(dir, kind string, applied uint64) (RaftState, error) {
	var s RaftState
	st, err := openRaftStores(filepath.Join(dir, raftDir), kind, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		return s, err
	}
	defer st.Close()
	wrap := func(err error) error { return fmt.Errorf("raftfsm: Raft's %s store: %w", kind, err) }
	if s.FirstIndex, err = st.FirstIndex(); err != nil {
		return s, wrap(err)
	}
	if s.LastIndex, err = st.LastIndex(); err != nil {
		return s, wrap(err)
	}
	if s.CurrentTerm, err = st.GetUint64(keyCurrentTerm); err != nil && !isNotFound(err) {
		return s, wrap(err)
	}
	if s.CommandsAfter, err = countCommands(st, max(applied+1, s.FirstIndex), s.LastIndex); err != nil {
		return s, wrap(err)
	}
	return s, s.readSnapshots(filepath.Join(dir, snapshotDir))
}

// isNotFound reports whether err is a stable store's "no such key".
func isNotFound(err error) bool {
	return errors.Is(err, raft.ErrLogNotFound) || strings.Contains(err.Error(), "not found")
}

// countCommands counts the command entries from index from to last (at most
// maxEntriesRead of them) in store.
func countCommands(store raft.LogStore, from, last uint64) (int, error) {
	if from > last || from == 0 {
		return 0, nil
	}
	n := 0
	for i := from; i <= last && i < from+maxEntriesRead; i++ {
		var e raft.Log
		if err := store.GetLog(i, &e); err != nil {
			return n, fmt.Errorf("entry %d: %w", i, err)
		}
		if e.Type == raft.LogCommand {
			n++
		}
	}
	return n, nil
}

// maxEntriesRead bounds how many entries commandsAfter decodes.
const maxEntriesRead = 100_000

// commandsAfter counts the command entries from index from to last (at most
// maxEntriesRead of them) in the bolt store at path, opened read-only.
func commandsAfter(path string, boltTimeout time.Duration, from, last uint64) (int, error) {
	if from > last || from == 0 {
		return 0, nil
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: boltTimeout}})
	if errors.Is(err, bbolt.ErrTimeout) {
		return 0, fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if err != nil {
		return 0, fmt.Errorf("raftfsm: open %s: %w", path, err)
	}
	defer store.Close()
	n, err := countCommands(store, from, last)
	if err != nil {
		return n, fmt.Errorf("raftfsm: %s: %w", path, err)
	}
	return n, nil
}

// readSnapshots reads the meta.json of every completed snapshot in dir.
func (s *RaftState) readSnapshots(dir string) error {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raftfsm: %w", err)
	}
	for _, de := range des {
		switch {
		case !de.IsDir():
			continue
		case strings.HasSuffix(de.Name(), snapshotTmpSuffix):
			s.Unfinished++
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name(), snapshotMetaFile))
		if err != nil {
			return fmt.Errorf("raftfsm: snapshot %s: %w", de.Name(), err)
		}
		var m raft.SnapshotMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("raftfsm: snapshot %s: %s: %w", de.Name(), snapshotMetaFile, err)
		}
		s.Snapshots++
		info := &SnapshotInfo{ID: de.Name(), Index: m.Index, Term: m.Term}
		if s.Snapshot == nil || slices.Compare([]uint64{info.Term, info.Index}, []uint64{s.Snapshot.Term, s.Snapshot.Index}) > 0 {
			s.Snapshot = info
		}
	}
	return nil
}

// compare judges the log's applied index against Raft's state.
func (s RaftState) compare(applied uint64) (problems, notes []string) {
	var snap uint64
	if s.Snapshot != nil {
		snap = s.Snapshot.Index
	}
	switch {
	case applied > max(s.LastIndex, snap):
		problems = append(problems, fmt.Sprintf("the log has applied Raft index %d, past Raft's last index %d and newest snapshot %d: Raft's state is older than the log's", applied, s.LastIndex, snap))
	case applied < snap:
		notes = append(notes, fmt.Sprintf("the log (applied index %d) is behind the newest snapshot (index %d): the node restores the snapshot when it starts", applied, snap))
	case s.FirstIndex > 0 && applied+1 < s.FirstIndex:
		problems = append(problems, fmt.Sprintf("Raft entries %d to %d, which the log has not applied, are neither in Raft's log (first index %d) nor in a snapshot (index %d)", applied+1, s.FirstIndex-1, s.FirstIndex, snap))
	}
	if s.CommandsAfter > 0 {
		entries := "entries"
		if s.CommandsAfter == 1 {
			entries = "entry"
		}
		notes = append(notes, fmt.Sprintf("Raft's log holds %d %s of records past the applied index %d: the node applies them when it starts, once they are known to be committed", s.CommandsAfter, entries, applied))
	}
	return problems, notes
}
