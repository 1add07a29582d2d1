package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// model is what a log must hold: the records from low on with their times,
// and the metadata.
type model struct {
	low    uint64
	recs   [][]byte // recs[i] is the record at offset low+i
	times  []int64  // times[i] is its time (0: none)
	latest int64    // the latest time stamped, which a lower one is raised to
	meta   []byte
}

func (m *model) next() uint64 { return m.low + uint64(len(m.recs)) }

func (m *model) at(off uint64) []byte { return m.recs[off-m.low] }

// retain moves low up to low, forgetting the records below it.
func (m *model) retain(low uint64) {
	m.recs = m.recs[low-m.low:]
	m.times = m.times[low-m.low:]
	m.low = low
}

// checkLog checks that l's offsets and metadata are the model's and that every
// record from the model's low on reads back exactly, one by one and in batches.
func checkLog(t testing.TB, l *Log, m *model) {
	t.Helper()
	checkBounds(t, l, m)
	for off := m.low; off < m.next(); off++ {
		got, err := l.Read(off)
		if err != nil || !bytes.Equal(got, m.at(off)) {
			t.Fatalf("Read(%d) = %.40q, %v; want %.40q", off, got, err, m.at(off))
		}
	}
	for off := m.low; off < m.next(); {
		recs, err := l.ReadBatch(off, 3000)
		if err != nil {
			t.Fatalf("ReadBatch(%d): %v", off, err)
		}
		checkBatch(t, m, off, 3000, recs)
		off += uint64(len(recs))
	}
	checkTimesOf(t, l, m.low, m.times, m.at)
}

// checkBounds checks NextOffset, LowestOffset and Meta against the model.
func checkBounds(t testing.TB, l *Log, m *model) {
	t.Helper()
	if got := l.NextOffset(); got != m.next() {
		t.Fatalf("NextOffset = %d, want %d", got, m.next())
	}
	if got := l.LowestOffset(); got != m.low {
		t.Fatalf("LowestOffset = %d, want %d", got, m.low)
	}
	if got := l.Meta(); !bytes.Equal(got, m.meta) {
		t.Fatalf("Meta = %.40q, want %.40q", got, m.meta)
	}
}

// checkBatch checks what ReadBatch(off, maxBytes) returned: at least one record,
// the model's from off on, and no more than the byte budget unless just one.
func checkBatch(t testing.TB, m *model, off uint64, maxBytes int, recs [][]byte) {
	t.Helper()
	if len(recs) == 0 {
		t.Fatalf("ReadBatch(%d, %d) returned no records", off, maxBytes)
	}
	if off+uint64(len(recs)) > m.next() {
		t.Fatalf("ReadBatch(%d, %d) returned %d records, past next offset %d", off, maxBytes, len(recs), m.next())
	}
	size := 0
	for i, r := range recs {
		if want := m.at(off + uint64(i)); !bytes.Equal(r, want) {
			t.Fatalf("ReadBatch(%d, %d)[%d] = %.40q, want %.40q", off, maxBytes, i, r, want)
		}
		size += frameSize(len(r), nil)
	}
	if len(recs) > 1 && size > maxBytes {
		t.Fatalf("ReadBatch(%d, %d) returned %d records in %d store bytes", off, maxBytes, len(recs), size)
	}
}

// propTest drives a log and its model with random operations.
type propTest struct {
	t    testing.TB
	rng  *rand.Rand
	conf Config
	l    *Log
	m    model
	ops  map[string]int // operations run, by name
	last []string       // the latest operations, logged when the test fails
}

// did notes an operation for the failure log.
func (p *propTest) did(format string, args ...any) {
	if len(p.last) == 20 {
		p.last = p.last[1:]
	}
	p.last = append(p.last, fmt.Sprintf(format, args...))
}

func TestPropertyModel(t *testing.T) {
	rng := newRand(t)
	c := quietConfig(t)
	c.RetainBytes = 24 << 10
	if rng.IntN(2) == 0 {
		c.InitialOffset = rng.Uint64N(1 << 62)
	}
	p := &propTest{t: t, rng: rng, conf: c, ops: map[string]int{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("latest operations, oldest first:\n%s", strings.Join(p.last, "\n"))
		}
	})
	p.l = openLog(t, t.TempDir(), c)
	p.m.low = c.InitialOffset
	checkLog(t, p.l, &p.m)

	n := 10000
	if testing.Short() {
		n = 2000
	}
	for i := 0; i < n; i++ {
		switch r := rng.IntN(100); {
		case r < 35:
			p.append(nil)
		case r < 45:
			p.append(p.randomMeta())
		case r < 65:
			p.read()
		case r < 82:
			p.readBatch()
		case r < 88:
			p.sync()
		case r < 91:
			p.reopen()
		case r < 96:
			p.retain()
		case r < 97:
			p.checkpointReplace()
		default:
			p.wait()
		}
		checkBounds(t, p.l, &p.m)
	}
	p.reopen()
	t.Logf("%d operations: %v; offsets [%d, %d) at the end", n, p.ops, p.m.low, p.m.next())
}

// recordSize picks a record size: empty, small, at the limit or over it.
func (p *propTest) recordSize() int {
	limit := p.conf.MaxRecordBytes
	switch r := p.rng.IntN(100); {
	case r < 10:
		return 0
	case r < 15:
		return limit - p.rng.IntN(8)
	case r < 16:
		return limit + 1 + p.rng.IntN(8)
	default:
		return 1 + p.rng.IntN(120)
	}
}

func (p *propTest) randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(p.rng.Uint32())
	}
	return b
}

// randomMeta picks a metadata value: empty (which clears), small, at the limit
// or over it.
func (p *propTest) randomMeta() []byte {
	switch r := p.rng.IntN(100); {
	case r < 10:
		return []byte{}
	case r < 15:
		return p.randomBytes(MaxMetaBytes - p.rng.IntN(4))
	case r < 17:
		return p.randomBytes(MaxMetaBytes + 1)
	default:
		return p.randomBytes(1 + p.rng.IntN(40))
	}
}

// randomTime picks a time for AppendTimed: none, above the latest, at or
// below it (to be raised), or negative (refused).
func (p *propTest) randomTime() int64 {
	switch r := p.rng.IntN(20); {
	case r < 4:
		return 0
	case r < 8:
		return max(1, p.m.latest-p.rng.Int64N(1000))
	case r < 9:
		return -1 - p.rng.Int64N(10)
	default:
		return p.m.latest + 1 + p.rng.Int64N(1000)
	}
}

// append appends a batch of 0..20 records, with meta unless nil, half the
// time with AppendTimed, and checks the outcome, including the documented
// refusals, against the model.
func (p *propTest) append(meta []byte) {
	t := p.t
	t.Helper()
	timed := p.rng.IntN(2) == 0
	var ts int64
	if timed {
		ts = p.randomTime()
	}
	recs := make([][]byte, p.rng.IntN(21))
	tooLarge := -1
	size := 0
	for i := range recs {
		recs[i] = p.randomBytes(p.recordSize())
		if len(recs[i]) > p.conf.MaxRecordBytes && tooLarge < 0 {
			tooLarge = i
		}
		size += frameSize(len(recs[i]), nil)
	}
	newMeta := p.m.meta
	if meta != nil {
		newMeta = nil
		if len(meta) > 0 {
			newMeta = meta
		}
	}
	size += metaOverhead(newMeta)
	if len(recs) == 0 {
		size += frameSize(0, nil)
	}
	if ts > 0 {
		size += len(recs) * timeSize
	}

	var first uint64
	var err error
	name := "Append"
	switch {
	case timed:
		name = "AppendTimed"
		first, err = p.l.AppendTimed(meta, ts, recs...)
	case meta != nil:
		name = "AppendWithMeta"
		first, err = p.l.AppendWithMeta(meta, recs...)
	default:
		first, err = p.l.Append(recs...)
	}
	p.did("%s(meta %d bytes, time %d, %d records, %d store bytes) at %d = %d, %v", name, len(meta), ts, len(recs), size, p.m.next(), first, err)
	var tle *RecordTooLargeError
	switch {
	case ts < 0:
		if err == nil {
			t.Fatalf("%s with time %d succeeded", name, ts)
		}
		p.ops[name+" (negative time)"]++
		return
	case len(meta) > MaxMetaBytes:
		if err == nil {
			t.Fatalf("%s with %d bytes of metadata succeeded", name, len(meta))
		}
		p.ops[name+" (meta too large)"]++
		return
	case tooLarge >= 0:
		if !errors.As(err, &tle) || tle.Index != tooLarge || !errors.Is(err, ErrRecordTooLarge) {
			t.Fatalf("%s with record %d too large: %v", name, tooLarge, err)
		}
		p.ops[name+" (record too large)"]++
		return
	case len(recs) == 0 && meta == nil:
		if err != nil || first != p.m.next() {
			t.Fatalf("empty Append = %d, %v; want %d", first, err, p.m.next())
		}
		p.ops[name+" (empty)"]++
		return
	case int64(size) > p.conf.MaxStoreBytes-headerSize:
		if !errors.Is(err, ErrBatchTooLarge) {
			t.Fatalf("%s of %d store bytes: %v, want ErrBatchTooLarge", name, size, err)
		}
		p.ops[name+" (batch too large)"]++
		return
	case err != nil:
		t.Fatalf("%s of %d records, %d store bytes: %v", name, len(recs), size, err)
	}
	if first != p.m.next() {
		t.Fatalf("%s returned first offset %d, want %d", name, first, p.m.next())
	}
	p.m.recs = append(p.m.recs, recs...)
	if ts > 0 && len(recs) > 0 {
		ts = max(ts, p.m.latest)
		p.m.latest = ts
	}
	for range recs {
		p.m.times = append(p.m.times, ts)
	}
	p.m.meta = newMeta
	p.ops[name]++
	p.afterRetention()
}

// afterRetention follows LowestOffset, which retention may move on any roll:
// it may only move forward, and every record at or above it must remain.
func (p *propTest) afterRetention() {
	t := p.t
	t.Helper()
	low := p.l.LowestOffset()
	if low < p.m.low || low > p.m.next() {
		t.Fatalf("LowestOffset moved from %d to %d (next offset %d)", p.m.low, low, p.m.next())
	}
	if low > p.m.low {
		p.m.retain(low)
		for _, off := range []uint64{low, (low + p.m.next()) / 2, p.m.next() - 1} {
			if off >= low && off < p.m.next() {
				p.checkRead(off)
			}
		}
	}
}

// randomOffset picks an offset inside the log most of the time, else outside.
func (p *propTest) randomOffset() uint64 {
	m := &p.m
	if m.next() > m.low && p.rng.IntN(10) < 7 {
		return m.low + p.rng.Uint64N(m.next()-m.low)
	}
	switch p.rng.IntN(5) {
	case 0:
		if m.low > 0 {
			return p.rng.Uint64N(m.low)
		}
		return m.next()
	case 1:
		return m.next()
	case 2:
		return m.next() + 1 + p.rng.Uint64N(1000)
	case 3:
		return ^uint64(0)
	default:
		return 0
	}
}

func (p *propTest) checkRead(off uint64) {
	t := p.t
	t.Helper()
	got, err := p.l.Read(off)
	if off < p.m.low || off >= p.m.next() {
		p.checkOutOfRange("Read", off, err)
		return
	}
	if err != nil || !bytes.Equal(got, p.m.at(off)) {
		t.Fatalf("Read(%d) = %.40q, %v; want %.40q", off, got, err, p.m.at(off))
	}
}

func (p *propTest) checkOutOfRange(op string, off uint64, err error) {
	t := p.t
	t.Helper()
	var oor *OutOfRangeError
	if !errors.As(err, &oor) || !errors.Is(err, ErrOffsetOutOfRange) ||
		oor.Off != off || oor.Lowest != p.m.low || oor.Next != p.m.next() {
		t.Fatalf("%s(%d) outside [%d, %d): %v, want OutOfRangeError with those bounds", op, off, p.m.low, p.m.next(), err)
	}
}

func (p *propTest) read() {
	off := p.randomOffset()
	p.did("Read(%d)", off)
	p.checkRead(off)
	p.ops["Read"]++
}

func (p *propTest) readBatch() {
	t := p.t
	t.Helper()
	off := p.randomOffset()
	budgets := []int{-1, 0, 1, 100, 1000, 4096, 1 << 20}
	maxBytes := budgets[p.rng.IntN(len(budgets))]
	recs, err := p.l.ReadBatch(off, maxBytes)
	p.did("ReadBatch(%d, %d) = %d records, %v", off, maxBytes, len(recs), err)
	if off < p.m.low || off >= p.m.next() {
		p.checkOutOfRange("ReadBatch", off, err)
	} else if err != nil {
		t.Fatalf("ReadBatch(%d, %d): %v", off, maxBytes, err)
	} else {
		checkBatch(t, &p.m, off, maxBytes, recs)
	}
	p.ops["ReadBatch"]++
}

// wait checks that Wait returns at once for a readable offset and waits (until
// its context is done) for one past the end.
func (p *propTest) wait() {
	t := p.t
	t.Helper()
	p.did("Wait")
	if p.m.next() > p.m.low {
		if err := p.l.Wait(context.Background(), p.m.next()-1); err != nil {
			t.Fatalf("Wait(%d) with next offset %d: %v", p.m.next()-1, p.m.next(), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.l.Wait(ctx, p.m.next()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(next offset %d) with a done context: %v", p.m.next(), err)
	}
	p.ops["Wait"]++
}

func (p *propTest) sync() {
	p.did("Sync")
	if err := p.l.Sync(); err != nil {
		p.t.Fatalf("Sync: %v", err)
	}
	p.ops["Sync"]++
}

func (p *propTest) reopen() {
	t := p.t
	t.Helper()
	p.did("Close and Open")
	if err := p.l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	p.l = openLog(t, p.l.Dir(), p.conf)
	checkLog(t, p.l, &p.m)
	p.ops["reopen"]++
}

func (p *propTest) retain() {
	t := p.t
	t.Helper()
	p.did("Retain")
	if err := p.l.Retain(); err != nil {
		t.Fatalf("Retain: %v", err)
	}
	p.afterRetention()
	// Retain drops sealed segments while the files are larger than RetainBytes.
	var total int64
	segments := 0
	for name, b := range readDirFiles(t, p.l.Dir()) {
		if _, ext, ok := parseSegmentName(name); ok {
			total += int64(len(b))
			if ext == storeExt {
				segments++
			}
		}
	}
	if segments > 1 && total > p.conf.RetainBytes {
		t.Fatalf("after Retain, %d segments hold %d bytes, more than RetainBytes %d", segments, total, p.conf.RetainBytes)
	}
	checkLog(t, p.l, &p.m)
	p.ops["Retain"]++
}

// checkpointReplace checkpoints the log, replaces a fresh log's contents with
// the checkpoint, and goes on with the fresh log.
func (p *propTest) checkpointReplace() {
	t := p.t
	t.Helper()
	p.did("Checkpoint and Replace")
	cp := filepath.Join(t.TempDir(), "checkpoint")
	if err := p.l.Checkpoint(cp); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	fresh := openLog(t, t.TempDir(), p.conf)
	if p.rng.IntN(2) == 0 {
		if _, err := fresh.AppendWithMeta([]byte("to be replaced"), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	if err := fresh.Replace(cp); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if err := p.l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	p.l = fresh
	checkLog(t, p.l, &p.m)
	p.ops["Checkpoint+Replace"]++
}
