package raftfsm

// Snapshot store: raft.SnapshotStore whose snapshots are directories of files.
//
//	dir/
//	  2-41873-1718000000000/      a completed snapshot, named term-index-unix ms
//	    meta.json                 raft.SnapshotMeta as JSON; Size = archive bytes
//	    files/                    the snapshot's files (log segments)
//	  2-52210-1718000360000.tmp/  a snapshot being written, or being removed
//	    files/
//
// A directory becomes a snapshot by one rename, after its files and meta.json
// are durable, so a crash leaves either a whole snapshot or a .tmp directory,
// and .tmp directories are removed when the store is opened. The snapshot's
// files live in files/ rather than beside meta.json so that an archive may
// carry a file of any valid name, meta.json included.
//
// Locally a snapshot costs one segment: our FSM's Persist checkpoints the log
// (hard links to sealed segments, a copy of the active one) and hands the
// directory to the sink with adopt. Raft sees a byte stream: Open streams the
// files as an archive (see archive.go) and a sink unpacks an archive written to
// it, which is how a follower receives a snapshot through InstallSnapshot.

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

const (
	snapshotMetaFile  = "meta.json" // on-disk format; never change
	snapshotFilesDir  = "files"     // on-disk format; never change
	snapshotTmpSuffix = ".tmp"      // on-disk format; never change
)

var (
	_ raft.SnapshotStore = (*snapshotStore)(nil)
	_ raft.SnapshotSink  = (*snapshotSink)(nil)
)

var (
	errSnapshotSinkCanceled   = errors.New("raftfsm: snapshot canceled")
	errSnapshotReaderClosed   = errors.New("raftfsm: snapshot reader closed")
	errSnapshotNothingWritten = errors.New("raftfsm: snapshot: nothing was written or adopted")
)

// snapshotStore keeps Raft snapshots as directories under dir (layout above).
//
// Its methods are safe for concurrent use. mu guards readers and serializes
// reaping, so a snapshot that is being streamed by Open is never removed: it is
// reaped when its last reader closes instead. Everything else is the file
// system's: a snapshot directory never changes once it has been renamed into
// place.
type snapshotStore struct {
	dir    string
	retain int
	logger *slog.Logger
	now    func() time.Time // test seam for snapshot ids

	mu      sync.Mutex
	readers map[string]int // open readers per snapshot id
}

// newSnapshotStore opens the snapshot store in dir, creating dir if needed and
// removing unfinished snapshots left by a crash. retain (at least 1) is how
// many completed snapshots are kept; older ones are removed after each
// successful Close of a sink.
func newSnapshotStore(dir string, retain int, logger *slog.Logger) (*snapshotStore, error) {
	if retain < 1 {
		return nil, fmt.Errorf("raftfsm: snapshot store: retain must be at least 1, got %d", retain)
	}
	if logger == nil {
		return nil, errors.New("raftfsm: snapshot store: logger is nil")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("raftfsm: snapshot store: %w", err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("raftfsm: snapshot store: %w", err)
	}
	removed := 0
	for _, de := range des {
		if !de.IsDir() || !strings.HasSuffix(de.Name(), snapshotTmpSuffix) {
			continue
		}
		p := filepath.Join(dir, de.Name())
		if err := os.RemoveAll(p); err != nil {
			return nil, fmt.Errorf("raftfsm: snapshot store: remove unfinished snapshot: %w", err)
		}
		logger.Info("removed unfinished snapshot", "path", p)
		removed++
	}
	if removed > 0 {
		if err := snapshotFsyncDir(dir); err != nil {
			return nil, fmt.Errorf("raftfsm: snapshot store: %w", err)
		}
	}
	return &snapshotStore{
		dir:     dir,
		retain:  retain,
		logger:  logger,
		now:     time.Now,
		readers: make(map[string]int),
	}, nil
}

// filesDir is the directory of the files of the snapshot id.
func (s *snapshotStore) filesDir(id string) string {
	return filepath.Join(s.dir, id, snapshotFilesDir)
}

// Create starts a snapshot of the state at index and term. Only
// raft.SnapshotVersion 1 is supported. The returned sink is a *snapshotSink.
//
// meta.Peers stays empty: it is read only for version 0 snapshots, which this
// store does not support.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("raftfsm: snapshot store: unsupported snapshot version %d", version)
	}
	id := fmt.Sprintf("%d-%d-%d", term, index, s.now().UnixMilli())
	final := filepath.Join(s.dir, id)
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("raftfsm: snapshot store: snapshot %s already exists", id)
	}
	tmp := final + snapshotTmpSuffix
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("raftfsm: snapshot store: create snapshot %s: %w", id, err)
	}
	files := filepath.Join(tmp, snapshotFilesDir)
	if err := os.Mkdir(files, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("raftfsm: snapshot store: create snapshot %s: %w", id, err)
	}
	s.logger.Info("creating snapshot", "id", id, "index", index, "term", term)
	return &snapshotSink{
		store: s,
		meta: raft.SnapshotMeta{
			Version:            version,
			ID:                 id,
			Index:              index,
			Term:               term,
			Configuration:      configuration.Clone(),
			ConfigurationIndex: configurationIndex,
		},
		tmpDir:   tmp,
		filesDir: files,
	}, nil
}

// List returns the completed snapshots, newest first: by term, then index,
// then id. Directories that are not readable snapshots are logged and skipped.
func (s *snapshotStore) List() ([]*raft.SnapshotMeta, error) {
	return s.list()
}

func (s *snapshotStore) list() ([]*raft.SnapshotMeta, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("raftfsm: snapshot store: %w", err)
	}
	var metas []*raft.SnapshotMeta
	for _, de := range des {
		if !de.IsDir() || strings.HasSuffix(de.Name(), snapshotTmpSuffix) {
			continue
		}
		meta, err := s.readMeta(de.Name())
		if err != nil {
			s.logger.Warn("skipping unreadable snapshot", "id", de.Name(), "error", err)
			continue
		}
		metas = append(metas, meta)
	}
	slices.SortFunc(metas, func(a, b *raft.SnapshotMeta) int {
		return -cmp.Or(cmp.Compare(a.Term, b.Term), cmp.Compare(a.Index, b.Index), cmp.Compare(a.ID, b.ID))
	})
	return metas, nil
}

// readMeta reads and checks meta.json of snapshot id.
func (s *snapshotStore) readMeta(id string) (*raft.SnapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, id, snapshotMetaFile))
	if err != nil {
		return nil, err
	}
	meta := new(raft.SnapshotMeta)
	if err := json.Unmarshal(b, meta); err != nil {
		return nil, fmt.Errorf("%s: %w", snapshotMetaFile, err)
	}
	switch {
	case meta.ID != id:
		return nil, fmt.Errorf("%s names snapshot %q", snapshotMetaFile, meta.ID)
	case meta.Version != 1:
		return nil, fmt.Errorf("unsupported snapshot version %d", meta.Version)
	}
	return meta, nil
}

// Open returns the metadata of snapshot id and a reader that streams its files
// as an archive of exactly meta.Size bytes. The archive is produced lazily by a
// goroutine that Close stops and joins, so a reader may be closed before its
// end; it must be closed. The snapshot is not reaped while a reader is open.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") ||
		strings.HasSuffix(id, snapshotTmpSuffix) {
		return nil, nil, fmt.Errorf("raftfsm: snapshot store: open snapshot %q: invalid id", id)
	}
	s.mu.Lock()
	s.readers[id]++ // before reading meta: a concurrent reap either went first or skips id
	s.mu.Unlock()
	meta, err := s.readMeta(id)
	if err != nil {
		s.release(id)
		return nil, nil, fmt.Errorf("raftfsm: snapshot store: open snapshot %s: %w", id, err)
	}
	files := filepath.Join(s.dir, id, snapshotFilesDir)
	pr, pw := io.Pipe()
	rd := &snapshotReader{pr: pr, done: make(chan struct{}), release: func() { s.release(id) }}
	go func() {
		defer close(rd.done)
		n, err := writeArchive(pw, files)
		if err == nil && n != meta.Size {
			err = fmt.Errorf("raftfsm: snapshot store: snapshot %s streamed %d bytes, meta.json says %d", id, n, meta.Size)
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return meta, rd, nil
}

// release forgets one reader of id and reaps what its reading kept.
func (s *snapshotStore) release(id string) {
	s.mu.Lock()
	s.readers[id]--
	last := s.readers[id] == 0
	if last {
		delete(s.readers, id)
	}
	s.mu.Unlock()
	if last {
		if err := s.reap(); err != nil {
			s.logger.Warn("reaping old snapshots failed", "error", err)
		}
	}
}

// reap removes completed snapshots beyond the newest retain, except those being
// read. A snapshot is first renamed to its .tmp name, so a crash halfway
// through removal leaves nothing that looks like a snapshot.
func (s *snapshotStore) reap() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	metas, err := s.list()
	if err != nil {
		return err
	}
	var errs []error
	removed := 0
	for _, m := range metas[min(s.retain, len(metas)):] {
		if s.readers[m.ID] > 0 {
			s.logger.Debug("keeping old snapshot while it is read", "id", m.ID)
			continue
		}
		p := filepath.Join(s.dir, m.ID)
		if err := os.Rename(p, p+snapshotTmpSuffix); err != nil {
			errs = append(errs, fmt.Errorf("raftfsm: snapshot store: reap %s: %w", m.ID, err))
			continue
		}
		removed++
		if err := os.RemoveAll(p + snapshotTmpSuffix); err != nil {
			errs = append(errs, fmt.Errorf("raftfsm: snapshot store: reap %s: %w", m.ID, err))
			continue
		}
		s.logger.Info("removed old snapshot", "id", m.ID)
	}
	if removed > 0 {
		if err := snapshotFsyncDir(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("raftfsm: snapshot store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// snapshotReader streams a snapshot as an archive. Read is for one goroutine;
// Close may be called from any goroutine, any number of times.
type snapshotReader struct {
	pr      *io.PipeReader
	done    chan struct{} // closed when the archiving goroutine has returned
	release func()
	once    sync.Once
}

func (r *snapshotReader) Read(p []byte) (int, error) { return r.pr.Read(p) }

// Close stops the archiving goroutine, waits for it and releases the snapshot.
func (r *snapshotReader) Close() error {
	r.once.Do(func() {
		r.pr.CloseWithError(errSnapshotReaderClosed)
		<-r.done
		r.release()
	})
	return nil
}

// snapshotSinkMode is how a sink receives its files.
type snapshotSinkMode int

const (
	snapshotSinkEmpty     snapshotSinkMode = iota // neither written to nor adopted yet
	snapshotSinkStreaming                         // Write: an archive unpacked on the fly
	snapshotSinkAdopted                           // adopt: files moved in from a directory
)

// snapshotSink receives one snapshot, either as an archive stream (Write, as
// raft's InstallSnapshot and generic FSMs do) or as a directory of files moved
// in by adopt (our FSM's Persist). It is finished by Close or abandoned by
// Cancel.
//
// One goroutine owns a sink and calls all of its methods (raft's snapshot
// goroutine, or its InstallSnapshot handler). The first Write starts the unpack
// goroutine, which owns tmpDir's files until Close or Cancel joins it; with
// adopt no goroutine is ever started.
type snapshotSink struct {
	store    *snapshotStore
	meta     raft.SnapshotMeta
	tmpDir   string // dir/<id>.tmp
	filesDir string // dir/<id>.tmp/files

	mode      snapshotSinkMode
	pw        *io.PipeWriter // streaming: the unpack goroutine reads the other end
	unpacked  chan struct{}  // streaming: closed when the unpack goroutine returns
	unpackErr error          // streaming: readArchive's result, set before unpacked is closed
	received  int64          // streaming: bytes accepted by Write
	adoptErr  error          // adopted: adopt's result

	finished  bool  // Close or Cancel has been called
	finishErr error // what the first Close or Cancel returned
}

// ID returns the snapshot's id, which Open takes once the sink is closed.
func (k *snapshotSink) ID() string { return k.meta.ID }

// Write passes p to the unpacker. It returns the unpack error as soon as the
// stream is found to be malformed.
func (k *snapshotSink) Write(p []byte) (int, error) {
	switch {
	case k.finished:
		return 0, fmt.Errorf("raftfsm: snapshot %s: write after close or cancel", k.meta.ID)
	case k.mode == snapshotSinkAdopted:
		return 0, fmt.Errorf("raftfsm: snapshot %s: write after adopt", k.meta.ID)
	case k.mode == snapshotSinkEmpty:
		k.startUnpack()
	}
	n, err := k.pw.Write(p)
	k.received += int64(n)
	return n, err
}

func (k *snapshotSink) startUnpack() {
	pr, pw := io.Pipe()
	k.mode, k.pw, k.unpacked = snapshotSinkStreaming, pw, make(chan struct{})
	go func() {
		err := readArchive(pr, k.filesDir)
		// On error, writers blocked in Write get err; on success the writer
		// end is already closed.
		pr.CloseWithError(err)
		k.unpackErr = err
		close(k.unpacked)
	}()
}

// adopt moves every file of dir, a directory on the same file system such as
// a checkpoint made by (*logstore.Log).Checkpoint, into the snapshot, leaving
// dir empty. Files are renamed, never copied: a file that cannot be renamed
// (another file system) is an error. Every entry of dir must be a regular file
// with a name an archive can carry. adopt may be called once, and not after
// Write; the sink must still be closed (or canceled, also after an error).
func (k *snapshotSink) adopt(dir string) error {
	switch {
	case k.finished:
		return fmt.Errorf("raftfsm: snapshot %s: adopt after close or cancel", k.meta.ID)
	case k.mode == snapshotSinkStreaming:
		return fmt.Errorf("raftfsm: snapshot %s: adopt after write", k.meta.ID)
	case k.mode == snapshotSinkAdopted:
		return fmt.Errorf("raftfsm: snapshot %s: adopt called twice", k.meta.ID)
	}
	k.mode = snapshotSinkAdopted
	if err := k.moveIn(dir); err != nil {
		k.adoptErr = fmt.Errorf("raftfsm: snapshot %s: adopt %s: %w", k.meta.ID, dir, err)
	}
	return k.adoptErr
}

func (k *snapshotSink) moveIn(dir string) error {
	ents, err := archiveList(dir) // every entry regular and nameable, or an error
	if err != nil {
		return err
	}
	for _, e := range ents {
		dst := filepath.Join(k.filesDir, e.name)
		if err := os.Rename(filepath.Join(dir, e.name), dst); err != nil {
			return err
		}
		// Checkpoint already made the file durable, so this fsync is cheap; it
		// keeps a snapshot durable whoever made the directory.
		if err := snapshotFsyncFile(dst); err != nil {
			return err
		}
	}
	if err := snapshotFsyncDir(k.filesDir); err != nil {
		return err
	}
	return snapshotFsyncDir(dir)
}

// Close finishes the snapshot: it waits for the unpacker (or takes what adopt
// moved in), writes meta.json with Size set to the archive size of the files,
// renames the directory into place, and reaps old snapshots. On error nothing
// of the snapshot is left. Further calls of Close or Cancel return the first
// call's result and do nothing.
func (k *snapshotSink) Close() error {
	if k.finished {
		return k.finishErr
	}
	k.finished = true
	k.finishErr = k.close()
	return k.finishErr
}

func (k *snapshotSink) close() error {
	var err error
	switch k.mode {
	case snapshotSinkEmpty:
		err = errSnapshotNothingWritten
	case snapshotSinkStreaming:
		k.pw.Close() // the unpacker sees io.EOF
		<-k.unpacked
		err = k.unpackErr
	case snapshotSinkAdopted:
		err = k.adoptErr
	}
	if err == nil {
		err = k.commit()
	}
	if err != nil {
		if rmErr := os.RemoveAll(k.tmpDir); rmErr != nil {
			k.store.logger.Warn("removing failed snapshot", "id", k.meta.ID, "error", rmErr)
		}
		k.store.logger.Warn("snapshot failed", "id", k.meta.ID, "error", err)
		return err
	}
	k.store.logger.Info("snapshot complete", "id", k.meta.ID, "size", k.meta.Size)
	// The snapshot is durable; failing to reap others does not undo it.
	if err := k.store.reap(); err != nil {
		k.store.logger.Warn("reaping old snapshots failed", "error", err)
	}
	return nil
}

// commit makes the snapshot in tmpDir durable and renames it into place.
func (k *snapshotSink) commit() error {
	id := k.meta.ID
	size, err := archiveSize(k.filesDir)
	if err != nil {
		return fmt.Errorf("raftfsm: snapshot %s: %w", id, err)
	}
	if k.mode == snapshotSinkStreaming && size != k.received {
		return fmt.Errorf("raftfsm: snapshot %s: received %d archive bytes but the files archive to %d", id, k.received, size)
	}
	k.meta.Size = size
	b, err := json.Marshal(&k.meta)
	if err != nil {
		return fmt.Errorf("raftfsm: snapshot %s: encode meta: %w", id, err)
	}
	metaPath := filepath.Join(k.tmpDir, snapshotMetaFile)
	if err := snapshotWriteFile(metaPath+snapshotTmpSuffix, append(b, '\n')); err != nil {
		return fmt.Errorf("raftfsm: snapshot %s: %w", id, err)
	}
	if err := os.Rename(metaPath+snapshotTmpSuffix, metaPath); err != nil {
		return fmt.Errorf("raftfsm: snapshot %s: %w", id, err)
	}
	if err := snapshotFsyncDir(k.tmpDir); err != nil {
		return fmt.Errorf("raftfsm: snapshot %s: %w", id, err)
	}
	final := strings.TrimSuffix(k.tmpDir, snapshotTmpSuffix)
	if err := os.Rename(k.tmpDir, final); err != nil {
		return fmt.Errorf("raftfsm: snapshot %s: %w", id, err)
	}
	if err := snapshotFsyncDir(k.store.dir); err != nil {
		// Not known to be durable: take it back rather than report a
		// failure while leaving the snapshot listed.
		if rnErr := os.Rename(final, k.tmpDir); rnErr != nil {
			k.store.logger.Warn("withdrawing snapshot", "id", id, "error", rnErr)
		}
		return fmt.Errorf("raftfsm: snapshot %s: %w", id, err)
	}
	return nil
}

// Cancel abandons the snapshot: it stops the unpacker, if any, and removes
// everything written. Further calls of Close or Cancel return the first call's
// result and do nothing.
func (k *snapshotSink) Cancel() error {
	if k.finished {
		return k.finishErr
	}
	k.finished = true
	if k.mode == snapshotSinkStreaming {
		k.pw.CloseWithError(errSnapshotSinkCanceled)
		<-k.unpacked
	}
	if err := os.RemoveAll(k.tmpDir); err != nil {
		k.finishErr = fmt.Errorf("raftfsm: snapshot %s: cancel: %w", k.meta.ID, err)
	}
	k.store.logger.Info("snapshot canceled", "id", k.meta.ID)
	return k.finishErr
}

// snapshotWriteFile creates path with b and fsyncs it.
func snapshotWriteFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// snapshotFsyncFile fsyncs an existing file.
func snapshotFsyncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// snapshotFsyncDir fsyncs a directory so that entries created, renamed or
// removed in it are durable.
func snapshotFsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
