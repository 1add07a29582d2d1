package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"
)

// preparedLog is a closed log whose files are copied for each corruption case:
// sealed segments and an active segment of several batches of record(off),
// some with metadata, one metadata-only, most with a time.
type preparedLog struct {
	files dirFiles
	bases []uint64 // segment bases, oldest first; the last is the active segment
	next  uint64
	times []int64 // times[off] is the time of the record at off (0: none)
}

func prepareLog(t testing.TB, c Config) *preparedLog {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir, c)
	var off uint64
	var times []int64
	add := func(meta []byte, n int) {
		t.Helper()
		batch := make([][]byte, n)
		for j := range batch {
			batch[j] = record(off + uint64(j))
		}
		ts := int64(1000 + off)
		if off%4 == 1 {
			ts = 0
		}
		first, err := l.AppendTimed(meta, ts, batch...)
		if err != nil || first != off {
			t.Fatalf("AppendTimed at %d = %d, %v", off, first, err)
		}
		for range n {
			times = append(times, ts)
		}
		off += uint64(n)
	}
	sizes := []int{1, 3, 1, 2, 5, 1, 4}
	for i := 0; len(l.cur.Load().segs) < 4; i++ {
		var meta []byte
		if i%3 == 0 {
			meta = fmt.Appendf(nil, "meta-%d", off)
		}
		add(meta, sizes[i%len(sizes)])
	}
	// The active segment gets a known tail of batches: plain, with metadata,
	// metadata only, and of several records.
	active := l.cur.Load().segs[3].base
	for _, n := range []int{2, 1, 3, 1} {
		add(nil, n)
	}
	add([]byte("meta-a"), 1)
	add([]byte("meta-b"), 0)
	add(nil, 3)
	add([]byte("meta-c"), 2)
	st := l.cur.Load()
	if len(st.segs) != 4 || st.segs[3].base != active {
		t.Fatalf("the prepared log rolled while writing the active segment's tail")
	}
	p := &preparedLog{next: l.NextOffset(), times: times}
	for _, s := range st.segs {
		p.bases = append(p.bases, s.base)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p.files = readDirFiles(t, dir)
	delete(p.files, "LOCK")
	return p
}

func storeName(base uint64) string { return segmentName(base) + storeExt }
func indexName(base uint64) string { return segmentName(base) + indexExt }

// storeFrame is a frame of a store file, as the tests parse it.
type storeFrame struct {
	start, end int64
	f          frame
}

// batchEnd is a point of a store file where a batch ends: a clean cut.
type batchEnd struct {
	pos  int64  // store bytes up to the end of the batch
	next uint64 // offset after it
	meta []byte // metadata carried by the batch
}

// parseStore splits a well-formed store file into frames and batch ends; the
// first batch end is the segment's start (header only), with meta unknown.
func parseStore(t testing.TB, b []byte, base uint64) ([]storeFrame, []batchEnd) {
	t.Helper()
	if err := checkHeader(b, storeMagic, base); err != nil {
		t.Fatal(err)
	}
	var frames []storeFrame
	ends := []batchEnd{{pos: headerSize, next: base}}
	next := base
	for pos := int64(headerSize); pos < int64(len(b)); {
		f, n, err := decodeFrame(b[pos:])
		if err != nil {
			t.Fatalf("prepared store at %d: %v", pos, err)
		}
		frames = append(frames, storeFrame{start: pos, end: pos + int64(n), f: f})
		pos += int64(n)
		if f.isRecord() {
			next++
		}
		if f.flags&flagBatchEnd != 0 {
			ends = append(ends, batchEnd{pos: pos, next: next, meta: f.meta})
		}
	}
	return frames, ends
}

// corruptCase is one damaged copy of the prepared log.
type corruptCase struct {
	name   string
	mutate func(t testing.TB, dir string)
	check  func(t testing.TB, dir string)
}

// runCorruptCases runs each case on the prepared files, restored in one
// directory, turning a panic into a test failure, and logs how many ran. With
// -short it runs every fourth case of a large table.
func runCorruptCases(t *testing.T, p *preparedLog, cases []corruptCase) {
	t.Helper()
	if testing.Short() && len(cases) > 100 {
		var some []corruptCase
		for i := 0; i < len(cases); i += 4 {
			some = append(some, cases[i])
		}
		cases = some
	}
	panics := 0
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					panics++
					t.Fatalf("panic: %v\n%s", r, debug.Stack())
				}
			}()
			p.files.restore(t, dir)
			tc.mutate(t, dir)
			tc.check(t, dir)
		})
	}
	t.Logf("%d cases, %d panics", len(cases), panics)
}

// The mutations of a case, on a file of the log directory by name.

func truncateFile(name string, size int64) func(testing.TB, string) {
	return func(t testing.TB, dir string) {
		t.Helper()
		if err := os.Truncate(filepath.Join(dir, name), size); err != nil {
			t.Fatal(err)
		}
	}
}

func appendToFile(name string, b []byte) func(testing.TB, string) {
	return func(t testing.TB, dir string) {
		t.Helper()
		old, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, append(old, b...))
	}
}

func flipBit(name string, pos int64, bit uint) func(testing.TB, string) {
	return func(t testing.TB, dir string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		b[pos] ^= 1 << bit
		writeFile(t, dir, name, b)
	}
}

func removeFile(names ...string) func(testing.TB, string) {
	return func(t testing.TB, dir string) {
		t.Helper()
		for _, name := range names {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// expectPrefix returns a check that the log opens holding exactly the records
// before end.next with end.meta, with its active segment's store cut to end.pos
// and index to match, and that appends continue at end.next.
func expectPrefix(p *preparedLog, end batchEnd) func(testing.TB, string) {
	return func(t testing.TB, dir string) {
		t.Helper()
		c := quietConfig(t)
		l := openLog(t, dir, c)
		if got := l.NextOffset(); got != end.next {
			t.Fatalf("NextOffset = %d, want %d", got, end.next)
		}
		if got := l.Meta(); !bytes.Equal(got, end.meta) {
			t.Fatalf("Meta = %q, want %q", got, end.meta)
		}
		// Recovery cuts the files of the active segment to what they hold.
		act := l.cur.Load().segs[len(l.cur.Load().segs)-1]
		if got := fileSize(t, act.storePath); got != end.pos {
			t.Fatalf("active store is %d bytes after Open, want %d", got, end.pos)
		}
		if got, want := fileSize(t, act.indexPath), headerSize+int64(end.next-act.base)*indexEntrySize; got != want {
			t.Fatalf("active index is %d bytes after Open, want %d", got, want)
		}
		checkRecords(t, l, 0, end.next)
		checkNothingPast(t, l, end.next)
		checkTimes(t, l, 0, p.times[:end.next])
		appendN(t, l, end.next, 3)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, dir, c)
		if got := l.NextOffset(); got != end.next+3 {
			t.Fatalf("NextOffset after appending and reopening = %d, want %d", got, end.next+3)
		}
		checkRecords(t, l, 0, end.next+3)
	}
}

// checkNothingPast checks that the log serves nothing at or after next.
func checkNothingPast(t testing.TB, l *Log, next uint64) {
	t.Helper()
	for _, off := range []uint64{next, next + 1, next + 100} {
		if _, err := l.Read(off); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("Read(%d) past next offset %d: %v, want ErrOffsetOutOfRange", off, next, err)
		}
	}
}

// damageRule is what a log with a damaged file may do: refuse to open with
// ErrCorrupt naming the file, or open with a next offset in [minNext, maxNext]
// and serve every record exactly or refuse it with ErrCorrupt naming the file,
// never returning wrong data. Records of the damaged segment, [segFrom, segTo),
// are read one by one, all of them in batches.
type damageRule struct {
	file             string
	minNext, maxNext uint64
	metaOK           func(next uint64, meta []byte) bool // whether a log ending at next may have meta
	segFrom, segTo   uint64
	outcomes         map[string]int // counts how cases ended
}

func (r damageRule) check(t testing.TB, dir string) {
	t.Helper()
	c := quietConfig(t)
	l, err := Open(dir, c)
	if err != nil {
		if !isCorruptIn(err, r.file) {
			t.Fatalf("Open: %v; want ErrCorrupt naming %s", err, r.file)
		}
		r.outcomes["Open refused"]++
		return
	}
	t.Cleanup(func() { l.Close() })
	next := l.NextOffset()
	if next < r.minNext || next > r.maxNext {
		t.Fatalf("NextOffset = %d, want within [%d, %d]", next, r.minNext, r.maxNext)
	}
	if meta := l.Meta(); !r.metaOK(next, meta) {
		t.Fatalf("Meta = %q with next offset %d: not the metadata of a batch ending there", meta, next)
	}
	bad := 0
	for off := max(r.segFrom, l.LowestOffset()); off < min(r.segTo, next); off++ {
		got, err := l.Read(off)
		switch {
		case err == nil && bytes.Equal(got, record(off)):
		case err == nil:
			t.Fatalf("Read(%d) = %q, want %q", off, got, record(off))
		case isCorruptIn(err, r.file):
			bad++
		default:
			t.Fatalf("Read(%d): %v; want the record or ErrCorrupt naming %s", off, err, r.file)
		}
	}
	// Batched reads walk the log, stepping over a record they cannot read.
	for _, budget := range []int{500, 1 << 20} {
		for off := l.LowestOffset(); off < next; {
			recs, err := l.ReadBatch(off, budget)
			if err != nil {
				if !isCorruptIn(err, r.file) {
					t.Fatalf("ReadBatch(%d, %d): %v; want records or ErrCorrupt naming %s", off, budget, err, r.file)
				}
				bad++
				off++
				continue
			}
			for i, rec := range recs {
				if want := record(off + uint64(i)); !bytes.Equal(rec, want) {
					t.Fatalf("ReadBatch(%d, %d)[%d] = %q, want %q", off, budget, i, rec, want)
				}
			}
			off += uint64(len(recs))
		}
	}
	checkNothingPast(t, l, next)
	if first, err := l.Append(record(next)); err != nil || first != next {
		t.Fatalf("Append after recovery = %d, %v; want %d", first, err, next)
	}
	if bad > 0 {
		r.outcomes["opened, some reads refused"]++
	} else {
		r.outcomes["opened, every read good"]++
	}
}

func TestCorruptionMatrix(t *testing.T) {
	p := prepareLog(t, quietConfig(t))
	active := p.bases[len(p.bases)-1]
	activeStore, activeIndex := storeName(active), indexName(active)
	frames, ends := parseStore(t, p.files[activeStore], active)
	// The active segment starts with a metadata-only frame carrying the
	// metadata in force when it was created.
	ends[0].meta = frames[0].f.meta
	t.Logf("prepared log: segments at %v, next offset %d, active store %d bytes in %d frames",
		p.bases, p.next, len(p.files[activeStore]), len(frames))
	full := ends[len(ends)-1]
	metaOK := func(next uint64, meta []byte) bool {
		for _, e := range ends {
			if e.next == next && bytes.Equal(e.meta, meta) {
				return true
			}
		}
		return false
	}

	// endAt is the last batch end at or before store position pos.
	endAt := func(pos int64) batchEnd {
		i, _ := slices.BinarySearchFunc(ends, pos, func(e batchEnd, pos int64) int {
			switch {
			case e.pos < pos:
				return -1
			case e.pos > pos:
				return 1
			}
			return 0
		})
		if i == len(ends) || ends[i].pos > pos {
			i--
		}
		return ends[max(i, 0)]
	}

	t.Run("truncated active store", func(t *testing.T) {
		var cases []corruptCase
		// Every length from the start of the records' frames of the last
		// three batches to the full size.
		from := frames[len(frames)-7].start
		for n := from; n <= int64(len(p.files[activeStore])); n++ {
			cases = append(cases, corruptCase{
				name:   fmt.Sprintf("size %d", n),
				mutate: truncateFile(activeStore, n),
				check:  expectPrefix(p, endAt(n)),
			})
		}
		runCorruptCases(t, p, cases)
	})

	t.Run("zero-extended active index", func(t *testing.T) {
		var cases []corruptCase
		for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40, 48, 56, 63, 64, 8 * 100, 8*1000 + 3} {
			cases = append(cases, corruptCase{
				name:   fmt.Sprintf("%d zero bytes", n),
				mutate: appendToFile(activeIndex, make([]byte, n)),
				check:  expectPrefix(p, full),
			})
		}
		for n := 1; n <= 64; n++ {
			if n <= 9 || n%8 == 0 || n%8 == 1 || n%8 == 7 {
				continue // above
			}
			cases = append(cases, corruptCase{
				name:   fmt.Sprintf("%d zero bytes", n),
				mutate: appendToFile(activeIndex, make([]byte, n)),
				check:  expectPrefix(p, full),
			})
		}
		// Entries that look real but are not: the last one repeated, the
		// next ordinal pointing at an existing frame, at the end of the
		// store and past it.
		idx := p.files[activeIndex]
		last := idx[len(idx)-indexEntrySize:]
		rel := uint32(full.next - active)
		bogus := map[string][]byte{
			"last entry repeated":              last,
			"last entry repeated 3 times":      bytes.Repeat(last, 3),
			"next ordinal at an earlier frame": appendIndexEntry(nil, rel, uint32(frames[1].start)),
			"next ordinal at the store's end":  appendIndexEntry(nil, rel, uint32(full.pos)),
			"next ordinal past the store":      appendIndexEntry(nil, rel, uint32(full.pos+100)),
			"next ordinal at the last frame":   appendIndexEntry(nil, rel, uint32(frames[len(frames)-1].start)),
		}
		for name, b := range bogus {
			cases = append(cases, corruptCase{name: name, mutate: appendToFile(activeIndex, b), check: expectPrefix(p, full)})
		}
		runCorruptCases(t, p, cases)
	})

	t.Run("truncated index", func(t *testing.T) {
		var cases []corruptCase
		for n := int64(0); n < int64(len(p.files[activeIndex])); n++ {
			cases = append(cases, corruptCase{
				name:   fmt.Sprintf("active index to %d bytes", n),
				mutate: truncateFile(activeIndex, n),
				check:  expectPrefix(p, full),
			})
		}
		sealed := indexName(p.bases[1])
		size := int64(len(p.files[sealed]))
		for _, n := range []int64{0, 1, 15, 16, 17, 24, 25, size / 2, size - 9, size - 8, size - 1} {
			cases = append(cases, corruptCase{
				name:   fmt.Sprintf("sealed index to %d bytes", n),
				mutate: truncateFile(sealed, n),
				check:  expectPrefix(p, full),
			})
		}
		runCorruptCases(t, p, cases)
	})

	outcomes := map[string]int{}
	t.Run("bit flips in sealed segments", func(t *testing.T) {
		var cases []corruptCase
		// The first segment gets flips spread over all of it; the one before
		// the active segment, whose tail Open checks, at its ends.
		for i, stride := range map[int]int64{0: 13, len(p.bases) - 2: 0} {
			base := p.bases[i]
			for _, name := range []string{storeName(base), indexName(base)} {
				rule := damageRule{file: name, minNext: p.next, maxNext: p.next, metaOK: metaOK,
					segFrom: base, segTo: p.bases[i+1], outcomes: outcomes}
				for _, pos := range flipPositions(t, p.files[name], base, name == storeName(base), stride) {
					cases = append(cases, corruptCase{
						name:   fmt.Sprintf("%s byte %d bit %d", name, pos.byte, pos.bit),
						mutate: flipBit(name, pos.byte, pos.bit),
						check:  rule.check,
					})
				}
			}
		}
		runCorruptCases(t, p, cases)
	})

	t.Run("bit flips in the active segment", func(t *testing.T) {
		var cases []corruptCase
		for _, name := range []string{activeStore, activeIndex} {
			for _, pos := range flipPositions(t, p.files[name], active, name == activeStore, 7) {
				// Whatever is before the damaged frame is a valid prefix
				// that recovery keeps.
				rule := damageRule{file: name, minNext: p.next, maxNext: p.next, metaOK: metaOK,
					segFrom: active, segTo: p.next, outcomes: outcomes}
				if name == activeStore {
					rule.minNext = endAt(pos.byte).next
				}
				cases = append(cases, corruptCase{
					name:   fmt.Sprintf("%s byte %d bit %d", name, pos.byte, pos.bit),
					mutate: flipBit(name, pos.byte, pos.bit),
					check:  rule.check,
				})
			}
		}
		runCorruptCases(t, p, cases)
	})
	t.Logf("bit flip outcomes: %v", outcomes)

	t.Run("missing and stray files", func(t *testing.T) {
		sealed := p.bases[1]
		prev := p.bases[len(p.bases)-2]
		_, prevEnds := parseStore(t, p.files[storeName(prev)], prev)
		// A store cut below its header leaves the segment empty: the log ends
		// where the sealed segment before it ends, with its metadata.
		emptyActive := prevEnds[len(prevEnds)-1]
		emptyActive.pos = headerSize
		allIndexes := func(t testing.TB, dir string) {
			t.Helper()
			for _, base := range p.bases {
				removeFile(indexName(base))(t, dir)
			}
		}
		strayIndex := func(base uint64) func(testing.TB, string) {
			return func(t testing.TB, dir string) {
				t.Helper()
				writeFile(t, dir, indexName(base), appendHeader(nil, indexMagic, base))
			}
		}
		gone := func(name string, check func(testing.TB, string)) func(testing.TB, string) {
			return func(t testing.TB, dir string) {
				t.Helper()
				check(t, dir)
				if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
					t.Fatalf("%s still there after Open: %v", name, err)
				}
			}
		}
		lowest := func(want uint64) func(testing.TB, string) {
			return func(t testing.TB, dir string) {
				t.Helper()
				l := openLog(t, dir, quietConfig(t))
				if got := l.LowestOffset(); got != want {
					t.Fatalf("LowestOffset = %d, want %d", got, want)
				}
				if got := l.NextOffset(); got != p.next {
					t.Fatalf("NextOffset = %d, want %d", got, p.next)
				}
				checkRecords(t, l, want, p.next)
				appendN(t, l, p.next, 3)
			}
		}
		refused := func(name string) func(testing.TB, string) {
			return func(t testing.TB, dir string) {
				t.Helper()
				l, err := Open(dir, quietConfig(t))
				if err == nil {
					l.Close()
					t.Fatalf("Open succeeded, want ErrCorrupt naming %s", name)
				}
				if !isCorruptIn(err, name) {
					t.Fatalf("Open: %v; want ErrCorrupt naming %s", err, name)
				}
			}
		}
		cases := []corruptCase{
			{"active index missing", removeFile(activeIndex), expectPrefix(p, full)},
			{"sealed index missing", removeFile(indexName(sealed)), expectPrefix(p, full)},
			{"every index missing", allIndexes, expectPrefix(p, full)},
			{"stray index past the end", strayIndex(p.next + 100), gone(indexName(p.next+100), expectPrefix(p, full))},
			{"stray index between segments", strayIndex(sealed + 1), gone(indexName(sealed+1), expectPrefix(p, full))},
			{"first store removed by retention, index left", removeFile(storeName(p.bases[0])),
				gone(indexName(p.bases[0]), lowest(p.bases[1]))},
			{"middle store missing", removeFile(storeName(sealed)), refused(storeName(p.bases[2]))},
			{"sealed store shorter than its header", truncateFile(storeName(sealed), headerSize-1), refused(storeName(sealed))},
			{"sealed store empty", truncateFile(storeName(sealed), 0), refused(storeName(sealed))},
			{"active store removed, index left", removeFile(activeStore), gone(activeIndex, expectPrefix(p, prevEnds[len(prevEnds)-1]))},
			{"stray files", func(t testing.TB, dir string) {
				for _, name := range []string{"notes.txt", storeName(9) + ".tmp", "0000000000000000000x.store", "123.index"} {
					writeFile(t, dir, name, []byte("junk"))
				}
			}, expectPrefix(p, full)},
		}
		for _, n := range []int64{0, 1, 4, 8, headerSize - 1} {
			cases = append(cases, corruptCase{
				name:   fmt.Sprintf("active store of %d bytes", n),
				mutate: truncateFile(activeStore, n),
				check:  expectPrefix(p, emptyActive),
			})
			cases = append(cases, corruptCase{
				name: fmt.Sprintf("active store of %d bytes, index missing", n),
				mutate: func(t testing.TB, dir string) {
					truncateFile(activeStore, n)(t, dir)
					removeFile(activeIndex)(t, dir)
				},
				check: expectPrefix(p, emptyActive),
			})
		}
		runCorruptCases(t, p, cases)
	})
}

// flipPos is a bit of a file to flip.
type flipPos struct {
	byte int64
	bit  uint
}

// flipPositions picks the bits of a segment file to flip: every bit of the
// file header; for a store, one bit of every byte of the first and last
// frames' headers (length, checksum, offset, flags); for an index, every bit
// of the first and last two entries; and one bit of every stride-th byte
// (none if stride is 0).
func flipPositions(t testing.TB, b []byte, base uint64, store bool, stride int64) []flipPos {
	t.Helper()
	var ps []flipPos
	seen := map[int64]bool{}
	add := func(pos int64, bits ...uint) {
		if pos >= int64(len(b)) || seen[pos] {
			return
		}
		seen[pos] = true
		for _, bit := range bits {
			ps = append(ps, flipPos{pos, bit})
		}
	}
	all := []uint{0, 1, 2, 3, 4, 5, 6, 7}
	for pos := int64(0); pos < headerSize; pos++ {
		add(pos, all...)
	}
	if store {
		frames, _ := parseStore(t, b, base)
		for i, f := range frames {
			if i < 3 || i >= len(frames)-3 {
				for pos := f.start; pos < f.start+frameHeaderSize+bodyFixedSize; pos++ {
					add(pos, uint(pos)%8)
				}
			}
		}
	} else {
		for pos := int64(headerSize); pos < int64(len(b)); pos++ {
			if pos < headerSize+2*indexEntrySize || pos >= int64(len(b))-2*indexEntrySize {
				add(pos, all...)
			}
		}
	}
	if stride > 0 {
		for pos := int64(headerSize); pos < int64(len(b)); pos += stride {
			add(pos, uint(pos*5)%8)
		}
	}
	return ps
}
