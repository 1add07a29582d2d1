package logstore

import (
	"sync"
	"testing"
	"time"
)

// TestStats checks that Stats counts what is on disk, moves with appends and
// retention, and that every fsync is reported to OnSync.
func TestStats(t *testing.T) {
	c := testConfig(t)
	c.RetainBytes = 16 << 10
	var mu sync.Mutex
	syncs := 0
	c.OnSync = func(d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if d < 0 || err != nil {
			t.Errorf("OnSync(%v, %v)", d, err)
		}
		syncs++
	}
	dir := t.TempDir()
	l := openLog(t, dir, c)
	if st := l.Stats(); st.Segments != 1 || st.LowestOffset != 0 || st.NextOffset != 0 || st.DroppedSegments != 0 {
		t.Fatalf("Stats of an empty log = %+v", st)
	}
	onDisk := func() int64 {
		var total int64
		for name, b := range readDirFiles(t, dir) {
			if _, _, ok := parseSegmentName(name); ok {
				total += int64(len(b))
			}
		}
		return total
	}
	appendN(t, l, 0, 50)
	st := l.Stats()
	if st.NextOffset != 50 || st.Bytes != onDisk() {
		t.Fatalf("after 50 records: Stats = %+v, %d bytes on disk", st, onDisk())
	}
	appendN(t, l, 50, 1950)
	st = l.Stats()
	if st.NextOffset != 2000 || st.LowestOffset != l.LowestOffset() || st.LowestOffset == 0 || st.DroppedSegments == 0 {
		t.Fatalf("after retention: Stats = %+v", st)
	}
	if st.Bytes != onDisk() || st.Bytes > c.RetainBytes+c.MaxStoreBytes {
		t.Fatalf("after retention: Stats.Bytes %d, %d bytes on disk, RetainBytes %d", st.Bytes, onDisk(), c.RetainBytes)
	}
	if st.Segments != len(l.cur.Load().segs) {
		t.Fatalf("Stats.Segments %d, the log has %d", st.Segments, len(l.cur.Load().segs))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// One per sealed segment (more than were dropped) and the Sync.
	if want := int(st.DroppedSegments) + st.Segments; syncs < want {
		t.Fatalf("OnSync called %d times, want at least %d", syncs, want)
	}
}
