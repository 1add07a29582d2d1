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

	"github.com/proglogctl/proglogctl/raftfsm/raftlog"
	"github.com/proglogctl/proglogctl/raftfsm/transport"
)

// Raft's log and stable store, Config.RaftLogStore.
const (
	// RaftLogStoreSegments is raftlog in raft/segments/: segment files of
	// this project's own format, zero-filled when made, so an append is one
	// write and one fdatasync; whole segments deleted when Raft compacts.
	RaftLogStoreSegments = "segments"
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
	boltFile    = "raft.db"
	walDir      = "wal"
	segmentsDir = "segments"
)

// defaultWALSegmentBytes is the size of a raft-wal segment file
// (preallocated): the unit in which Raft's log grows and shrinks on disk. A
// batch of entries larger than that goes whole into one segment, which is
// sealed after it. (raftlog's default is raftlog.DefaultSegmentBytes.)
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
func openRaftStores(dir, kind string, segmentBytes int, logger *slog.Logger) (raftStores, error) {
	boltPath, walPath, segPath := filepath.Join(dir, boltFile), filepath.Join(dir, walDir), filepath.Join(dir, segmentsDir)
	for _, k := range []struct{ kind, path string }{{RaftLogStoreBolt, boltPath}, {RaftLogStoreWAL, walPath}, {RaftLogStoreSegments, segPath}} {
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
	case RaftLogStoreSegments:
		s, err := raftlog.Open(segPath, raftlog.Options{SegmentBytes: int64(segmentBytes), Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("raftfsm: open Raft's log: %w", err)
		}
		return s, nil
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
		if segmentBytes == 0 {
			segmentBytes = defaultWALSegmentBytes
		}
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(walPath, raftwal.WithLogger(transport.NewHCLogger(logger, "raft-wal")),
			raftwal.WithSegmentSize(segmentBytes), raftwal.WithMetaStore(meta))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("raftfsm: open Raft's WAL in %s: %w", walPath, err), meta.Close())
		}
		return walStores{w, meta}, nil
	}
	return nil, fmt.Errorf("raftfsm: RaftLogStore %q: want %s", kind, raftLogStoreKinds)
}

// raftLogStoreKinds names the kinds for errors and usage.
const raftLogStoreKinds = `"segments", "wal" or "bolt"`

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
	for _, p := range []string{filepath.Join(dir, raftDir, boltFile), filepath.Join(dir, raftDir, walDir, metadb.FileName),
		filepath.Join(dir, raftDir, segmentsDir, raftlog.StableFile)} {
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
