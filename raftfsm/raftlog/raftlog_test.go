package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func open(t *testing.T, dir string, segBytes int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{SegmentBytes: segBytes})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// entries makes entries from..to of term, each with size bytes of data
// that name the index and the term.
func entries(from, to, term uint64, size int) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		data := bytes.Repeat([]byte{byte(i)}, size)
		copy(data, fmt.Sprintf("%d/%d", i, term))
		logs = append(logs, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: data,
			Extensions: []byte("x"), AppendedAt: time.Unix(0, int64(i*1000))})
	}
	return logs
}

func store(t *testing.T, s *Store, logs []*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs(%d..): %v", logs[0].Index, err)
	}
}

// checkLog requires the store to hold exactly want, in order.
func checkLog(t *testing.T, s *Store, want []*raft.Log) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if len(want) == 0 {
		if first != 0 || last != 0 {
			t.Fatalf("[FirstIndex, LastIndex] = [%d, %d], want an empty log", first, last)
		}
		return
	}
	if first != want[0].Index || last != want[len(want)-1].Index {
		t.Fatalf("[FirstIndex, LastIndex] = [%d, %d], want [%d, %d]", first, last, want[0].Index, want[len(want)-1].Index)
	}
	for _, w := range want {
		var got raft.Log
		if err := s.GetLog(w.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", w.Index, err)
		}
		if got.Index != w.Index || got.Term != w.Term || got.Type != w.Type || !bytes.Equal(got.Data, w.Data) ||
			!bytes.Equal(got.Extensions, w.Extensions) || !got.AppendedAt.Equal(w.AppendedAt) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", w.Index, got, *w)
		}
	}
	for _, i := range []uint64{first - 1, last + 1} {
		var got raft.Log
		if err := s.GetLog(i, &got); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) outside [%d, %d] = %v, want ErrLogNotFound", i, first, last, err)
		}
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// Entries stored survive a reopen, across segments, with a batch larger
// than a segment in one of its own.
func TestStoreAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4096)
	checkLog(t, s, nil)
	var all []*raft.Log
	for from := uint64(1); from <= 60; from += 10 {
		batch := entries(from, from+9, 1+from/20, 100)
		store(t, s, batch)
		all = append(all, batch...)
	}
	big := entries(61, 61, 5, 10_000)
	store(t, s, big)
	all = append(all, big...)
	checkLog(t, s, all)
	if n := len(segmentFiles(t, dir)); n < 3 {
		t.Fatalf("%d segment files, want several with 4 KiB segments", n)
	}
	s.Close()
	s = open(t, dir, 4096)
	checkLog(t, s, all)
	more := entries(62, 64, 5, 10)
	store(t, s, more)
	checkLog(t, s, append(all, more...))
}

// A write that never completed is dropped at Open: the log ends at the
// last whole entry and takes new entries from there.
func TestTornTailIsDropped(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	first := entries(1, 5, 1, 50)
	store(t, s, first)
	store(t, s, entries(6, 8, 1, 50))
	s.Close()
	// Tear entry 7 (its payload's last byte) and leave 8 whole: 7 and
	// everything after it were one write that did not complete.
	path := filepath.Join(dir, segmentName(1))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frame := int64(frameHeader + entryFixed + 50 + 1)
	data[headerSize+7*frame-1] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 1<<20)
	checkLog(t, s, append(first, entries(6, 6, 1, 50)...))
	again := entries(7, 9, 2, 50)
	store(t, s, again)
	s.Close()
	s = open(t, dir, 1<<20)
	checkLog(t, s, slices.Concat(first, entries(6, 6, 1, 50), again))
}

// Entries a tail deletion cut off never come back, not even when the entry
// written over the first of them has a frame of exactly its size and a
// term no higher than theirs (so neither the index nor the term check
// stops the scan there): the chained checksum does not match. Without the
// chain the old entries 7..10 would follow the new 6 after a reopen.
func TestDeletedTailStaysDeleted(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	store(t, s, entries(1, 5, 1, 64))
	store(t, s, entries(6, 10, 3, 64))
	if err := s.DeleteRange(6, 10); err != nil {
		t.Fatalf("DeleteRange: %v", err)
	}
	checkLog(t, s, entries(1, 5, 1, 64))
	newer := entries(6, 6, 2, 64)
	store(t, s, newer)
	s.Close()
	s = open(t, dir, 1<<20)
	checkLog(t, s, append(entries(1, 5, 1, 64), newer...))
}

// A tail deletion reaching back into an earlier segment removes the later
// segment files.
func TestDeleteTailAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 2048)
	for from := uint64(1); from <= 40; from += 10 {
		store(t, s, entries(from, from+9, 1, 100))
	}
	before := len(segmentFiles(t, dir))
	if err := s.DeleteRange(12, 40); err != nil {
		t.Fatal(err)
	}
	if after := len(segmentFiles(t, dir)); after >= before {
		t.Fatalf("segment files %d → %d after deleting the tail from 12, want fewer", before, after)
	}
	store(t, s, entries(12, 13, 3, 100))
	s.Close()
	s = open(t, dir, 2048)
	checkLog(t, s, append(entries(1, 11, 1, 100), entries(12, 13, 3, 100)...))
}

// A head deletion removes whole segments from disk; the first index moves
// at once, and after a reopen it is at most where it was deleted to (the
// entries before it in its segment are still there).
func TestDeleteHead(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 2048)
	for from := uint64(1); from <= 40; from += 10 {
		store(t, s, entries(from, from+9, 1, 100))
	}
	before := segmentFiles(t, dir)
	if err := s.DeleteRange(1, 25); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, entries(26, 40, 1, 100))
	after := segmentFiles(t, dir)
	if len(after) >= len(before) || after[0] == segmentName(1) {
		t.Fatalf("segments %v → %v after deleting the head to 25, want the first ones gone", before, after)
	}
	s.Close()
	s = open(t, dir, 2048)
	first, _ := s.FirstIndex()
	if first > 26 || first < 2 {
		t.Fatalf("FirstIndex after reopen = %d, want in [2, 26]", first)
	}
	checkLog(t, s, entries(first, 40, 1, 100))
}

// Entries past a gap (Raft writes them after restoring a snapshot) start
// the log anew; deleting everything empties it; a range inside the log
// and an index already written are refused.
func TestGapsDeletesAndRefusals(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4096)
	store(t, s, entries(1, 5, 1, 10))
	if err := s.StoreLogs(entries(5, 6, 1, 10)); err == nil {
		t.Fatal("StoreLogs of an index already written succeeded")
	}
	if err := s.StoreLogs([]*raft.Log{entries(6, 6, 1, 1)[0], entries(8, 8, 1, 1)[0]}); err == nil {
		t.Fatal("StoreLogs of a batch with a hole succeeded")
	}
	if err := s.DeleteRange(2, 3); err == nil {
		t.Fatal("DeleteRange inside the log succeeded")
	}
	store(t, s, entries(100, 102, 4, 10))
	checkLog(t, s, entries(100, 102, 4, 10))
	if got := segmentFiles(t, dir); !slices.Equal(got, []string{segmentName(100)}) {
		t.Fatalf("segments after a gap = %v, want only %s", got, segmentName(100))
	}
	if err := s.DeleteRange(0, 1000); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, nil)
	s.Close()
	s = open(t, dir, 4096)
	checkLog(t, s, nil)
	store(t, s, entries(200, 200, 5, 10))
	checkLog(t, s, entries(200, 200, 5, 10))
}

// An earlier segment that ends short of the next one is corruption: Open
// refuses it rather than serve a log with entries missing.
func TestDamagedSealedSegmentIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 2048)
	for from := uint64(1); from <= 40; from += 10 {
		store(t, s, entries(from, from+9, 1, 100))
	}
	s.Close()
	path := filepath.Join(dir, segmentName(1))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[headerSize+frameHeader+40] ^= 0xff // in entry 1's data
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir, Options{SegmentBytes: 2048}); err == nil {
		s.Close()
		t.Fatal("Open of a log with a damaged sealed segment succeeded")
	}
}

// A frame with a lower term than the entry before it ends the log.
func TestLowerTermEndsTheLog(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	store(t, s, entries(1, 3, 2, 10))
	store(t, s, entries(4, 4, 1, 10))
	s.Close()
	s = open(t, dir, 1<<20)
	checkLog(t, s, entries(1, 3, 2, 10))
}

// The stable store keeps its keys across a reopen, answers "not found" as
// Raft expects, and refuses a corrupt file.
func TestStable(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("GetUint64 of a key never set = %v, want \"not found\"", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, 0)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("GetUint64 after reopen = %d, %v, want 7", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Fatalf("Get after reopen = %q, %v, want node-2", v, err)
	}
	s.Close()
	path := filepath.Join(dir, StableFile)
	data, _ := os.ReadFile(path)
	data[5] ^= 1
	os.WriteFile(path, data, 0o644)
	if s, err := Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("Open with a corrupt stable file succeeded")
	}
}

// One process at a time.
func TestOpenTwiceIsRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, 0)
	if s, err := Open(dir, Options{}); !errors.Is(err, ErrInUse) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
}

// Readers run while entries are written and the head is deleted (run
// with -race).
func TestConcurrentReads(t *testing.T) {
	s := open(t, t.TempDir(), 8192)
	store(t, s, entries(1, 1, 1, 100))
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				for i := first; i <= last; i += 7 {
					var l raft.Log
					err := s.GetLog(i, &l)
					if errors.Is(err, raft.ErrLogNotFound) {
						continue // the head moved past it
					}
					if err != nil {
						t.Errorf("GetLog(%d): %v", i, err)
						return
					}
					if l.Index != i {
						t.Errorf("GetLog(%d) returned index %d", i, l.Index)
						return
					}
				}
			}
		})
	}
	for from := uint64(2); from < 500; from += 20 {
		store(t, s, entries(from, from+19, 1, 100))
		if from%100 == 2 {
			if err := s.DeleteRange(1, from-1); err != nil {
				t.Error(err)
			}
		}
	}
	close(done)
	wg.Wait()
}

// A tail deleted back to the start of a segment leaves it empty; a batch
// too large for it replaces it with a segment of the same name.
func TestEmptiedSegmentIsReplaced(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 2048)
	store(t, s, entries(1, 10, 1, 100))
	store(t, s, entries(11, 20, 1, 100))
	if got := segmentFiles(t, dir); len(got) < 2 {
		t.Fatalf("segments %v, want entries 11.. in a segment of their own", got)
	}
	var from uint64
	for _, name := range segmentFiles(t, dir)[1:] {
		first, _ := segmentFirst(name)
		from = first
	}
	if err := s.DeleteRange(from, 20); err != nil {
		t.Fatal(err)
	}
	big := entries(from, from, 2, 10_000)
	store(t, s, big)
	s.Close()
	s = open(t, dir, 2048)
	checkLog(t, s, append(entries(1, from-1, 1, 100), big...))
}

// A full segment is followed by the spare made ahead: its file becomes the
// next segment (same inode), which reads back after a reopen; Close leaves
// no spare behind.
func TestNextSegmentIsTheSpare(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4096)
	store(t, s, entries(1, 1, 1, 100))
	spare := filepath.Join(dir, spareFile)
	s.spareWG.Wait() // StoreLogs started making it
	s.spareMu.Lock()
	ready := s.spare != nil
	s.spareMu.Unlock()
	if !ready {
		t.Fatal("no spare segment was made after the first write")
	}
	before, err := os.Stat(spare)
	if err != nil {
		t.Fatal(err)
	}
	all := entries(1, 1, 1, 100)
	for from := uint64(2); len(segmentFiles(t, dir)) < 2; from += 10 {
		batch := entries(from, from+9, 1, 100)
		store(t, s, batch)
		all = append(all, batch...)
	}
	second, err := os.Stat(filepath.Join(dir, segmentFiles(t, dir)[1]))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, second) {
		t.Fatal("the second segment is not the spare made ahead")
	}
	s.Close()
	if _, err := os.Stat(spare); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after Close: %s: %v, want it removed", spareFile, err)
	}
	s = open(t, dir, 4096)
	checkLog(t, s, all)
}

// A tail cut, then entries too large for the rest of that segment, which
// go to a new one: the cut entries must not come back at Open, where the
// old segment would then overlap the new (and Open would refuse the log).
func TestCutTailThenNewSegment(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4096)
	store(t, s, entries(1, 20, 1, 100))
	if err := s.DeleteRange(11, 20); err != nil {
		t.Fatal(err)
	}
	newer := entries(11, 14, 2, 700)
	store(t, s, newer)
	s.Close()
	s = open(t, dir, 4096)
	checkLog(t, s, append(entries(1, 10, 1, 100), newer...))
}

// A segment compaction removed is kept and becomes a later segment (same
// inode) instead of a zero-filled file: written over its old frames, it
// reads back after a reopen with only its new entries. Close leaves no kept
// file behind.
func TestCompactedSegmentIsReused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 2048)
	for from := uint64(1); from <= 40; from += 10 {
		store(t, s, entries(from, from+9, 1, 100))
	}
	var old []os.FileInfo
	for _, name := range segmentFiles(t, dir)[:2] {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, fi)
	}
	if err := s.DeleteRange(1, 30); err != nil {
		t.Fatal(err)
	}
	if got, _ := filepath.Glob(filepath.Join(dir, "recycled-*.tmp")); len(got) == 0 {
		t.Fatalf("no compacted segment kept after deleting the head to 30 (segments now %v)", segmentFiles(t, dir))
	}
	all := entries(31, 40, 1, 100)
	reused := func() bool {
		for _, name := range segmentFiles(t, dir) {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range old {
				if os.SameFile(fi, o) {
					return true
				}
			}
		}
		return false
	}
	for from := uint64(41); !reused(); from += 10 {
		if from > 200 {
			t.Fatalf("no segment reuses a compacted one's file after 160 more entries (segments %v)", segmentFiles(t, dir))
		}
		batch := entries(from, from+9, 2, 100)
		store(t, s, batch)
		all = append(all, batch...)
	}
	s.Close()
	if got, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(got) != 0 {
		t.Fatalf("after Close: %v left, want them removed", got)
	}
	s = open(t, dir, 2048)
	checkLog(t, s, all)
}
