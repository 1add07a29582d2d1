package raftfsm

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestLogCache(t *testing.T) {
	entry := func(i uint64, size int) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: make([]byte, size)}
	}
	tests := []struct {
		name      string
		store     [][]*raft.Log // StoreLogs calls
		deleteTo  uint64        // DeleteRange(1, deleteTo) after them, when set
		wantCache []uint64      // indexes served from the cache
		wantBytes int
	}{
		{
			name:      "keeps the newest within the byte bound",
			store:     [][]*raft.Log{{entry(1, 40), entry(2, 40)}, {entry(3, 40)}},
			wantCache: []uint64{2, 3},
			wantBytes: 80,
		},
		{
			name:      "keeps the newest within the count bound",
			store:     [][]*raft.Log{{entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1), entry(5, 1)}},
			wantCache: []uint64{2, 3, 4, 5},
			wantBytes: 4,
		},
		{
			name:      "an entry larger than the bound is not cached",
			store:     [][]*raft.Log{{entry(1, 10), entry(2, 101)}},
			wantCache: nil,
		},
		{
			name:      "a gap starts the run again",
			store:     [][]*raft.Log{{entry(1, 10), entry(2, 10)}, {entry(7, 10)}},
			wantCache: []uint64{7},
			wantBytes: 10,
		},
		{
			name:      "DeleteRange empties it",
			store:     [][]*raft.Log{{entry(1, 10), entry(2, 10)}},
			deleteTo:  1,
			wantCache: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backing := raft.NewInmemStore()
			c := newLogCache(backing, 100, 4)
			for _, logs := range tt.store {
				if err := c.StoreLogs(logs); err != nil {
					t.Fatal(err)
				}
			}
			if tt.deleteTo > 0 {
				if err := c.DeleteRange(1, tt.deleteTo); err != nil {
					t.Fatal(err)
				}
			}
			n, b := c.cached()
			if n != len(tt.wantCache) || b != tt.wantBytes {
				t.Fatalf("cache holds %d entries, %d bytes; want %d, %d", n, b, len(tt.wantCache), tt.wantBytes)
			}
			// Every stored entry reads back, from the cache or the store;
			// the cached ones even once the store has lost them.
			for _, i := range tt.wantCache {
				if err := backing.DeleteRange(i, i); err != nil {
					t.Fatal(err)
				}
				var got raft.Log
				if err := c.GetLog(i, &got); err != nil || got.Index != i {
					t.Fatalf("GetLog(%d) = %d, %v; want it from the cache", i, got.Index, err)
				}
			}
			for _, logs := range tt.store {
				for _, l := range logs {
					if l.Index <= tt.deleteTo {
						continue
					}
					var got raft.Log
					if err := c.GetLog(l.Index, &got); err != nil || got.Index != l.Index || len(got.Data) != len(l.Data) {
						t.Fatalf("GetLog(%d) = %d (%d bytes), %v", l.Index, got.Index, len(got.Data), err)
					}
				}
			}
		})
	}
}

// TestRaftLogBoundedByBytes appends 8×SnapshotBytes in entries of 16 KiB and checks that Raft's log store keeps about SnapshotBytes plus
// TrailingBytes of them, and that a restart on the compacted log serves
// every record once.
func TestRaftLogBoundedByBytes(t *testing.T) {
	forEachStore(t, testRaftLogBoundedByBytes)
}

func testRaftLogBoundedByBytes(t *testing.T, kind string) {
	const (
		// A quarter of it exceeds the test's active segment (64 KiB and a
		// batch), so the snapshot is never put off for a cheaper one.
		snapshotBytes = 512 << 10
		trailingBytes = 64 << 10
		recordSize    = 1 << 10
		perAppend     = 16
		appends       = 256 // 4 MiB
	)
	tc := &testCluster{t: t, cut: map[[2]int]bool{}}
	tc.dirs = []string{t.TempDir()}
	tc.nodes, tc.trans = make([]*Log, 1), make([]*raft.InmemTransport, 1)
	tc.conf = func(i int) Config {
		c := testConfig()
		c.SnapshotBytes, c.TrailingBytes = snapshotBytes, trailingBytes
		c.TrailingLogs = 1 << 20 // the byte bound decides
		c.RaftLogStore = kind
		return c
	}
	tc.start(0, true)
	t.Cleanup(tc.close)
	l := tc.leader()

	rec := func(off uint64) []byte {
		b := bytes.Repeat([]byte{'.'}, recordSize)
		copy(b, fmt.Sprint(off))
		return b
	}
	for a := range appends {
		batch := make([][]byte, perAppend)
		for i := range batch {
			batch[i] = rec(uint64(a*perAppend + i))
		}
		if off, err := l.Append(context.Background(), batch...); err != nil || off != uint64(a*perAppend) {
			t.Fatalf("Append %d: offset %d, %v", a, off, err)
		}
	}
	entryBytes := entrySize(make([][]byte, perAppend)) + perAppend*(recordSize+2)
	maxKept := (snapshotBytes+trailingBytes)/entryBytes + 2
	kept := func(l *Log) uint64 {
		first, err1 := l.stores.FirstIndex()
		last, err2 := l.stores.LastIndex()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		return last - first + 1
	}
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for kept(l) > uint64(maxKept) {
		select {
		case <-l.compacted:
		case <-timeout.C:
			t.Fatalf("Raft's log keeps %d entries of %d bytes after %d appends; want at most %d", kept(l), entryBytes, appends, maxKept)
		}
	}
	t.Logf("Raft's log keeps %d entries of %d bytes after %d appends (bound %d)", kept(l), entryBytes, appends, maxKept)

	tc.stop(0)
	tc.start(0, false)
	l = tc.leader()
	if got := l.NextOffset(); got != appends*perAppend {
		t.Fatalf("after a restart NextOffset = %d, want %d", got, appends*perAppend)
	}
	for off := uint64(0); off < appends*perAppend; off++ {
		got, err := l.Read(off)
		if err != nil || !bytes.Equal(got, rec(off)) {
			t.Fatalf("offset %d = %.10q, %v; want %.10q", off, got, err, rec(off))
		}
	}
	if off, err := l.Append(context.Background(), rec(appends*perAppend)); err != nil || off != appends*perAppend {
		t.Fatalf("Append after restart: offset %d, %v", off, err)
	}
}
