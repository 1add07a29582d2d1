package raftfsm

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/proglogctl/proglogctl/logstore"
)

// snapshotTestLogWriter sends log lines to t.Log.
type snapshotTestLogWriter struct{ t testing.TB }

func (w snapshotTestLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func snapshotTestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(snapshotTestLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// snapshotTestStore opens a store in a fresh directory.
func snapshotTestStore(t testing.TB, retain int) *snapshotStore {
	t.Helper()
	s, err := newSnapshotStore(filepath.Join(t.TempDir(), "snapshots"), retain, snapshotTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var snapshotTestConfiguration = raft.Configuration{Servers: []raft.Server{
	{Suffrage: raft.Voter, ID: "a", Address: "127.0.0.1:1"},
	{Suffrage: raft.Nonvoter, ID: "b", Address: "127.0.0.1:2"},
}}

// snapshotTestCreate starts a version 1 snapshot at index and term.
func snapshotTestCreate(t testing.TB, s *snapshotStore, index, term uint64) *snapshotSink {
	t.Helper()
	sink, err := s.Create(1, index, term, snapshotTestConfiguration, index-1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sink.(*snapshotSink)
}

// snapshotTestClosed writes archive to a new sink of s at index 1, term 1,
// and closes it.
func snapshotTestClosed(t testing.TB, s *snapshotStore, archive []byte) *snapshotSink {
	t.Helper()
	sink := snapshotTestCreate(t, s, 1, 1)
	if _, err := sink.Write(archive); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink
}

// snapshotTestWrite completes a snapshot at index and term holding files.
func snapshotTestWrite(t testing.TB, s *snapshotStore, index, term uint64, files map[string][]byte) string {
	t.Helper()
	sink := snapshotTestCreate(t, s, index, term)
	if _, err := sink.Write(archiveTestArchive(t, files)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

// snapshotTestRead opens snapshot id and returns its meta and whole stream.
func snapshotTestRead(t testing.TB, s *snapshotStore, id string) (*raft.SnapshotMeta, []byte) {
	t.Helper()
	meta, rc, err := s.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != meta.Size {
		t.Fatalf("snapshot %s streamed %d bytes, meta.Size %d", id, len(b), meta.Size)
	}
	return meta, b
}

// snapshotTestIDs lists the store's snapshot ids, newest first.
func snapshotTestIDs(t testing.TB, s *snapshotStore) []string {
	t.Helper()
	metas, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, m := range metas {
		ids = append(ids, m.ID)
	}
	return ids
}

// snapshotTestAssertNoSnapshot fails unless the store directory is empty: no
// snapshot and no leftover of one.
func snapshotTestAssertNoSnapshot(t testing.TB, s *snapshotStore) {
	t.Helper()
	archiveTestAssertEmpty(t, s.dir)
}

// snapshotTestAssertFailed fails the test unless err, what a call on sink
// returned, contains want, and cancelling sink then leaves no snapshot in s.
func snapshotTestAssertFailed(t testing.TB, s *snapshotStore, sink *snapshotSink, what string, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: error %v, want one containing %q", what, err, want)
	}
	if err := sink.Cancel(); err != nil {
		t.Fatal(err)
	}
	snapshotTestAssertNoSnapshot(t, s)
}

func TestSnapshotStoreStreamRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := snapshotTestStore(t, 2)
	files := map[string][]byte{
		"00000000000000000000.store": bytes.Repeat([]byte("record "), 150_000),
		"00000000000000000000.index": bytes.Repeat([]byte{1}, 800),
		"empty":                      {},
		"meta.json":                  []byte("a file named like the store's own"),
	}
	archive := archiveTestArchive(t, files)

	sink := snapshotTestCreate(t, s, 42, 3)
	// As InstallSnapshot does: io.Copy from the network, in small pieces.
	n, err := io.CopyBuffer(sink, iotest.OneByteReader(bytes.NewReader(archive[:100])), make([]byte, 7))
	if err != nil || n != 100 {
		t.Fatalf("copied %d bytes, error %v", n, err)
	}
	if _, err := io.Copy(sink, bytes.NewReader(archive[100:])); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}

	metas, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 1 {
		t.Fatalf("List returned %d snapshots, want 1", len(metas))
	}
	m := metas[0]
	if m.ID != sink.ID() || m.Version != 1 || m.Index != 42 || m.Term != 3 || m.ConfigurationIndex != 41 ||
		m.Size != int64(len(archive)) || len(m.Configuration.Servers) != 2 ||
		m.Configuration.Servers[1] != snapshotTestConfiguration.Servers[1] {
		t.Fatalf("List returned %+v", m)
	}

	meta, got := snapshotTestRead(t, s, sink.ID())
	if meta.ID != sink.ID() || meta.Size != m.Size {
		t.Fatalf("Open returned %+v, List %+v", meta, m)
	}
	if !bytes.Equal(got, archive) {
		t.Fatal("Open streamed different bytes than were written")
	}
	archiveTestAssertUnpacks(t, got, files)
}

func TestSnapshotStoreListOrder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := snapshotTestStore(t, 10)
	clock := time.UnixMilli(1_700_000_000_000)
	s.now = func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	files := map[string][]byte{"a": []byte("x")}
	var ids []string
	for _, at := range []struct{ term, index uint64 }{{1, 5}, {2, 3}, {1, 9}, {2, 3}, {1, 10}} {
		ids = append(ids, snapshotTestWrite(t, s, at.index, at.term, files))
	}
	// Term first, then index (numerically: 10 after 9), then id.
	want := []string{ids[3], ids[1], ids[4], ids[2], ids[0]}
	if got := snapshotTestIDs(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List order %v, want %v", got, want)
	}
	if !strings.HasPrefix(ids[4], "1-10-") {
		t.Fatalf("id %q is not term-index-millis", ids[4])
	}
}

func TestSnapshotSinkAdopt(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := snapshotTestStore(t, 1)
	files := map[string][]byte{
		"00000000000000000000.store": bytes.Repeat([]byte("s"), 300_000),
		"00000000000000000000.index": bytes.Repeat([]byte("i"), 1000),
		"00000000000000001000.store": []byte("active"),
		"00000000000000001000.index": {},
	}
	cp := filepath.Join(t.TempDir(), "checkpoint")
	if err := os.Mkdir(cp, 0o755); err != nil {
		t.Fatal(err)
	}
	archiveTestWriteFiles(t, cp, files)
	before, err := os.Stat(filepath.Join(cp, "00000000000000000000.store"))
	if err != nil {
		t.Fatal(err)
	}

	sink := snapshotTestCreate(t, s, 7, 1)
	if err := sink.adopt(cp); err != nil {
		t.Fatal(err)
	}
	archiveTestAssertEmpty(t, cp) // moved, not copied
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(filepath.Join(s.dir, sink.ID(), snapshotFilesDir, "00000000000000000000.store"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("adopt copied a file instead of moving it")
	}

	meta, got := snapshotTestRead(t, s, sink.ID()) // checks meta.Size == bytes streamed
	if meta.Index != 7 || meta.Term != 1 {
		t.Fatalf("meta %+v", meta)
	}
	if !bytes.Equal(got, archiveTestArchive(t, files)) {
		t.Fatal("adopted snapshot streams a different archive than its files make")
	}
	archiveTestAssertUnpacks(t, got, files)
}

// The path our FSM takes: checkpoint the log, adopt the checkpoint; a follower
// unpacks the stream into a log that opens with the same records.
func TestSnapshotSinkAdoptLogCheckpoint(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	conf := logstore.DefaultConfig()
	conf.MaxStoreBytes = 4 << 10
	conf.MaxRecordBytes = 1 << 10
	conf.Logger = snapshotTestLogger(t)
	logDir := filepath.Join(t.TempDir(), "log")
	l, err := logstore.Open(logDir, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var recs [][]byte
	for i := range 300 {
		rec := fmt.Appendf(nil, "record %04d %s", i, strings.Repeat("x", 50))
		recs = append(recs, rec)
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}

	s := snapshotTestStore(t, 1)
	cp := filepath.Join(filepath.Dir(s.dir), "checkpoint")
	if err := l.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	sink := snapshotTestCreate(t, s, 300, 1)
	if err := sink.adopt(cp); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}

	// Sealed segments are shared with the log, not copied.
	first := "00000000000000000000.store"
	inLog, err := os.Stat(filepath.Join(logDir, first))
	if err != nil {
		t.Fatal(err)
	}
	inSnap, err := os.Stat(filepath.Join(s.dir, sink.ID(), snapshotFilesDir, first))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(inLog, inSnap) {
		t.Fatalf("sealed segment %s was copied into the snapshot", first)
	}

	_, stream := snapshotTestRead(t, s, sink.ID())
	restored := filepath.Join(t.TempDir(), "restored")
	if err := os.Mkdir(restored, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := readArchive(bytes.NewReader(stream), restored); err != nil {
		t.Fatal(err)
	}
	r, err := logstore.Open(restored, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NextOffset() != uint64(len(recs)) {
		t.Fatalf("restored log ends at %d, want %d", r.NextOffset(), len(recs))
	}
	for off, want := range recs {
		got, err := r.Read(uint64(off))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("offset %d: got %q, want %q", off, got, want)
		}
	}
}

func TestSnapshotSinkMisuse(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	archive := archiveTestArchive(t, map[string][]byte{"a": []byte("x")})
	newCheckpoint := func(t *testing.T, files map[string][]byte) string {
		dir := t.TempDir()
		archiveTestWriteFiles(t, dir, files)
		return dir
	}
	tests := []struct {
		name string
		run  func(t *testing.T, sink *snapshotSink) error // the misuse; returns its error
		want string
	}{
		{"adopt after write", func(t *testing.T, sink *snapshotSink) error {
			if _, err := sink.Write(archive[:5]); err != nil {
				t.Fatal(err)
			}
			return sink.adopt(newCheckpoint(t, nil))
		}, "adopt after write"},
		{"write after adopt", func(t *testing.T, sink *snapshotSink) error {
			if err := sink.adopt(newCheckpoint(t, map[string][]byte{"a": nil})); err != nil {
				t.Fatal(err)
			}
			_, err := sink.Write(archive)
			return err
		}, "write after adopt"},
		{"adopt twice", func(t *testing.T, sink *snapshotSink) error {
			if err := sink.adopt(newCheckpoint(t, nil)); err != nil {
				t.Fatal(err)
			}
			return sink.adopt(newCheckpoint(t, nil))
		}, "adopt called twice"},
		{"adopt a directory holding a directory", func(t *testing.T, sink *snapshotSink) error {
			dir := newCheckpoint(t, map[string][]byte{"a": nil})
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			return sink.adopt(dir)
		}, "not a regular file"},
		{"adopt a missing directory", func(t *testing.T, sink *snapshotSink) error {
			return sink.adopt(filepath.Join(t.TempDir(), "nope"))
		}, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := snapshotTestStore(t, 1)
			sink := snapshotTestCreate(t, s, 1, 1)
			snapshotTestAssertFailed(t, s, sink, tc.name, tc.run(t, sink), tc.want)
		})
	}

	t.Run("close after failed adopt", func(t *testing.T) {
		s := snapshotTestStore(t, 1)
		sink := snapshotTestCreate(t, s, 1, 1)
		if err := sink.adopt(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("adopt of a missing directory succeeded")
		}
		if err := sink.Close(); err == nil {
			t.Fatal("Close after a failed adopt succeeded")
		}
		snapshotTestAssertNoSnapshot(t, s)
	})
	t.Run("write after close", func(t *testing.T) {
		s := snapshotTestStore(t, 1)
		sink := snapshotTestClosed(t, s, archive)
		if _, err := sink.Write(archive); err == nil {
			t.Fatal("Write after Close succeeded")
		}
		if err := sink.adopt(t.TempDir()); err == nil {
			t.Fatal("adopt after Close succeeded")
		}
	})
	t.Run("unsupported version", func(t *testing.T) {
		s := snapshotTestStore(t, 1)
		for _, v := range []raft.SnapshotVersion{0, 2} {
			if _, err := s.Create(v, 1, 1, snapshotTestConfiguration, 0, nil); err == nil ||
				!strings.Contains(err.Error(), "unsupported snapshot version") {
				t.Fatalf("Create version %d: error %v", v, err)
			}
		}
		snapshotTestAssertNoSnapshot(t, s)
	})
}

func TestSnapshotSinkBadStream(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	archive := archiveTestArchive(t, map[string][]byte{"a": []byte("hello"), "b": bytes.Repeat([]byte("b"), 100_000)})
	corrupt := bytes.Clone(archive)
	corrupt[len(corrupt)/2] ^= 0x10
	tests := []struct {
		name   string
		stream []byte
		want   string
	}{
		{"garbage", bytes.Repeat([]byte("garbage!"), 100), "bad magic"},
		{"truncated", archive[:len(archive)-3], "truncated"},
		{"bit flip", corrupt, "crc mismatch"},
		{"trailing data", append(bytes.Clone(archive), "more"...), "after the trailer"},
		{"traversal", archiveTestForge(archiveTestEntry{"../escape", []byte("x")}), "path separator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := snapshotTestStore(t, 1)
			sink := snapshotTestCreate(t, s, 1, 1)
			_, werr := io.Copy(sink, bytes.NewReader(tc.stream))
			cerr := sink.Close()
			if cerr == nil {
				t.Fatal("Close succeeded")
			}
			if !strings.HasPrefix(cerr.Error(), "raftfsm: snapshot archive: ") || !strings.Contains(cerr.Error(), tc.want) {
				t.Fatalf("Close: error %q, want the archive error mentioning %q", cerr, tc.want)
			}
			if werr != nil && werr.Error() != cerr.Error() {
				t.Fatalf("Write failed with %q, Close with %q", werr, cerr)
			}
			if again := sink.Close(); again != cerr {
				t.Fatalf("second Close returned %v, want the first result %v", again, cerr)
			}
			snapshotTestAssertNoSnapshot(t, s)
			if ids := snapshotTestIDs(t, s); len(ids) != 0 {
				t.Fatalf("List shows %v", ids)
			}
		})
	}

	t.Run("write reports the unpack error", func(t *testing.T) {
		s := snapshotTestStore(t, 1)
		sink := snapshotTestCreate(t, s, 1, 1)
		// The unpacker stops at the bad magic: a later Write blocks until it
		// has failed, then returns its error.
		var err error
		for range 3 {
			if _, err = sink.Write([]byte("garbage!garbage!")); err != nil {
				break
			}
		}
		snapshotTestAssertFailed(t, s, sink, "Write", err, "bad magic") // the unpack error
	})
	t.Run("nothing written", func(t *testing.T) {
		s := snapshotTestStore(t, 1)
		sink := snapshotTestCreate(t, s, 1, 1)
		if err := sink.Close(); err == nil {
			t.Fatal("Close of an empty sink succeeded")
		}
		snapshotTestAssertNoSnapshot(t, s)
	})
}

func TestSnapshotSinkCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	archive := archiveTestArchive(t, map[string][]byte{"a": bytes.Repeat([]byte("a"), 1<<20), "b": []byte("b")})
	tests := []struct {
		name string
		fill func(t *testing.T, sink *snapshotSink)
	}{
		{"nothing written", func(t *testing.T, sink *snapshotSink) {}},
		{"mid stream", func(t *testing.T, sink *snapshotSink) {
			if _, err := sink.Write(archive[:len(archive)/2]); err != nil {
				t.Fatal(err)
			}
		}},
		{"whole stream", func(t *testing.T, sink *snapshotSink) {
			if _, err := sink.Write(archive); err != nil {
				t.Fatal(err)
			}
		}},
		{"adopted", func(t *testing.T, sink *snapshotSink) {
			dir := t.TempDir()
			archiveTestWriteFiles(t, dir, map[string][]byte{"a": []byte("a")})
			if err := sink.adopt(dir); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := snapshotTestStore(t, 1)
			sink := snapshotTestCreate(t, s, 1, 1)
			tc.fill(t, sink)
			if err := sink.Cancel(); err != nil {
				t.Fatal(err)
			}
			if err := sink.Cancel(); err != nil {
				t.Fatalf("second Cancel: %v", err)
			}
			if err := sink.Close(); err != nil {
				t.Fatalf("Close after Cancel: %v", err)
			}
			snapshotTestAssertNoSnapshot(t, s)
		})
	}

	t.Run("after close", func(t *testing.T) {
		s := snapshotTestStore(t, 1)
		sink := snapshotTestClosed(t, s, archive)
		if err := sink.Cancel(); err != nil {
			t.Fatal(err)
		}
		if ids := snapshotTestIDs(t, s); len(ids) != 1 || ids[0] != sink.ID() {
			t.Fatalf("Cancel after Close removed the snapshot: List %v", ids)
		}
	})
}

func TestSnapshotStoreRetain(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := snapshotTestStore(t, 2)
	files := map[string][]byte{"a": []byte("x")}
	var ids []string
	for i := range uint64(4) {
		ids = append(ids, snapshotTestWrite(t, s, 10+i, 1, files))
	}
	want := []string{ids[3], ids[2]}
	if got := snapshotTestIDs(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List %v, want %v", got, want)
	}
	des, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, de := range des {
		onDisk = append(onDisk, de.Name())
	}
	if fmt.Sprint(onDisk) != fmt.Sprint([]string{ids[2], ids[3]}) {
		t.Fatalf("store holds %v, want %v", onDisk, []string{ids[2], ids[3]})
	}
}

func TestSnapshotStoreRetainWhileRead(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := snapshotTestStore(t, 1)
	files := map[string][]byte{"a": bytes.Repeat([]byte("a"), 1<<20)}
	old := snapshotTestWrite(t, s, 1, 1, files)
	meta, rc, err := s.Open(old)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	// A newer snapshot completes while a follower is being sent the old one.
	newer := snapshotTestWrite(t, s, 2, 1, files)
	if got := snapshotTestIDs(t, s); fmt.Sprint(got) != fmt.Sprint([]string{newer, old}) {
		t.Fatalf("List %v while %s is read, want both", got, old)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != meta.Size {
		t.Fatalf("streamed %d bytes, meta.Size %d", len(b), meta.Size)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if got := snapshotTestIDs(t, s); fmt.Sprint(got) != fmt.Sprint([]string{newer}) {
		t.Fatalf("List %v after the reader closed, want only %s", got, newer)
	}
	if _, err := os.Stat(filepath.Join(s.dir, old)); !os.IsNotExist(err) {
		t.Fatalf("old snapshot still on disk: %v", err)
	}
}

func TestNewSnapshotStore(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("removes unfinished snapshots", func(t *testing.T) {
		s := snapshotTestStore(t, 3)
		done := snapshotTestWrite(t, s, 5, 1, map[string][]byte{"a": []byte("x")})
		// A crash mid-stream, and one mid-reap.
		unfinished := snapshotTestCreate(t, s, 6, 1)
		if _, err := unfinished.Write(archiveTestArchive(t, map[string][]byte{"b": []byte("y")})[:20]); err != nil {
			t.Fatal(err)
		}
		reaping := filepath.Join(s.dir, "1-1-1"+snapshotTmpSuffix)
		if err := os.MkdirAll(filepath.Join(reaping, snapshotFilesDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(reaping, snapshotMetaFile), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}

		s2, err := newSnapshotStore(s.dir, 3, snapshotTestLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		des, err := os.ReadDir(s.dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(des) != 1 || des[0].Name() != done {
			t.Fatalf("store holds %v, want only %s", des, done)
		}
		if _, got := snapshotTestRead(t, s2, done); !bytes.Equal(got, archiveTestArchive(t, map[string][]byte{"a": []byte("x")})) {
			t.Fatal("completed snapshot changed")
		}
		// The first process's sink is still open; its goroutine must be joined.
		if err := unfinished.Cancel(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := newSnapshotStore(dir, 0, snapshotTestLogger(t)); err == nil {
			t.Fatal("retain 0 accepted")
		}
		if _, err := newSnapshotStore(dir, 1, nil); err == nil {
			t.Fatal("nil logger accepted")
		}
	})
	t.Run("skips unreadable directories", func(t *testing.T) {
		s := snapshotTestStore(t, 1)
		id := snapshotTestWrite(t, s, 5, 1, map[string][]byte{"a": []byte("x")})
		for name, meta := range map[string]string{
			"no-meta":       "",
			"1-2-3":         "not json",
			"9-9-9":         `{"Version":1,"ID":"other"}`,
			"8-8-8":         `{"Version":0,"ID":"8-8-8"}`,
			"lost+found.go": "",
		} {
			if err := os.Mkdir(filepath.Join(s.dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
			if meta != "" {
				if err := os.WriteFile(filepath.Join(s.dir, name, snapshotMetaFile), []byte(meta), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := snapshotTestIDs(t, s); fmt.Sprint(got) != fmt.Sprint([]string{id}) {
			t.Fatalf("List %v, want only %s", got, id)
		}
	})
}

func TestSnapshotStoreOpen(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := snapshotTestStore(t, 1)
	id := snapshotTestWrite(t, s, 1, 1, map[string][]byte{"a": bytes.Repeat([]byte("a"), 1<<20)})

	t.Run("close after a few bytes", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		_, rc, err := s.Open(id)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
		if string(buf[:4]) != archiveMagic {
			t.Fatalf("stream starts %q", buf)
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := rc.Read(buf); err == nil {
			t.Fatal("Read after Close succeeded")
		}
	})
	t.Run("close unread", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		_, rc, err := s.Open(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		for _, bad := range []string{"1-2-3", "../x", "", "..", "1-2-3.tmp"} {
			_, rc, err := s.Open(bad)
			if err == nil {
				rc.Close()
				t.Fatalf("Open(%q) succeeded", bad)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) && !strings.Contains(err.Error(), " "+bad+":") {
				t.Fatalf("Open(%q): error %q does not name the id", bad, err)
			}
		}
	})
	t.Run("files changed under the snapshot", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(s.dir, id, snapshotFilesDir, "a"), []byte("short"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, rc, err := s.Open(id)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "meta.json says") {
			t.Fatalf("streaming a changed snapshot: error %v, want a size mismatch", err)
		}
	})
}
