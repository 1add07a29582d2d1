package raftfsm

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// Raft's log and stable store, Config.RaftLogStore.
const (
	// RaftLogStoreWAL is hashicorp/raft-wal in raft/wal/: segment files
	// appended to with one fsync per write, whole segments deleted when Raft
	// compacts.
	RaftLogStoreWAL = "wal"
	// RaftLogStoreBolt is hashicorp/raft-boltdb in raft/raft.db: a B+tree
	// that rewrites the previous entry's page with each new one and takes two
	// fsyncs per commit; its file never shrinks.
	RaftLogStoreBolt = "bolt"
)

// On-disk layout of Raft's stores under Identity.Dir/raft; never change.
const (
	boltFile = "raft.db"
	walDir   = "wal"
)

// defaultWALSegmentBytes is the size of a raft-wal segment file
// (preallocated): the unit in which Raft's log grows and shrinks on disk. A
// batch of entries larger than that goes whole into one segment, which is
// sealed after it.
const defaultWALSegmentBytes = 16 << 20

// raftStores is Raft's log store and stable store, one object of either kind.
type raftStores interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// openRaftStores opens Raft's stores in dir (Identity.Dir/raft): of the kind
// the directory already holds, else a new one of the given kind. So a data
// directory keeps the store it was made with, and an upgrade that changes
// the default does not strand an existing replica's Raft log.
func openRaftStores(dir, kind string, walSegmentBytes int, logger *slog.Logger) (raftStores, error) {
	boltPath, walPath := filepath.Join(dir, boltFile), filepath.Join(dir, walDir)
	for _, k := range []struct{ kind, path string }{{RaftLogStoreBolt, boltPath}, {RaftLogStoreWAL, walPath}} {
		if _, err := os.Stat(k.path); err == nil {
			if k.kind != kind {
				logger.Info("Raft's log store is the one the data directory was made with, not the one configured", "in_use", k.kind, "configured", kind)
			}
			kind = k.kind
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("raftfsm: %w", err)
		}
	}
	switch kind {
	case RaftLogStoreBolt:
		s, err := raftboltdb.New(raftboltdb.Options{
			Path:        boltPath,
			BoltOptions: &bbolt.Options{Timeout: time.Second},
		})
		if err != nil {
			return nil, fmt.Errorf("raftfsm: open Raft store in %s (is another process using it?): %w", dir, err)
		}
		return s, nil
	case RaftLogStoreWAL:
		if err := os.MkdirAll(walPath, 0o755); err != nil {
			return nil, fmt.Errorf("raftfsm: %w", err)
		}
		// The WAL's own bolt file (wal-meta.db) takes an exclusive lock; the
		// log directory's flock (logstore) has already turned a second
		// process away by now.
		if walSegmentBytes == 0 {
			walSegmentBytes = defaultWALSegmentBytes
		}
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(walPath, raftwal.WithLogger(newHCLogger(logger, "raft-wal")),
			raftwal.WithSegmentSize(walSegmentBytes), raftwal.WithMetaStore(meta))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("raftfsm: open Raft's WAL in %s: %w", walPath, err), meta.Close())
		}
		return walStores{w, meta}, nil
	}
	return nil, fmt.Errorf("raftfsm: RaftLogStore %q: want %q or %q", kind, RaftLogStoreWAL, RaftLogStoreBolt)
}

// walStores is a raft-wal WAL whose Close also closes its metadata database:
// raft-wal v0.4.0's Close leaves it open, and with it the file lock that the
// next Open of the directory would wait on forever.
type walStores struct {
	*raftwal.WAL
	meta *metadb.BoltMetaDB
}

// Close closes the WAL, then its metadata database.
func (w walStores) Close() error { return errors.Join(w.WAL.Close(), w.meta.Close()) }

// HasRaftState reports whether dir, a replica's data directory (Identity.Dir),
// holds Raft's store of either kind.
func HasRaftState(dir string) (bool, error) {
	for _, p := range []string{filepath.Join(dir, raftDir, boltFile), filepath.Join(dir, raftDir, walDir, metadb.FileName)} {
		_, err := os.Stat(p)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("raftfsm: %w", err)
		}
	}
	return false, nil
}
