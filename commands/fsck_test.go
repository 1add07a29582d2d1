package commands

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/proglogctl/proglogctl/logstore"
)

// fsckLogConfig makes small segments, so a few records fill several.
func fsckLogConfig() logstore.Config {
	c := logstore.DefaultConfig()
	c.MaxStoreBytes = 4 << 10
	c.MaxRecordBytes = 1 << 10
	c.Logger = slog.New(slog.DiscardHandler)
	return c
}

func fsckRecord(i int) []byte { return fmt.Appendf(nil, "record-%04d-%s", i, strings.Repeat("x", 100)) }

// fsckLog writes 100 records in batches of 4 into a new log directory: three
// sealed segments and an active one, the same bytes on every run.
func fsckLog(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := logstore.Open(dir, fsckLogConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i += 4 {
		if _, err := l.AppendWithMeta(binary.BigEndian.AppendUint64(nil, uint64(i+4)), fsckRecord(i), fsckRecord(i+1), fsckRecord(i+2), fsckRecord(i+3)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// segmentFiles returns the store files of dir, oldest first.
func segmentFiles(t *testing.T, dir, ext string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil || len(names) < 3 {
		t.Fatalf("%d %s files in %s: %v", len(names), ext, dir, err)
	}
	sort.Strings(names)
	return names
}

// fsckOut runs fsck and returns its output with dir replaced by DIR and
// the time in a directory name by T.
func fsckOut(t *testing.T, dir string, wantCode int, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, append(append([]string{"fsck"}, args...), dir)...)
	if got := ExitCode(err); got != wantCode {
		t.Fatalf("fsck %v: exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", args, got, err, wantCode, out, errOut)
	}
	out = strings.ReplaceAll(out, dir, "DIR")
	return regexp.MustCompile(`fsck-\d+`).ReplaceAllString(out, "fsck-T")
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFsck_clean(t *testing.T) {
	dir := fsckLog(t)
	golden(t, "fsck_clean", fsckOut(t, dir, ExitOK))
}

func TestFsck_tornTail(t *testing.T) {
	dir := fsckLog(t)
	stores := segmentFiles(t, dir, ".store")
	active := stores[len(stores)-1]
	size := int64(len(readFile(t, active)))
	if err := os.Truncate(active, size-30); err != nil { // mid-frame
		t.Fatal(err)
	}
	golden(t, "fsck_torn_tail", fsckOut(t, dir, ExitFsckRepairable))
	golden(t, "fsck_torn_tail_repair", fsckOut(t, dir, ExitFsckRepaired, "--repair"))
	fsckOut(t, dir, ExitOK)

	l, err := logstore.Open(dir, fsckLogConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if next := l.NextOffset(); next != 96 {
		t.Fatalf("after repair the log ends at %d, want 96 (the last batch was torn)", next)
	}
	for off := uint64(0); off < 96; off++ {
		if got, err := l.Read(off); err != nil || !bytes.Equal(got, fsckRecord(int(off))) {
			t.Fatalf("Read(%d) = %q, %v", off, got, err)
		}
	}
}

func TestFsck_corruptSealed(t *testing.T) {
	dir := fsckLog(t)
	sealed := segmentFiles(t, dir, ".store")[1]
	b := readFile(t, sealed)
	pos := bytes.Index(b, fsckRecord(40))
	if pos < 0 {
		t.Fatalf("record 40 is not in %s", sealed)
	}
	b[pos+3] ^= 0x20 // "record" → "reCord"
	if err := os.WriteFile(sealed, b, 0o644); err != nil {
		t.Fatal(err)
	}
	golden(t, "fsck_corrupt_sealed", fsckOut(t, dir, ExitFsckCorrupt))
	fsckOut(t, dir, ExitFsckCorrupt, "--repair")
	if !bytes.Equal(readFile(t, sealed), b) {
		t.Fatal("--repair without --truncate-corrupt changed the corrupt segment")
	}

	out := fsckOut(t, dir, ExitFsckRepaired, "--repair", "--truncate-corrupt", "-o", "json")
	var r fsckReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.NextOffset != 40 || r.Result != "repaired" || r.MovedTo == "" || len(r.Segments) != 4 || r.Segments[1].DroppedBytes == 0 {
		t.Fatalf("--truncate-corrupt: %s", out)
	}
	moved, _ := filepath.Glob(filepath.Join(dir, "fsck-*", "*.store"))
	if len(moved) != 3 {
		t.Fatalf("kept aside: %v, want the corrupt store file and the two segments after it", moved)
	}
	fsckOut(t, dir, ExitOK)
}

func TestFsck_indexEntryWrong(t *testing.T) {
	dir := fsckLog(t)
	index := segmentFiles(t, dir, ".index")[0]
	good := readFile(t, index)
	b := bytes.Clone(good)
	copy(b[16+3*8+4:16+3*8+8], b[16+2*8+4:16+2*8+8]) // entry 3 points at record 2's frame
	if err := os.WriteFile(index, b, 0o644); err != nil {
		t.Fatal(err)
	}
	golden(t, "fsck_index", fsckOut(t, dir, ExitFsckRepairable))
	fsckOut(t, dir, ExitFsckRepaired, "--repair")
	if !bytes.Equal(readFile(t, index), good) {
		t.Fatal("the rebuilt index differs from the one the log wrote")
	}
}

func TestFsck_usage(t *testing.T) {
	dir := fsckLog(t)
	for _, args := range [][]string{{"fsck"}, {"fsck", dir, dir}, {"fsck", "--truncate-corrupt", dir}, {"fsck", "-o", "yaml", dir}} {
		if _, _, err := run(t, args...); ExitCode(err) != ExitUsage {
			t.Errorf("%v: exit %d (%v), want %d", args, ExitCode(err), err, ExitUsage)
		}
	}
	_, _, err := run(t, "fsck", t.TempDir())
	exitError(t, err, ExitError, "neither a node's data directory")
}

// TestFsck_node checks a real node's data directory: refused while the node
// runs, clean once it has stopped.
func TestFsck_node(t *testing.T) {
	isolateConfig(t)
	data := t.TempDir()
	c := serveDev(t, 1, 0, data)
	mustRun(t, "", "produce", "a", "b", "c")
	dir := filepath.Join(data, "dev", "dev-0")
	for _, d := range []string{dir, filepath.Join(dir, "log")} {
		_, _, err := run(t, "fsck", d)
		exitError(t, err, ExitError, "is in use: a node")
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	out := fsckOut(t, dir, ExitOK, "-o", "json")
	var r fsckReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Result != "clean" || r.NextOffset != 3 || r.Raft == nil || r.Raft.AppliedIndex == 0 || r.Raft.LastIndex < r.Raft.AppliedIndex || r.Raft.CurrentTerm == 0 {
		t.Fatalf("a stopped node's directory: %s", out)
	}
	text := fsckOut(t, dir, ExitOK)
	if !strings.Contains(text, "raft: log entries 1 to ") || !strings.Contains(text, "result: clean") {
		t.Fatalf("text output:\n%s", text)
	}
	fsckOut(t, filepath.Join(dir, "log"), ExitOK)
}
