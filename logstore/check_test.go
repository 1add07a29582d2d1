package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkDir lays down a fresh copy of the prepared log in a new directory.
func checkDir(t *testing.T, p *preparedLog) string {
	t.Helper()
	dir := t.TempDir()
	p.files.restore(t, dir)
	return dir
}

func mustCheck(t testing.TB, dir string, o CheckOptions) *Report {
	t.Helper()
	r, err := Check(dir, o)
	if err != nil {
		t.Fatalf("Check(%s, %+v): %v", dir, o, err)
	}
	return r
}

// sameFiles fails unless dir holds exactly files (but a LOCK file).
func sameFiles(t testing.TB, dir string, files dirFiles) {
	t.Helper()
	got := readDirFiles(t, dir)
	delete(got, "LOCK")
	for name, want := range files {
		if !bytes.Equal(got[name], want) {
			t.Errorf("%s changed (%d bytes, was %d)", name, len(got[name]), len(want))
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("%s appeared", name)
	}
}

func TestCheck_clean(t *testing.T) {
	p := prepareLog(t, quietConfig(t))
	dir := checkDir(t, p)
	r := mustCheck(t, dir, CheckOptions{Repair: true})
	if r.Problems() || r.Repaired() || r.Corrupt() || r.Repairable() {
		t.Fatalf("clean log: %+v", r.Segments)
	}
	if len(r.Segments) != len(p.bases) {
		t.Fatalf("%d segments, want %d", len(r.Segments), len(p.bases))
	}
	var records uint64
	for i, s := range r.Segments {
		if s.Base != p.bases[i] || s.Status != SegmentOK || s.GoodBytes != s.Bytes || s.Sealed != (i < len(p.bases)-1) {
			t.Errorf("segment %d: %+v", i, s)
		}
		records += s.Records
	}
	if r.LowestOffset != 0 || r.NextOffset != p.next || records != p.next || string(r.Meta) != "meta-c" {
		t.Fatalf("offsets [%d, %d) with %d records, meta %q; want [0, %d), meta-c", r.LowestOffset, r.NextOffset, records, r.Meta, p.next)
	}
	sameFiles(t, dir, p.files)
}

func TestCheck_tornTail(t *testing.T) {
	p := prepareLog(t, quietConfig(t))
	act := p.bases[len(p.bases)-1]
	frames, ends := parseStore(t, p.files[storeName(act)], act)
	last := frames[len(frames)-1]
	cut := last.start + 5 // inside the last frame's header
	end := ends[len(ends)-2]

	dir := checkDir(t, p)
	truncateFile(storeName(act), cut)(t, dir)
	torn := readDirFiles(t, dir)
	delete(torn, "LOCK")

	r := mustCheck(t, dir, CheckOptions{})
	s := r.Segments[len(r.Segments)-1]
	if s.Status != SegmentTornTail || s.BadFile != storeName(act) || s.GoodBytes != end.pos || !r.Repairable() || r.Corrupt() {
		t.Fatalf("torn tail: %+v", s)
	}
	sameFiles(t, dir, torn) // nothing written without Repair

	r = mustCheck(t, dir, CheckOptions{Repair: true})
	s = r.Segments[len(r.Segments)-1]
	if !r.Repaired() || r.Repairable() || s.DroppedBytes != cut-end.pos || r.NextOffset != end.next {
		t.Fatalf("repair: %+v, next %d (want %d)", s, r.NextOffset, end.next)
	}
	if r := mustCheck(t, dir, CheckOptions{}); r.Problems() {
		t.Fatalf("after repair: %+v", r.Segments)
	}
	expectPrefix(p, end)(t, dir)
}

// flipSealed flips a byte inside a record of the second segment and returns
// that segment's base, the frame's position and the last batch end before it.
func flipSealed(t *testing.T, p *preparedLog, dir string) (base uint64, pos int64, end batchEnd) {
	t.Helper()
	base = p.bases[1]
	frames, ends := parseStore(t, p.files[storeName(base)], base)
	fr := frames[len(frames)/2]
	flipBit(storeName(base), fr.end-2, 3)(t, dir)
	for _, e := range ends {
		if e.pos <= fr.start {
			end = e
		}
	}
	return base, fr.start, end
}

func TestCheck_corruptSealed(t *testing.T) {
	p := prepareLog(t, quietConfig(t))
	dir := checkDir(t, p)
	base, pos, end := flipSealed(t, p, dir)
	flipped := readDirFiles(t, dir)
	delete(flipped, "LOCK")

	for _, o := range []CheckOptions{{}, {Repair: true}} {
		r := mustCheck(t, dir, o)
		s := r.Segments[1]
		if s.Status != SegmentCorrupt || s.BadFile != storeName(base) || s.BadPos != pos || !strings.Contains(s.Problem, "crc32c") || !r.Corrupt() {
			t.Fatalf("%+v: segment %+v", o, s)
		}
		for i, s := range r.Segments {
			if i != 1 && s.Status != SegmentOK {
				t.Errorf("%+v: segment %d is %q: %s", o, i, s.Status, s.Problem)
			}
		}
		sameFiles(t, dir, flipped) // left alone, with Repair too
	}

	r := mustCheck(t, dir, CheckOptions{Repair: true, TruncateCorrupt: true})
	s := r.Segments[1]
	if r.Corrupt() || !r.Repaired() || s.GoodBytes != end.pos || s.DroppedBytes != int64(len(flipped[storeName(base)]))-end.pos || r.NextOffset != end.next || r.MovedTo == "" {
		t.Fatalf("truncate: %+v, next %d (want %d), moved to %q", s, r.NextOffset, end.next, r.MovedTo)
	}
	// The cut file and the later segments were kept whole, not deleted.
	if got, err := os.ReadFile(filepath.Join(r.MovedTo, storeName(base))); err != nil || !bytes.Equal(got, flipped[storeName(base)]) {
		t.Errorf("the corrupt store file kept in %s: %v", r.MovedTo, err)
	}
	for _, b := range p.bases[2:] {
		for _, name := range []string{storeName(b), indexName(b)} {
			got, err := os.ReadFile(filepath.Join(r.MovedTo, name))
			if err != nil || !bytes.Equal(got, flipped[name]) {
				t.Errorf("%s moved aside: %v (same bytes: %v)", name, err, bytes.Equal(got, flipped[name]))
			}
		}
	}
	// The cut segment is a clean active segment, indexes included.
	if r := mustCheck(t, dir, CheckOptions{}); r.Problems() {
		t.Fatalf("after TruncateCorrupt: %+v", r.Segments)
	}
	l := openLog(t, dir, quietConfig(t))
	if l.NextOffset() != end.next {
		t.Fatalf("reopened: next offset %d, want %d", l.NextOffset(), end.next)
	}
	for off := uint64(0); off < end.next; off++ {
		if got, err := l.Read(off); err != nil || !bytes.Equal(got, record(off)) {
			t.Fatalf("Read(%d) = %q, %v", off, got, err)
		}
	}
}

func TestCheck_corruptActiveBeforeWholeBatches(t *testing.T) {
	p := prepareLog(t, quietConfig(t))
	act := p.bases[len(p.bases)-1]
	frames, _ := parseStore(t, p.files[storeName(act)], act)
	dir := checkDir(t, p)
	flipBit(storeName(act), frames[1].end-1, 0)(t, dir)
	r := mustCheck(t, dir, CheckOptions{Repair: true})
	s := r.Segments[len(r.Segments)-1]
	if s.Status != SegmentCorrupt || s.BadPos != frames[1].start || s.Repair != "" || !r.Corrupt() {
		t.Fatalf("a bad frame with whole batches after it in the active segment: %+v", s)
	}
}

func TestCheck_index(t *testing.T) {
	p := prepareLog(t, quietConfig(t))
	tests := []struct {
		name   string
		seg    int
		mutate func(t testing.TB, dir string, name string)
		want   string
	}{
		{"entry points at the wrong frame", 1, func(t testing.TB, dir, name string) {
			b := bytes.Clone(p.files[name])
			binary.BigEndian.PutUint32(b[headerSize+2*indexEntrySize+4:], binary.BigEndian.Uint32(b[headerSize+indexEntrySize+4:]))
			writeFile(t, dir, name, b)
		}, "the frame is at byte"},
		{"entries missing", 0, func(t testing.TB, dir, name string) { truncateFile(name, headerSize+indexEntrySize)(t, dir) }, "entries missing"},
		{"partial entry", 3, func(t testing.TB, dir, name string) { appendToFile(name, []byte{0, 0, 1})(t, dir) }, "partial entry"},
		{"index missing", 2, func(t testing.TB, dir, name string) { removeFile(name)(t, dir) }, "missing"},
		{"header damaged", 1, func(t testing.TB, dir, name string) { flipBit(name, 1, 2)(t, dir) }, "index header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := checkDir(t, p)
			name := indexName(p.bases[tt.seg])
			tt.mutate(t, dir, name)
			r := mustCheck(t, dir, CheckOptions{})
			s := r.Segments[tt.seg]
			if s.Status != SegmentIndex || !strings.Contains(s.IndexProblem, tt.want) || !r.Repairable() {
				t.Fatalf("segment %+v, want an index problem with %q", s, tt.want)
			}
			r = mustCheck(t, dir, CheckOptions{Repair: true})
			if !r.Repaired() || r.Repairable() || r.Corrupt() {
				t.Fatalf("repair: %+v", r.Segments[tt.seg])
			}
			sameFiles(t, dir, p.files) // rebuilt exactly as written
		})
	}
}

func TestCheck_orphanIndex(t *testing.T) {
	p := prepareLog(t, quietConfig(t))
	dir := checkDir(t, p)
	writeFile(t, dir, indexName(999999), appendHeader(nil, indexMagic, 999999))
	r := mustCheck(t, dir, CheckOptions{})
	if len(r.OrphanIndexes) != 1 || !r.Repairable() {
		t.Fatalf("orphans %v", r.OrphanIndexes)
	}
	r = mustCheck(t, dir, CheckOptions{Repair: true})
	if !r.OrphansRemoved {
		t.Fatal("orphan index not removed")
	}
	sameFiles(t, dir, p.files)
}

func TestCheck_gap(t *testing.T) {
	p := prepareLog(t, quietConfig(t))
	dir := checkDir(t, p)
	removeFile(storeName(p.bases[1]), indexName(p.bases[1]))(t, dir)
	r := mustCheck(t, dir, CheckOptions{Repair: true})
	if s := r.Segments[1]; s.Base != p.bases[2] || s.Status != SegmentCorrupt || !strings.Contains(s.Problem, "ends at offset") {
		t.Fatalf("gap: %+v", s)
	}
	r = mustCheck(t, dir, CheckOptions{Repair: true, TruncateCorrupt: true})
	if r.Corrupt() || r.NextOffset != p.bases[1] || len(r.Segments) != 3 || !r.Segments[1].movedAside() || !r.Segments[2].movedAside() {
		t.Fatalf("truncate at a gap: next %d, %+v", r.NextOffset, r.Segments)
	}
	if l := openLog(t, dir, quietConfig(t)); l.NextOffset() != p.bases[1] {
		t.Fatalf("reopened: next offset %d, want %d", l.NextOffset(), p.bases[1])
	}
}

func TestCheck_locked(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, quietConfig(t))
	appendN(t, l, 0, 3)
	for _, o := range []CheckOptions{{}, {Repair: true}} {
		if _, err := Check(dir, o); !errors.Is(err, ErrLocked) {
			t.Fatalf("Check(%+v) of an open log: %v, want ErrLocked", o, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := mustCheck(t, dir, CheckOptions{}); r.Problems() || r.NextOffset != 3 {
		t.Fatalf("after Close: %+v", r)
	}
}
