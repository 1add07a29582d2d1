package raftfsm

import (
	"testing"
	"time"
)

// checkTimes verifies node i's records below next carry the same times as
// want (the records' times read from another replica, by offset), that they
// never decrease by offset and lie in [lo, hi].
func (tc *testCluster) checkTimes(i int, next uint64, want map[uint64]int64, lo, hi int64) map[uint64]int64 {
	tc.t.Helper()
	tc.waitApplied(i, next)
	n := tc.nodes[i]
	got := map[uint64]int64{}
	var prev int64
	for off := n.LowestOffset(); off < next; {
		recs, err := n.ReadRecords(off, 64<<10)
		if err != nil {
			tc.t.Fatalf("%s ReadRecords(%d): %v", nodeID(i), off, err)
		}
		for _, r := range recs {
			switch {
			case r.Offset != off:
				tc.t.Fatalf("%s ReadRecords: record at %d says offset %d", nodeID(i), off, r.Offset)
			case r.Time < lo || r.Time > hi:
				tc.t.Fatalf("%s offset %d time %d is outside the test's window [%d, %d]", nodeID(i), off, r.Time, lo, hi)
			case r.Time < prev:
				tc.t.Fatalf("%s offset %d time %d is below the previous record's %d", nodeID(i), off, r.Time, prev)
			}
			if w, ok := want[off]; ok && w != r.Time {
				tc.t.Fatalf("%s offset %d time %d, another replica has %d", nodeID(i), off, r.Time, w)
			}
			got[off] = r.Time
			prev = r.Time
			off++
		}
	}
	return got
}

// TestRecordsCarryTheLeadersTime: every replica stamps each record with the
// time its leader gave the entry, the same on all of them, also on a
// follower that caught up through a snapshot and after every node restarts;
// OffsetForTime finds the first record appended after a time noted between
// two appends.
func TestRecordsCarryTheLeadersTime(t *testing.T) {
	tc := newTestCluster(t, 3)
	lo := time.Now().UnixNano()
	tc.appendValues(0, 50)
	mid := time.Now().UnixNano()
	var lagger int
	for i, n := range tc.nodes {
		if !n.IsLeader() {
			lagger = i
		}
	}
	tc.leaveBehind(lagger, 50, 2000)
	tc.start(lagger, false)
	tc.appendValues(2050, 10)
	hi := time.Now().UnixNano()

	want := tc.checkTimes(tc.leaderIndex(), 2060, nil, lo, hi)
	check := func(when string) {
		t.Helper()
		for i := range tc.nodes {
			tc.checkTimes(i, 2060, want, lo, hi)
			for _, c := range []struct {
				ts   int64
				want uint64
			}{
				{0, 0},
				{lo, 0},
				{mid, 50},
				{want[1000], firstAt(want, want[1000])},
				{hi + 1, 2060},
			} {
				if got, err := tc.nodes[i].OffsetForTime(c.ts); err != nil || got != c.want {
					t.Fatalf("%s: %s OffsetForTime(%d) = %d, %v; want %d", when, nodeID(i), c.ts, got, err, c.want)
				}
			}
		}
	}
	check("after a snapshot install")
	if tc.nodes[lagger].Stats().Snapshots.Restored == 0 {
		t.Fatalf("%s caught up without restoring a snapshot", nodeID(lagger))
	}
	for i := range tc.nodes {
		tc.stop(i)
	}
	tc.start(0, false)
	tc.start(1, false)
	tc.start(2, false)
	check("after a restart")
}

// firstAt returns the lowest offset whose time in times is ts.
func firstAt(times map[uint64]int64, ts int64) uint64 {
	first := ^uint64(0)
	for off, t := range times {
		if t == ts && off < first {
			first = off
		}
	}
	return first
}
