package logstore

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
)

// Checkpoint writes a point-in-time copy of the log into dir, which must not
// exist or be empty, and makes it durable. Sealed segments are immutable, so
// they are hard-linked (copied only where links are impossible); of the active
// segment the bytes written so far are copied. The cost is bounded by one
// segment, not by the size of the log. Appends go on while the copy is made.
// Open(dir) opens the copy; Replace installs it.
func (l *Log) Checkpoint(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("logstore: checkpoint: %w", err)
	}
	if names, err := os.ReadDir(dir); err != nil || len(names) > 0 {
		return fmt.Errorf("logstore: checkpoint directory %s must be empty (err %v)", dir, err)
	}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	st := l.cur.Load()
	act := st.segs[len(st.segs)-1]
	// Linking under the lock keeps retention from removing a file meanwhile.
	for _, s := range st.segs[:len(st.segs)-1] {
		for _, p := range []string{s.storePath, s.indexPath, s.timeIndexPath} {
			if err := linkOrCopy(p, filepath.Join(dir, filepath.Base(p))); err != nil {
				l.mu.Unlock()
				return err
			}
		}
	}
	act.acquire()
	l.mu.Unlock()
	defer act.release()

	// What the state published is whole batches; later appends are not copied.
	indexBytes := headerSize + int64(st.next-act.base)*indexEntrySize
	if err := copyPrefix(act.store, filepath.Join(dir, filepath.Base(act.storePath)), st.active); err != nil {
		return err
	}
	if err := copyPrefix(act.index, filepath.Join(dir, filepath.Base(act.indexPath)), indexBytes); err != nil {
		return err
	}
	timeBytes := headerSize + int64(st.times)*timeEntrySize
	if err := copyPrefix(act.timeIndex, filepath.Join(dir, filepath.Base(act.timeIndexPath)), timeBytes); err != nil {
		return err
	}
	return syncDir(dir)
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("logstore: checkpoint: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("logstore: checkpoint: %w", err)
	}
	return copyPrefix(f, dst, fi.Size())
}

// copyPrefix writes the first n bytes of src to a new file dst and syncs it.
func copyPrefix(src *os.File, dst string, n int64) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("logstore: checkpoint: %w", err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(src, 0, n)); err != nil {
		out.Close()
		return fmt.Errorf("logstore: checkpoint copy to %s: %w", dst, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("logstore: checkpoint: sync %s: %w", dst, err)
	}
	return out.Close()
}

// Replace swaps the log's contents for the log in dir (one made by Checkpoint,
// or received from a peer), then removes dir. The log in dir is verified by
// opening it first; its segment files are moved in, replacing all of this
// log's. Readers see the new contents at once, and waiters wake when their
// offset exists in them.
//
// A crash during Replace leaves, after Open, never a mix of old and new: while
// this log's segments are being removed (oldest first), what remains of them,
// its newest records with their Meta, as after retention; after that, a prefix
// of the new log (possibly empty) whose Meta matches its last batch.
func (l *Log) Replace(dir string) error {
	src, err := Open(dir, l.conf)
	if err != nil {
		return fmt.Errorf("logstore: replace from %s: %w", dir, err)
	}
	srcSegs := slices.Clone(src.cur.Load().segs)
	if err := src.Close(); err != nil {
		return fmt.Errorf("logstore: replace from %s: %w", dir, err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return ErrClosed
	case l.err != nil:
		return l.err
	}
	// Readers go on reading the old segments' open files until the new state
	// is published; only then are the old files closed.
	old := l.cur.Load()
	if err := l.unlinkSegments(old.segs); err != nil {
		return l.failLocked(err)
	}
	for _, s := range srcSegs {
		// The store moves first: a store without its indexes is rebuilt on Open.
		for _, p := range []string{s.storePath, s.indexPath, s.timeIndexPath} {
			if err := os.Rename(p, filepath.Join(l.dir, filepath.Base(p))); err != nil {
				return l.failLocked(fmt.Errorf("logstore: replace: %w", err))
			}
		}
	}
	if err := syncDir(l.dir); err != nil {
		return l.failLocked(err)
	}
	st, err := l.load(slog.LevelWarn)
	if err != nil {
		return l.failLocked(err)
	}
	l.publishLocked(st)
	for _, s := range old.segs {
		s.release()
	}
	return os.RemoveAll(dir)
}
