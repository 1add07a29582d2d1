package raftfsm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// waitApplyStatus waits, on the replica's own notifications, until its
// ApplyStatus error is set (failing true) or clear.
func waitApplyStatus(t testing.TB, l *Log, failing bool, timeout time.Duration) error {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed, err := l.ApplyStatus()
		if (err != nil) == failing {
			return err
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: ApplyStatus error is %v after %v; want it set: %v", l.id.NodeID, err, timeout, failing)
		}
	}
}

// A follower whose appends fail for a while (the disk is full) does not skip
// the committed entries: it says it cannot apply, retries, and once the
// failure ends catches up with the leader without a restart, every record
// exactly once. The first failed append had reached the log before failing,
// so applying it again would duplicate it.
func TestFollowerRecoversFromFailingAppends(t *testing.T) {
	var faults [3]atomic.Int32 // per node: faultNone, faultWrittenOnce, faultFail
	const (
		faultNone = iota
		faultWrittenOnce
		faultFail
	)
	var failed [3]atomic.Int32 // failed appends per node
	tc := newTestClusterWith(t, 3, func(i int, _ string, c *Config) {
		c.applyFault = func() (error, bool) {
			switch faults[i].Load() {
			case faultWrittenOnce:
				faults[i].Store(faultFail)
				failed[i].Add(1)
				return &os.PathError{Op: "write", Path: "test", Err: syscall.ENOSPC}, true
			case faultFail:
				failed[i].Add(1)
				return &os.PathError{Op: "write", Path: "test", Err: syscall.ENOSPC}, false
			}
			return nil, false
		}
	})
	tc.appendValues(0, 100)
	lead := tc.leaderIndex()
	f := (lead + 1) % 3
	follower := tc.nodes[f]
	tc.checkLog(f, 100)

	faults[f].Store(faultWrittenOnce)
	// The other two are a quorum: commits go on.
	tc.appendValues(100, 300)
	err := waitApplyStatus(t, follower, true, 10*time.Second)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("ApplyStatus error = %v, want the append's ENOSPC", err)
	}
	if next := follower.NextOffset(); next >= 400 {
		t.Fatalf("follower applied up to %d while its appends failed", next)
	}
	// Let it fail through a few retries.
	waitFor(t, 10*time.Second, "three failed appends on the follower", func() bool { return failed[f].Load() >= 3 })
	if _, err := follower.ApplyStatus(); err == nil {
		t.Fatal("the follower reports it applies while its appends fail")
	}
	stuck := follower.NextOffset()
	t.Logf("follower stuck at next offset %d after %d failed appends", stuck, failed[f].Load())

	faults[f].Store(faultNone)
	if err := waitApplyStatus(t, follower, false, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	tc.appendValues(400, 50)
	for i := range tc.nodes {
		tc.checkLog(i, 450)
	}
}

// waitFor waits until cond holds, looking every 10 ms, and fails the test
// with what it waited for after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mountTmpfs mounts a tmpfs of size (mount's syntax, e.g. "8m") on dir until
// the test ends; it skips the test where that cannot be done.
func mountTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// A follower whose log directory fills up (a real ENOSPC on a small tmpfs)
// stops applying, says so, and once the filesystem is grown catches up with
// the leader by itself.
func TestFollowerRecoversFromFullDisk(t *testing.T) {
	tc := newTestClusterWith(t, 3, func(i int, dir string, _ *Config) {
		if i == 2 {
			logDir := filepath.Join(dir, "log")
			if _, err := os.Stat(logDir); os.IsNotExist(err) {
				if err := os.MkdirAll(logDir, 0o755); err != nil {
					t.Fatal(err)
				}
				mountTmpfs(t, logDir, "1m")
			}
		}
	})
	// The tmpfs node must be a follower; node-0 bootstrapped and leads.
	if lead := tc.leaderIndex(); lead == 2 {
		t.Skip("the node on the tmpfs became leader")
	}
	const f = 2
	follower := tc.nodes[f]
	// 1 MiB fills with about 2,000 records of 512 bytes; 4,000 overfill it.
	const total = 4000
	big := func(i uint64) []byte { return append(value(i), make([]byte, 500)...) }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := uint64(0); i < total; i += 50 {
		batch := make([][]byte, 50)
		for j := range batch {
			batch[j] = big(i + uint64(j))
		}
		if off, err := tc.leader().Append(ctx, batch...); err != nil || off != i {
			t.Fatalf("Append(%d..) = %d, %v", i, off, err)
		}
	}
	err := waitApplyStatus(t, follower, true, 10*time.Second)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("ApplyStatus error = %v, want ENOSPC", err)
	}
	if next := follower.NextOffset(); next >= total {
		t.Fatalf("follower applied up to %d on a full disk", next)
	}
	t.Logf("follower stuck at next offset %d: %v", follower.NextOffset(), err)

	logDir := filepath.Join(tc.dirs[f], "log")
	if out, err := exec.Command("mount", "-o", "remount,size=16m", logDir).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v: %s", err, out)
	}
	if err := waitApplyStatus(t, follower, false, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	tc.waitApplied(f, total)
	lead := tc.leader()
	for off := uint64(0); off < total; off++ {
		want, err := lead.Read(off)
		if err != nil {
			t.Fatalf("leader Read(%d): %v", off, err)
		}
		got, err := follower.Read(off)
		if err != nil || string(got) != string(want) || string(got) != string(big(off)) {
			t.Fatalf("follower offset %d = %.20q, %v; want %.20q", off, got, err, big(off))
		}
	}
	if next := follower.NextOffset(); next != total {
		t.Fatalf("follower NextOffset = %d, want %d", next, total)
	}
}
