package raftlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// The crash test runs the test binary again as a child that appends to a
// store, compacting its head as Raft does, until it is killed with SIGKILL.
const (
	crashDirEnv  = "RAFTLOG_CRASH_CHILD_DIR" // set only in the child
	crashTermEnv = "RAFTLOG_CRASH_CHILD_TERM"
	// crashSegmentBytes makes a segment hold about 15 entries, and
	// crashKeep entries span about 13 of them, so every compaction removes
	// (and keeps for reuse) several segments.
	crashSegmentBytes = 4096
	crashKeep         = 200
)

// crashEntry is entry i as a child of term writes it: its size and data
// follow from i and term.
func crashEntry(i, term uint64) *raft.Log { return entries(i, i, term, 100+int(i%300))[0] }

// TestCrashChild is the child of TestCrash; it does nothing in a normal
// run. From the store's last index on it stores batches of crashEntry of
// its term, reports "stored <last index>" after each, and deletes the
// head down to crashKeep/2 entries whenever more than crashKeep are held.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrash")
	}
	term, err := strconv.ParseUint(os.Getenv(crashTermEnv), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{SegmentBytes: crashSegmentBytes})
	if err != nil {
		t.Fatal(err)
	}
	last, _ := s.LastIndex()
	rng := rand.New(rand.NewPCG(term, 1))
	for {
		batch := make([]*raft.Log, 1+rng.IntN(8))
		for k := range batch {
			batch[k] = crashEntry(last+1+uint64(k), term)
		}
		if err := s.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
		last += uint64(len(batch))
		if _, err := fmt.Fprintf(os.Stdout, "stored %d\n", last); err != nil {
			t.Fatal(err)
		}
		if first, _ := s.FirstIndex(); last-first+1 > crashKeep {
			if err := s.DeleteRange(first, last-crashKeep/2); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCrash kills a child storing and compacting at random moments, then
// checks that the store opens with consecutive entries, each exactly as
// written and of a term no lower than the one before, up to at least the
// last one the child reported stored; the next child, of a higher term,
// goes on in the same directory. Compactions keep segment files for reuse,
// so most children write over the old frames of reused files.
func TestCrash(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child process")
	}
	cycles := 40
	if testing.Short() {
		cycles = 10
	}
	rng := rand.New(rand.NewPCG(uint64(cycles), 2))
	dir := t.TempDir()
	killedWithReusable := 0
	for cycle := 1; cycle <= cycles; cycle++ {
		stored := crashChild(t, dir, uint64(cycle), 1+rng.IntN(120))
		if m, _ := filepath.Glob(filepath.Join(dir, "recycled-*.tmp")); len(m) > 0 {
			killedWithReusable++
		}
		s, err := Open(dir, Options{SegmentBytes: crashSegmentBytes})
		if err != nil {
			t.Fatalf("cycle %d: Open after the kill: %v", cycle, err)
		}
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if last < stored {
			t.Fatalf("cycle %d: LastIndex %d after the kill, but the child reported %d stored", cycle, last, stored)
		}
		var term uint64
		for i := first; i <= last; i++ {
			var got raft.Log
			if err := s.GetLog(i, &got); err != nil {
				t.Fatalf("cycle %d: GetLog(%d) in [%d, %d]: %v", cycle, i, first, last, err)
			}
			want := crashEntry(i, got.Term)
			if got.Term < term || got.Term > uint64(cycle) || !bytes.Equal(got.Data, want.Data) || got.Index != i {
				t.Fatalf("cycle %d: entry %d = index %d term %d data %.20q…, want term in [%d, %d] and data %.20q…",
					cycle, i, got.Index, got.Term, got.Data, term, cycle, want.Data)
			}
			term = got.Term
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if killedWithReusable == 0 {
		t.Fatalf("no child was killed while it kept a compacted segment's file: the test does not reach reuse")
	}
	t.Logf("%d cycles, %d killed while holding compacted segments' files", cycles, killedWithReusable)
}

// crashChild starts a child of term in dir, reads lines reports of it,
// kills it with SIGKILL and returns the last index it reported stored. A
// child that stops reporting ends at its own -test.timeout, which ends the
// read.
func crashChild(t *testing.T, dir string, term uint64, lines int) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=1m")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashTermEnv+"="+strconv.FormatUint(term, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(pipe)
	var stored uint64
	for range lines {
		line, err := out.ReadString('\n')
		n, perr := strconv.ParseUint(strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "stored "), 10, 64)
		if err != nil || perr != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child of term %d wrote %q (%v); stderr:\n%s", term, line, err, stderr.String())
		}
		stored = n
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("child of term %d ended with %v before it was killed; stderr:\n%s", term, err, stderr.String())
	}
	return stored
}
