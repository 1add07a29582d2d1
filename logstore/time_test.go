package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// timedLog is a log with the times its records must have: times[i] is the
// time of the record at offset low+i (0: none), and latest the latest time
// stamped, which a lower time is raised to.
type timedLog struct {
	t      testing.TB
	l      *Log
	next   uint64
	low    uint64
	times  []int64
	latest int64
}

// add appends n records (record(off)) stamped with ts, with meta, and notes
// the time they must get.
func (tl *timedLog) add(meta []byte, ts int64, n int) {
	tl.t.Helper()
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = record(tl.next + uint64(i))
	}
	first, err := tl.l.AppendTimed(meta, ts, recs...)
	if err != nil || first != tl.next {
		tl.t.Fatalf("AppendTimed(%d records at %d, time %d) = %d, %v", n, tl.next, ts, first, err)
	}
	if ts != 0 && n > 0 {
		ts = max(ts, tl.latest)
		tl.latest = ts
	}
	for range n {
		tl.times = append(tl.times, ts)
	}
	tl.next += uint64(n)
}

// retained forgets the records below the log's lowest offset.
func (tl *timedLog) retained() {
	low := tl.l.LowestOffset()
	tl.times = tl.times[low-tl.low:]
	tl.low = low
}

// wantOffsetForTime is OffsetForTime by its definition: the first record
// with a time at or after ts, records without time skipped.
func wantOffsetForTime(low uint64, times []int64, ts int64) uint64 {
	if ts <= 0 {
		return low
	}
	for i, t := range times {
		if t != 0 && t >= ts {
			return low + uint64(i)
		}
	}
	return low + uint64(len(times))
}

// checkTimes checks that every record of l from low on reads back with its
// offset, value (record(off)) and time (ReadRecords, in batches of several
// sizes), and that OffsetForTime answers by its definition at every time the
// records have, just before and after each, and beyond both ends.
func checkTimes(t testing.TB, l *Log, low uint64, times []int64) {
	t.Helper()
	checkTimesOf(t, l, low, times, record)
}

// checkTimesOf is checkTimes of records whose values value returns.
func checkTimesOf(t testing.TB, l *Log, low uint64, times []int64, value func(off uint64) []byte) {
	t.Helper()
	next := low + uint64(len(times))
	if l.LowestOffset() != low || l.NextOffset() != next {
		t.Fatalf("log holds [%d, %d), want [%d, %d)", l.LowestOffset(), l.NextOffset(), low, next)
	}
	for _, budget := range []int{300, 1 << 20} {
		for off := low; off < next; {
			recs, err := l.ReadRecords(off, budget)
			if err != nil || len(recs) == 0 {
				t.Fatalf("ReadRecords(%d, %d) = %d records, %v", off, budget, len(recs), err)
			}
			for i, r := range recs {
				o := off + uint64(i)
				if r.Offset != o || r.Time != times[o-low] || !bytes.Equal(r.Value, value(o)) {
					t.Fatalf("ReadRecords(%d, %d)[%d] = {%d %d %.20q}, want {%d %d %.20q}", off, budget, i, r.Offset, r.Time, r.Value, o, times[o-low], value(o))
				}
			}
			off += uint64(len(recs))
		}
	}
	probes := []int64{math.MinInt64, -1, 0, 1, math.MaxInt64}
	for _, tm := range times {
		if tm != 0 {
			probes = append(probes, tm-1, tm, tm+1)
		}
	}
	slices.Sort(probes)
	probes = slices.Compact(probes)
	if stride := len(probes) / 50; stride > 1 {
		// A long log: the ends and a spread of times.
		some := []int64{probes[0], probes[len(probes)-1]}
		for i := 0; i+1 < len(probes); i += stride {
			some = append(some, probes[i], probes[i+1])
		}
		probes = some
	}
	for _, ts := range probes {
		got, err := l.OffsetForTime(ts)
		if want := wantOffsetForTime(low, times, ts); err != nil || got != want {
			t.Fatalf("OffsetForTime(%d) = %d, %v; want %d (log [%d, %d))", ts, got, err, want, low, next)
		}
	}
}

func TestAppendTimedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t)
	tl := &timedLog{t: t, l: openLog(t, dir, c)}
	checkTimes(t, tl.l, 0, nil)
	tl.add(nil, 1000, 3)
	tl.add(nil, 0, 2) // without time
	tl.add([]byte("m"), 2000, 1)
	tl.add(nil, 1500, 2) // raised to 2000
	tl.add(nil, 2000, 1)
	tl.add(nil, 1, 1) // raised to 2000
	tl.add(nil, 5000, 4)
	checkTimes(t, tl.l, 0, tl.times)
	if got := tl.times[8]; got != 2000 {
		t.Fatalf("a time below the latest was stored as %d, want it raised to 2000", got)
	}
	// Read and ReadBatch give the values as before.
	checkRecords(t, tl.l, 0, tl.next)

	// Enough to seal segments, with times going back now and then.
	for i := range 150 {
		ts := int64(10_000 + 100*i)
		switch {
		case i%5 == 0:
			ts = 0
		case i%7 == 0:
			ts -= 1000
		}
		tl.add(nil, ts, 1+i%4)
	}
	if n := len(tl.l.cur.Load().segs); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}
	checkTimes(t, tl.l, 0, tl.times)

	// Metadata alone stores no time.
	if first, err := tl.l.AppendTimed([]byte("meta only"), math.MaxInt64); err != nil || first != tl.next {
		t.Fatalf("AppendTimed with metadata only = %d, %v", first, err)
	}
	if _, err := tl.l.AppendTimed(nil, -1, []byte("x")); err == nil {
		t.Fatal("AppendTimed with a negative time succeeded")
	}

	// The latest time survives a reopen: a lower one is still raised.
	tl.l.Close()
	tl.l = openLog(t, dir, c)
	if got := tl.l.Meta(); string(got) != "meta only" {
		t.Fatalf("Meta after reopen = %q", got)
	}
	checkTimes(t, tl.l, 0, tl.times)
	tl.add(nil, 1, 2)
	if got := tl.times[len(tl.times)-1]; got != tl.latest || got < 10_000 {
		t.Fatalf("after reopen a low time was stored as %d, want the latest %d", got, tl.latest)
	}
	checkTimes(t, tl.l, 0, tl.times)
	tl.l.Close()
	if r := mustCheck(t, dir, CheckOptions{}); r.Problems() {
		t.Fatalf("Check: %+v", r.Segments)
	}
}

// TestOffsetForTime checks OffsetForTime at its boundaries, on logs built
// for each, against its definition.
func TestOffsetForTime(t *testing.T) {
	small := testConfig(t)
	tests := []struct {
		name  string
		conf  func(c *Config)
		build func(tl *timedLog)
		// want holds OffsetForTime answers checked by name, beside the
		// definition that checkTimes checks.
		want map[int64]uint64
	}{
		{"empty log", nil, func(tl *timedLog) {}, map[int64]uint64{0: 0, 1: 0, math.MaxInt64: 0}},
		{"empty log at an initial offset", func(c *Config) { c.InitialOffset = 100 }, func(tl *timedLog) {
			tl.next, tl.low = 100, 100
		}, map[int64]uint64{-1: 100, 1: 100, 7: 100}},
		{"one segment", nil, func(tl *timedLog) {
			tl.add(nil, 10, 2) // 0, 1
			tl.add(nil, 20, 1) // 2
			tl.add(nil, 20, 2) // 3, 4: the same time again
			tl.add(nil, 0, 3)  // 5..7 without time
			tl.add(nil, 30, 1) // 8
			tl.add(nil, 0, 1)  // 9
		}, map[int64]uint64{
			-5: 0, 0: 0, 1: 0, 9: 0, // before all
			10: 0, 20: 2, 30: 8, // exact
			11: 2, 21: 8, 29: 8, // between, skipping records without time
			31: 10, math.MaxInt64: 10, // after all
		}},
		{"only records without time", nil, func(tl *timedLog) {
			tl.add(nil, 0, 5)
		}, map[int64]uint64{0: 0, 1: 5, 1 << 40: 5}},
		{"records without time first", nil, func(tl *timedLog) {
			tl.add(nil, 0, 4)
			tl.add(nil, 50, 1)
		}, map[int64]uint64{0: 0, 1: 4, 50: 4, 51: 5}},
		{"across segments", nil, func(tl *timedLog) {
			for i := range 300 {
				ts := int64(1000 + 10*i)
				if i%6 == 5 {
					ts = 0
				}
				tl.add(nil, ts, 1+i%3)
			}
		}, nil},
		{"segments without time between", nil, func(tl *timedLog) {
			tl.add(nil, 100, 3)
			for range 150 {
				tl.add(nil, 0, 1)
			}
			tl.add(nil, 200, 1)
		}, map[int64]uint64{100: 0, 101: 153, 200: 153, 201: 154}},
		{"after retention", func(c *Config) { c.RetainBytes = 12 << 10 }, func(tl *timedLog) {
			for i := range 400 {
				tl.add(nil, int64(1000+10*i), 1+i%2)
			}
			tl.retained()
			if tl.low == 0 {
				tl.t.Fatal("retention dropped nothing")
			}
		}, nil},
		{"after retention dropped every record with time", func(c *Config) { c.RetainBytes = 12 << 10 }, func(tl *timedLog) {
			tl.add(nil, 1000, 5)
			for range 300 {
				tl.add(nil, 0, 1)
			}
			tl.retained()
			// The latest time outlives its records: a lower one is raised.
			tl.add(nil, 10, 1)
			if got := tl.times[len(tl.times)-1]; got != 1000 {
				tl.t.Fatalf("time stamped as %d after retention, want 1000", got)
			}
		}, nil},
		{"markers in long stretches without time", func(c *Config) { c.MaxStoreBytes = 1 << 20 }, func(tl *timedLog) {
			tl.add(nil, 100, 2)
			for range 3000 { // about 300 KiB without time
				tl.add(nil, 0, 1)
			}
			tl.add(nil, 300, 2)
			for range 1000 {
				tl.add(nil, 0, 1)
			}
			act := tl.l.cur.Load().segs[0]
			if act.times < 5 {
				tl.t.Fatalf("%d time index entries, want markers beside the 2 of batches with time", act.times)
			}
		}, map[int64]uint64{100: 0, 101: 3002, 300: 3002, 301: 4004}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := small
			if tt.conf != nil {
				tt.conf(&c)
			}
			c.Logger = quietConfig(t).Logger
			dir := t.TempDir()
			tl := &timedLog{t: t, l: openLog(t, dir, c)}
			tt.build(tl)
			check := func(when string) {
				t.Helper()
				checkTimes(t, tl.l, tl.low, tl.times)
				for ts, want := range tt.want {
					if got, err := tl.l.OffsetForTime(ts); err != nil || got != want {
						t.Fatalf("%s: OffsetForTime(%d) = %d, %v; want %d", when, ts, got, err, want)
					}
				}
			}
			check("open")
			tl.l.Close()
			if _, err := tl.l.OffsetForTime(1); !errors.Is(err, ErrClosed) {
				t.Fatalf("OffsetForTime on a closed log: %v", err)
			}
			tl.l = openLog(t, dir, c)
			check("reopened")
		})
	}
}

// timedFiles builds a closed log of records with and without time over
// several segments, and returns its files and the times of its records.
func timedFiles(t testing.TB) (dirFiles, []int64, []uint64) {
	t.Helper()
	dir := t.TempDir()
	tl := &timedLog{t: t, l: openLog(t, dir, quietConfig(t))}
	for i := 0; len(tl.l.cur.Load().segs) < 4; i++ {
		ts := int64(1_000_000 + 1000*i)
		switch {
		case i%4 == 3:
			ts = 0
		case i%5 == 0:
			ts -= 5000 // raised
		}
		var meta []byte
		if i%3 == 0 {
			meta = fmt.Appendf(nil, "meta-%d", i)
		}
		tl.add(meta, ts, 1+i%3)
	}
	// The active segment's tail: with time, without, metadata alone.
	tl.add(nil, 5_000_000, 2)
	tl.add(nil, 0, 1)
	tl.add([]byte("only"), 0, 0)
	tl.add(nil, 6_000_000, 1)
	var bases []uint64
	for _, s := range tl.l.cur.Load().segs {
		bases = append(bases, s.base)
	}
	if err := tl.l.Close(); err != nil {
		t.Fatal(err)
	}
	files := readDirFiles(t, dir)
	delete(files, "LOCK")
	return files, tl.times, bases
}

func timeIndexName(base uint64) string { return segmentName(base) + timeIndexExt }

// TestTimeIndexRecovery damages time index files the ways a crash or a disk
// can, and checks that Open rebuilds them from the store exactly as they were
// written, leaving the store and the index alone.
func TestTimeIndexRecovery(t *testing.T) {
	files, times, bases := timedFiles(t)
	active, sealed := timeIndexName(bases[len(bases)-1]), timeIndexName(bases[1])
	type mutation struct {
		name   string
		mutate func(t testing.TB, dir string)
	}
	var cases []mutation
	for _, name := range []string{active, sealed} {
		size := int64(len(files[name]))
		cases = append(cases,
			mutation{name + " missing", removeFile(name)},
			mutation{name + " zero-extended", appendToFile(name, make([]byte, 3*timeEntrySize+5))},
			mutation{name + " last entry repeated", appendToFile(name, files[name][size-timeEntrySize:])},
			mutation{name + " bogus entry", appendToFile(name, appendTimeEntry(nil, timeEntry{time: 7_000_000, rel: 1}))},
			mutation{name + " header damaged", flipBit(name, 2, 1)},
		)
		for n := int64(0); n < size; n++ {
			cases = append(cases, mutation{fmt.Sprintf("%s truncated to %d bytes", name, n), truncateFile(name, n)})
		}
	}
	// A crash between writing the seal entry of the active segment and
	// starting the next one leaves a seal entry in the active segment.
	seal := appendTimeEntry(nil, timeEntry{time: 6_000_000, rel: uint32(uint64(len(times)) - bases[len(bases)-1]), marker: true})
	cases = append(cases,
		mutation{"seal entry in the active segment", appendToFile(active, seal)},
		mutation{"every time index missing", func(t testing.TB, dir string) {
			for _, b := range bases {
				removeFile(timeIndexName(b))(t, dir)
			}
		}},
		mutation{"every index missing", func(t testing.TB, dir string) {
			for _, b := range bases {
				removeFile(timeIndexName(b), indexName(b))(t, dir)
			}
		}},
	)
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files.restore(t, dir)
			tc.mutate(t, dir)
			l := openLog(t, dir, quietConfig(t))
			checkTimes(t, l, 0, times)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, dir, files)
		})
	}

	// A bit flipped in any entry: Open repairs it when it is in the tail it
	// checks; elsewhere OffsetForTime answers right or refuses with
	// ErrCorrupt naming the file, never wrong, and Check finds it and Repair
	// fixes it.
	outcomes := map[string]int{}
	for _, name := range []string{active, sealed, timeIndexName(bases[0])} {
		for pos := int64(headerSize); pos < int64(len(files[name])); pos++ {
			files.restore(t, dir)
			flipBit(name, pos, uint(pos*3)%8)(t, dir)
			l := openLog(t, dir, quietConfig(t))
			refused := false
			for _, ts := range append([]int64{1, math.MaxInt64}, times...) {
				got, err := l.OffsetForTime(ts)
				switch want := wantOffsetForTime(0, times, ts); {
				case err == nil && got == want:
				case err == nil:
					t.Fatalf("%s byte %d flipped: OffsetForTime(%d) = %d, want %d", name, pos, ts, got, want)
				case isCorruptIn(err, name):
					refused = true
				default:
					t.Fatalf("%s byte %d flipped: OffsetForTime(%d): %v, want ErrCorrupt naming the file", name, pos, ts, err)
				}
			}
			l.Close()
			r := mustCheck(t, dir, CheckOptions{Repair: true})
			switch {
			case r.Repaired():
				outcomes["found by Check, repaired"]++
			case refused:
				t.Fatalf("%s byte %d flipped: OffsetForTime refused, Check found nothing", name, pos)
			default:
				outcomes["repaired by Open"]++
			}
			if refused {
				outcomes["OffsetForTime refused"]++
			}
			sameFiles(t, dir, files)
		}
	}
	t.Logf("bit flip outcomes: %v", outcomes)
}

// A torn tail of the active store takes the time entries of its batches
// along, and the rebuilt time index is what Check expects.
func TestTimeIndexTornTail(t *testing.T) {
	files, times, bases := timedFiles(t)
	act := bases[len(bases)-1]
	frames, ends := parseStore(t, files[storeName(act)], act)
	dir := t.TempDir()
	for n := frames[0].end; n <= int64(len(files[storeName(act)])); n++ {
		files.restore(t, dir)
		truncateFile(storeName(act), n)(t, dir)
		var end batchEnd
		for _, e := range ends {
			if e.pos <= n {
				end = e
			}
		}
		l := openLog(t, dir, quietConfig(t))
		checkTimes(t, l, 0, times[:end.next])
		l.Close()
		if r := mustCheck(t, dir, CheckOptions{}); r.Problems() {
			t.Fatalf("store cut to %d bytes: after Open, Check finds %+v", n, r.Segments[len(r.Segments)-1])
		}
	}
}

func TestCheckTimeIndex(t *testing.T) {
	files, _, bases := timedFiles(t)
	tests := []struct {
		name   string
		seg    int
		mutate func(t testing.TB, dir string, name string)
		want   string
	}{
		{"entry with the wrong time", 1, func(t testing.TB, dir, name string) { flipBit(name, headerSize+6, 0)(t, dir) }, "the store says"},
		{"entry with the wrong offset", 0, func(t testing.TB, dir, name string) { flipBit(name, headerSize+timeEntrySize+11, 0)(t, dir) }, "the store says"},
		{"seal entry missing", 2, func(t testing.TB, dir, name string) {
			truncateFile(name, int64(len(files[name])-timeEntrySize))(t, dir)
		}, "1 entries missing"},
		{"entries past the end", 3, func(t testing.TB, dir, name string) {
			appendToFile(name, appendTimeEntry(nil, timeEntry{time: 9_000_000, rel: 1 << 20}))(t, dir)
		}, "past the last verified batch"},
		{"partial entry", 3, func(t testing.TB, dir, name string) { appendToFile(name, []byte{1, 2})(t, dir) }, "partial entry"},
		{"missing", 1, func(t testing.TB, dir, name string) { removeFile(name)(t, dir) }, "missing"},
		{"header damaged", 0, func(t testing.TB, dir, name string) { flipBit(name, 0, 0)(t, dir) }, "header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files.restore(t, dir)
			tt.mutate(t, dir, timeIndexName(bases[tt.seg]))
			r := mustCheck(t, dir, CheckOptions{})
			s := r.Segments[tt.seg]
			if s.Status != SegmentIndex || !strings.Contains(s.IndexProblem, "time index: ") || !strings.Contains(s.IndexProblem, tt.want) || !r.Repairable() {
				t.Fatalf("segment %+v, want a time index problem with %q", s, tt.want)
			}
			r = mustCheck(t, dir, CheckOptions{Repair: true})
			if !r.Repaired() || r.Repairable() || r.Corrupt() {
				t.Fatalf("repair: %+v", r.Segments[tt.seg])
			}
			sameFiles(t, dir, files) // rebuilt exactly as written
		})
	}
	// An orphan time index is reported and removed like an orphan index.
	dir := t.TempDir()
	files.restore(t, dir)
	writeFile(t, dir, timeIndexName(999999), appendHeader(nil, timeIndexMagic, 999999))
	if r := mustCheck(t, dir, CheckOptions{Repair: true}); !slices.Equal(r.OrphanIndexes, []string{timeIndexName(999999)}) || !r.OrphansRemoved {
		t.Fatalf("orphan time index: %v, removed %v", r.OrphanIndexes, r.OrphansRemoved)
	}
	sameFiles(t, dir, files)
}

// writeUntimedLog writes, through l, the log that testdata/v1-untimed holds,
// which was written before records had times.
func writeUntimedLog(t testing.TB, l *Log) {
	t.Helper()
	var off uint64
	for i := range 60 {
		if i == 30 {
			if _, err := l.AppendWithMeta([]byte("only meta")); err != nil {
				t.Fatal(err)
			}
		}
		batch := make([][]byte, 1+i%5)
		for j := range batch {
			batch[j] = record(off + uint64(j))
		}
		var meta []byte
		if i%4 == 0 {
			meta = fmt.Appendf(nil, "applied=%d", i)
		}
		if _, err := l.AppendWithMeta(meta, batch...); err != nil {
			t.Fatal(err)
		}
		off += uint64(len(batch))
	}
}

// TestUntimedFormat checks a log written before records had times
// (testdata/v1-untimed): it opens and reads unchanged, its store and index
// files are left as they are, and its time indexes are made; and a log
// written today without times has the same store and index files, byte for
// byte.
func TestUntimedFormat(t *testing.T) {
	fixture := readDirFiles(t, filepath.Join("testdata", "v1-untimed"))
	const next = 180
	dir := t.TempDir()
	fixture.restore(t, dir)

	r := mustCheck(t, dir, CheckOptions{})
	if r.Corrupt() || r.NextOffset != next || string(r.Meta) != "applied=56" {
		t.Fatalf("Check of the old log: next %d, meta %q, %+v", r.NextOffset, r.Meta, r.Segments)
	}
	for _, s := range r.Segments {
		if s.Status != SegmentIndex || !strings.Contains(s.IndexProblem, "time index: file is missing") {
			t.Fatalf("Check of an old segment: %+v, want only its time index missing", s)
		}
	}

	c := quietConfig(t)
	l := openLog(t, dir, c)
	if l.NextOffset() != next || string(l.Meta()) != "applied=56" {
		t.Fatalf("old log opened with next offset %d, meta %q", l.NextOffset(), l.Meta())
	}
	checkRecords(t, l, 0, next)
	checkRecordsBatched(t, l, 0, next)
	checkTimes(t, l, 0, make([]int64, next))
	got := readDirFiles(t, dir)
	for name, b := range fixture {
		if !bytes.Equal(got[name], b) {
			t.Errorf("Open changed %s", name)
		}
		if _, ext, _ := parseSegmentName(name); ext == storeExt && got[strings.TrimSuffix(name, storeExt)+timeIndexExt] == nil {
			t.Errorf("no time index for %s", name)
		}
	}
	// Times start with the old log's next record.
	if first, err := l.AppendTimed(nil, 42, []byte("timed")); err != nil || first != next {
		t.Fatalf("AppendTimed to the old log = %d, %v", first, err)
	}
	if off, err := l.OffsetForTime(1); err != nil || off != next {
		t.Fatalf("OffsetForTime(1) = %d, %v; want %d", off, err, next)
	}
	l.Close()
	if r := mustCheck(t, dir, CheckOptions{}); r.Problems() {
		t.Fatalf("Check after Open: %+v", r.Segments)
	}

	// The same appends today write the same store and index files.
	dir = t.TempDir()
	l = openLog(t, dir, c)
	writeUntimedLog(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got = readDirFiles(t, dir)
	for name, b := range fixture {
		if !bytes.Equal(got[name], b) {
			t.Errorf("%s differs from the one written before times (%d bytes, was %d)", name, len(got[name]), len(b))
		}
	}
}

// TruncateCorrupt cuts a corrupt sealed segment of a log with times to its
// good prefix: the cut segment, now the active one, gets the time index of
// that prefix (no seal entry), and the log finds records by time in it.
func TestCheckTruncateCorruptTimes(t *testing.T) {
	files, times, bases := timedFiles(t)
	dir := t.TempDir()
	files.restore(t, dir)
	frames, ends := parseStore(t, files[storeName(bases[1])], bases[1])
	fr := frames[len(frames)/2]
	flipBit(storeName(bases[1]), fr.end-2, 3)(t, dir)
	var end batchEnd
	for _, e := range ends {
		if e.pos <= fr.start {
			end = e
		}
	}
	r := mustCheck(t, dir, CheckOptions{Repair: true, TruncateCorrupt: true})
	if r.NextOffset != end.next {
		t.Fatalf("TruncateCorrupt: next offset %d, want %d", r.NextOffset, end.next)
	}
	if r := mustCheck(t, dir, CheckOptions{}); r.Problems() {
		t.Fatalf("after TruncateCorrupt: %+v", r.Segments)
	}
	l := openLog(t, dir, quietConfig(t))
	checkTimes(t, l, 0, times[:end.next])
}
