package raftfsm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/logstore"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

func TestEntryCodec(t *testing.T) {
	recs := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("x"), 300)}
	for _, tc := range []struct {
		name string
		e    entry
	}{
		{"plain", entry{recs: recs}},
		{"stamped", entry{ts: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC).UnixNano(), recs: recs}},
		{"producer", entry{ts: 1, producer: "p-1", seq: 1 << 40, recs: recs}},
		{"longest producer", entry{ts: 7, producer: strings.Repeat("p", MaxProducerIDBytes), seq: 1, recs: recs[:1]}},
		{"no records", entry{ts: 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := appendEntry(nil, tc.e)
			if data[0] != entryStamped {
				t.Fatalf("kind %d, want %d", data[0], entryStamped)
			}
			if max := entrySize(tc.e.recs) + producerSize(tc.e.producer); len(data) > max {
				t.Fatalf("encoded %d bytes, entrySize says at most %d", len(data), max)
			}
			got, err := decodeEntry(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			if got.ts != tc.e.ts || got.producer != tc.e.producer || got.seq != tc.e.seq || len(got.recs) != len(tc.e.recs) {
				t.Fatalf("decoded %+v, want %+v", got, tc.e)
			}
			for i := range got.recs {
				if !bytes.Equal(got.recs[i], tc.e.recs[i]) {
					t.Fatalf("record %d = %q, want %q", i, got.recs[i], tc.e.recs[i])
				}
			}
		})
	}
}

// TestEntryKind1StillDecodes: entries written before kind 2 stay readable.
func TestEntryKind1StillDecodes(t *testing.T) {
	data := []byte{1, 2, 1, 'a', 0} // kind 1, two records: "a" and ""
	e, err := decodeEntry(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	if e.ts != 0 || e.producer != "" || e.seq != 0 || !reflect.DeepEqual(e.recs, [][]byte{[]byte("a"), {}}) {
		t.Fatalf("decoded %+v", e)
	}
}

func TestEntryMalformed(t *testing.T) {
	long := append([]byte{2, 0}, appendUvarint(MaxProducerIDBytes+1)...)
	long = append(long, bytes.Repeat([]byte("p"), MaxProducerIDBytes+1)...)
	long = append(long, 1, 0)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"unknown kind", []byte{3, 0}},
		{"kind 2 cut in timestamp", []byte{2, 0x80}},
		{"kind 2 without producer length", []byte{2, 5}},
		{"kind 2 producer cut short", []byte{2, 5, 4, 'a', 'b'}},
		{"kind 2 producer too long", long},
		{"kind 2 without sequence", []byte{2, 5, 1, 'p'}},
		{"kind 2 without count", []byte{2, 5, 1, 'p', 1}},
		{"record cut short", []byte{2, 5, 0, 0, 1, 3, 'a'}},
		{"trailing bytes", []byte{2, 5, 0, 0, 1, 1, 'a', 'z'}},
		{"timestamp over int64", append([]byte{2}, appendUvarint(1<<63)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeEntry(nil, tc.data); !errors.Is(err, errBadEntry) {
				t.Fatalf("decodeEntry(%x) = %v, want errBadEntry", tc.data, err)
			}
		})
	}
}

func appendUvarint(v uint64) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// FuzzEntry: no input makes the decoder panic, and whatever decodes encodes
// (as kind 2) to bytes that decode to the same entry.
func FuzzEntry(f *testing.F) {
	f.Add([]byte{1, 2, 1, 'a', 0})
	f.Add(appendEntry(nil, entry{ts: 1, producer: "p", seq: 3, recs: [][]byte{[]byte("v")}}))
	f.Add([]byte{2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(nil, data)
		if err != nil {
			return
		}
		again, err := decodeEntry(nil, appendEntry(nil, e))
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if again.ts != e.ts || again.producer != e.producer || again.seq != e.seq || len(again.recs) != len(e.recs) {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
		for i := range e.recs {
			if !bytes.Equal(e.recs[i], again.recs[i]) {
				t.Fatalf("record %d changed", i)
			}
		}
	})
}

func testProducers(window, maxProducers int, maxAge time.Duration) *producers {
	c := DefaultConfig()
	c.ProducerWindow, c.MaxProducers, c.ProducerMaxAge = window, maxProducers, maxAge
	return newProducers(c)
}

// applyTo runs one entry through the table as the FSM does, with next as the
// log's next offset, and returns the answer and the new next offset.
func applyTo(t *producers, index uint64, e entry, next uint64) (applyResult, uint64) {
	dup, err := t.check(e.producer, e.seq, len(e.recs))
	switch {
	case err != nil:
		t.applied(index, e, next, 0, next)
		return applyResult{err: err}, next
	case dup != nil:
		t.applied(index, e, next, 0, next)
		return applyResult{first: dup.first, duplicate: true}, next
	}
	t.applied(index, e, next, len(e.recs), next+uint64(len(e.recs)))
	return applyResult{first: next}, next + uint64(len(e.recs))
}

func recsN(n int) [][]byte { return make([][]byte, n) }

func TestProducerWindow(t *testing.T) {
	tab := testProducers(3, 10, time.Hour)
	next := uint64(0)
	var res applyResult
	at := int64(time.Hour)
	step := func(index uint64, p string, seq uint64, n int) applyResult {
		res, next = applyTo(tab, index, entry{ts: at, producer: p, seq: seq, recs: recsN(n)}, next)
		return res
	}
	firsts := map[uint64]uint64{}
	for seq := uint64(1); seq <= 5; seq++ {
		res := step(seq, "a", seq, 2)
		if res.err != nil || res.duplicate {
			t.Fatalf("seq %d: %+v", seq, res)
		}
		firsts[seq] = res.first
	}
	for _, tc := range []struct {
		name string
		seq  uint64
		n    int
		want applyResult
		err  bool
	}{
		{name: "last again", seq: 5, n: 2, want: applyResult{first: firsts[5], duplicate: true}},
		{name: "in the window", seq: 3, n: 2, want: applyResult{first: firsts[3], duplicate: true}},
		{name: "below the window", seq: 2, n: 2, err: true},
		{name: "in the window with another count", seq: 4, n: 1, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := next
			got := step(100, "a", tc.seq, tc.n)
			if next != before {
				t.Fatalf("appended %d records", next-before)
			}
			var se *replica.SequenceError
			if tc.err {
				if !errors.As(got.err, &se) || !errors.Is(got.err, replica.ErrSequence) {
					t.Fatalf("got %+v, want a *replica.SequenceError", got)
				}
				t.Log(got.err)
				return
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// A gap is fine; a new producer starts anywhere; no producer never dedupes.
	if res := step(200, "a", 9, 1); res.err != nil || res.duplicate {
		t.Fatalf("seq 9 after 5: %+v", res)
	}
	if res := step(201, "b", 77, 1); res.err != nil || res.duplicate {
		t.Fatalf("new producer: %+v", res)
	}
	for range 2 {
		if res := step(202, "", 0, 1); res.err != nil || res.duplicate {
			t.Fatalf("no producer: %+v", res)
		}
	}
}

func TestProducerEviction(t *testing.T) {
	hour := int64(time.Hour)
	tab := testProducers(4, 3, 24*time.Hour)
	next := uint64(0)
	apply := func(ts int64, p string, seq uint64) applyResult {
		var res applyResult
		res, next = applyTo(tab, 1, entry{ts: ts, producer: p, seq: seq, recs: recsN(1)}, next)
		return res
	}
	apply(1*hour, "old", 1)
	apply(2*hour, "a", 1)
	apply(3*hour, "b", 1)
	// A leader whose clock is behind does not move the table's clock back.
	apply(1*hour, "a", 2)
	if tab.clock != 3*hour {
		t.Fatalf("clock %d, want %d", tab.clock, 3*hour)
	}
	// 24 h after "old"'s last append, by entry time, it is still there...
	apply(25*hour, "", 0)
	if _, ok := tab.byID["old"]; !ok {
		t.Fatal("evicted at exactly the age limit")
	}
	// ...and gone after that: its sequence 1 is new again.
	apply(25*hour+1, "", 0)
	if _, ok := tab.byID["old"]; ok {
		t.Fatal("not evicted past the age limit")
	}
	if res := apply(25*hour+1, "old", 1); res.duplicate || res.err != nil {
		t.Fatalf("evicted producer's sequence 1: %+v", res)
	}
	// More than MaxProducers: the least recently appending one goes ("b";
	// "a" appended after it, with the clock at 3 h).
	apply(26*hour, "c", 1)
	if got := producerIDs(tab); !reflect.DeepEqual(got, []string{"a", "old", "c"}) {
		t.Fatalf("producers %v, want [a old c]", got)
	}
}

// producerIDs lists the table's producers, least recent first.
func producerIDs(t *producers) []string {
	var ids []string
	for pr := t.head; pr != nil; pr = pr.next {
		ids = append(ids, pr.id)
	}
	return ids
}

func TestProducerTableFile(t *testing.T) {
	tab := testProducers(4, 100, time.Hour)
	next := uint64(0)
	for i := range uint64(40) {
		_, next = applyTo(tab, i+1, entry{ts: int64(i), producer: fmt.Sprintf("p%d", i%7), seq: i + 1, recs: recsN(int(i%3) + 1)}, next)
	}
	dir := t.TempDir()
	if err := tab.writeFile(dir); err != nil {
		t.Fatal(err)
	}
	got := testProducers(4, 100, time.Hour)
	if ok, err := got.readFile(dir); !ok || err != nil {
		t.Fatalf("readFile: %v, %v", ok, err)
	}
	if !bytes.Equal(got.marshal(), tab.marshal()) || got.index != 40 || got.next != next {
		t.Fatalf("read back %d producers at index %d next %d; wrote %d at 40 next %d", got.len(), got.index, got.next, tab.len(), next)
	}
	// Smaller limits keep the most recent producers and batches.
	small := testProducers(2, 3, time.Hour)
	if _, err := small.readFile(dir); err != nil {
		t.Fatal(err)
	}
	if small.len() != 3 || len(small.tail.batches) != 2 || !reflect.DeepEqual(producerIDs(small), producerIDs(tab)[4:]) {
		t.Fatalf("with smaller limits: %v (%d batches last), want %v", producerIDs(small), len(small.tail.batches), producerIDs(tab)[4:])
	}
	// Every flipped byte is caught.
	b := tab.marshal()
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x40
		if err := testProducers(4, 100, time.Hour).unmarshal(bad); err == nil {
			t.Fatalf("byte %d flipped: no error", i)
		}
	}
	if ok, err := testProducers(4, 100, time.Hour).readFile(t.TempDir()); ok || err != nil {
		t.Fatalf("no file: %v, %v", ok, err)
	}
}

// testFSM is an FSM over a log in dir, as New makes it.
func testFSM(t testing.TB, dir string) *fsm {
	t.Helper()
	c := testConfig()
	logger := testLogger(t)
	lg, err := logstore.Open(filepath.Join(dir, "log"), c.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	applied, err := appliedIndex(lg.Meta())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "scratch"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fsm{log: lg, logger: logger, conf: c, scratch: filepath.Join(dir, "scratch"), applied: applied,
		prod: newProducers(c), stop: make(chan struct{})}
	f.setStatus(nil)
	return f
}

func commandLog(index uint64, e entry) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: appendEntry(nil, e)}
}

// TestFSMDedupesAndReplayRebuildsTheTable: the FSM appends a batch once,
// answers its retries with its offsets, refuses an old sequence, and a
// restart that replays the entries into a fresh FSM (they are not appended
// again) rebuilds the same table.
func TestFSMDedupesAndReplayRebuildsTheTable(t *testing.T) {
	dir := t.TempDir()
	f := testFSM(t, dir)
	v := func(s string) [][]byte { return [][]byte{[]byte(s + "-0"), []byte(s + "-1")} }
	logs := []*raft.Log{
		commandLog(1, entry{ts: 10, recs: v("plain")}),
		commandLog(2, entry{ts: 11, producer: "p", seq: 1, recs: v("p1")}),
		commandLog(3, entry{ts: 12, producer: "p", seq: 1, recs: v("p1")}), // a retry
		{Index: 4, Term: 1, Type: raft.LogNoop},
		commandLog(5, entry{ts: 13, producer: "q", seq: 5, recs: v("q5")}),
		commandLog(6, entry{ts: 14, producer: "p", seq: 2, recs: v("p2")}),
		commandLog(7, entry{ts: 15, producer: "q", seq: 5, recs: v("q5")}), // a retry
	}
	want := []interface{}{
		applyResult{first: 0}, applyResult{first: 2}, applyResult{first: 2, duplicate: true}, nil,
		applyResult{first: 4}, applyResult{first: 6}, applyResult{first: 4, duplicate: true},
	}
	got := f.ApplyBatch(logs)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: %+v, want %+v", logs[i].Index, got[i], want[i])
		}
	}
	if next := f.log.NextOffset(); next != 8 {
		t.Fatalf("next offset %d, want 8 (retries appended?)", next)
	}
	// Shrink the window so that p's sequence 1 is forgotten... it is not:
	// the window is 32. A sequence below the last that is not in the
	// window is refused.
	f.prod.window = 1
	res := f.ApplyBatch([]*raft.Log{
		commandLog(8, entry{ts: 16, producer: "p", seq: 3, recs: v("p3")}),
		commandLog(9, entry{ts: 17, producer: "p", seq: 2, recs: v("p2")}),
	})
	if res[0].(applyResult).err != nil || !errors.Is(res[1].(applyResult).err, replica.ErrSequence) {
		t.Fatalf("after the window moved: %+v", res)
	}
	f.prod.window = DefaultConfig().ProducerWindow
	if f.applied != 9 || f.log.NextOffset() != 10 {
		t.Fatalf("applied %d next %d, want 9 and 10", f.applied, f.log.NextOffset())
	}
	// Restart: a new FSM over the same log; Raft replays everything.
	wantTable := f.prod.marshal()
	if err := f.log.Close(); err != nil {
		t.Fatal(err)
	}
	g := testFSM(t, dir)
	all := append(logs, commandLog(8, entry{ts: 16, producer: "p", seq: 3, recs: v("p3")}),
		commandLog(9, entry{ts: 17, producer: "p", seq: 2, recs: v("p2")}))
	g.prod.window = 1
	for _, r := range g.ApplyBatch(all) {
		if r.(applyResult).err != errReplayed {
			t.Fatalf("replayed entry answered %+v", r)
		}
	}
	g.prod.window = f.prod.window
	if !bytes.Equal(g.prod.marshal(), wantTable) {
		t.Fatal("the table rebuilt by replay differs from the one before the restart")
	}
	if g.log.NextOffset() != 10 {
		t.Fatalf("replay appended: next offset %d", g.log.NextOffset())
	}
	// And it dedupes as before.
	res = g.ApplyBatch([]*raft.Log{commandLog(10, entry{ts: 18, producer: "p", seq: 3, recs: v("p3")})})
	if r := res[0].(applyResult); r != (applyResult{first: 8, duplicate: true}) {
		t.Fatalf("retry after restart: %+v", r)
	}
}

// TestFSMSnapshotCarriesTheTable: Snapshot writes the table beside the
// segments, Restore installs it, and a start loads it from the newest
// snapshot, with replay bringing it up to date.
func TestFSMSnapshotCarriesTheTable(t *testing.T) {
	dir := t.TempDir()
	f := testFSM(t, dir)
	f.ApplyBatch([]*raft.Log{
		commandLog(1, entry{ts: 10, producer: "p", seq: 1, recs: [][]byte{[]byte("a")}}),
		commandLog(2, entry{ts: 11, producer: "q", seq: 1, recs: [][]byte{[]byte("b")}}),
	})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	store, err := newSnapshotStore(filepath.Join(dir, "snapshots"), 2, f.logger)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := store.Create(raft.SnapshotVersionMax, 2, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	later := commandLog(3, entry{ts: 12, producer: "p", seq: 2, recs: [][]byte{[]byte("c")}})
	f.ApplyBatch([]*raft.Log{later})
	want := f.prod.marshal()

	// Restore on another replica: its table is the snapshot's.
	other := testFSM(t, t.TempDir())
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if other.prod.len() != 2 || other.prod.index != 2 || other.log.NextOffset() != 2 {
		t.Fatalf("restored %d producers at index %d, next offset %d", other.prod.len(), other.prod.index, other.log.NextOffset())
	}
	if res := other.ApplyBatch([]*raft.Log{commandLog(3, entry{ts: 12, producer: "q", seq: 1, recs: [][]byte{[]byte("b")}})}); res[0] != (applyResult{first: 1, duplicate: true}) {
		t.Fatalf("retry on the restored replica: %+v", res[0])
	}

	// Start over the same directory: the table comes from the snapshot,
	// the entry after it from replay.
	if err := f.log.Close(); err != nil {
		t.Fatal(err)
	}
	g := testFSM(t, dir)
	if err := g.catchUpWithSnapshot(store); err != nil {
		t.Fatal(err)
	}
	if g.prod.index != 2 {
		t.Fatalf("loaded table at index %d, want 2", g.prod.index)
	}
	g.ApplyBatch([]*raft.Log{later})
	if !bytes.Equal(g.prod.marshal(), want) {
		t.Fatal("table after start and replay differs")
	}
}

// TestExactlyOnceAcrossLeaderChangeAndRestart: a retried AppendAs gets the
// original offset from a new leader, and from the cluster restarted after a
// snapshot, and every replica holds each batch once.
func TestExactlyOnceAcrossLeaderChangeAndRestart(t *testing.T) {
	tc := newTestCluster(t, 3)
	ctx := context.Background()
	batch := [][]byte{[]byte("once-a"), []byte("once-b")}
	appendAs := func(seq uint64, want uint64, wantDup bool) {
		t.Helper()
		for tries := 0; ; tries++ {
			first, dup, err := tc.leader().AppendAs(ctx, "producer-1", seq, batch...)
			if errors.Is(err, replica.ErrNotLeader) && tries < 20 {
				continue
			}
			if err != nil || first != want || dup != wantDup {
				t.Fatalf("AppendAs(seq %d) = %d, %v, %v; want %d, %v", seq, first, dup, err, want, wantDup)
			}
			return
		}
	}
	tc.appendValues(0, 10)
	appendAs(1, 10, false)
	appendAs(1, 10, true)
	// A leader change: the new leader answers the retry the same way.
	old := tc.leaderIndex()
	tc.stop(old)
	appendAs(1, 10, true)
	tc.start(old, false)
	appendAs(2, 12, false)
	for i := range tc.nodes {
		tc.waitApplied(i, 14)
	}
	// A snapshot on every node, then more, then every node restarted.
	for i, n := range tc.snapshotNodes() {
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatalf("Snapshot on %s: %v", nodeID(i), err)
		}
	}
	appendAs(3, 14, false)
	for i := range tc.nodes {
		tc.waitApplied(i, 16)
	}
	for i := range tc.nodes {
		tc.stop(i)
	}
	for i := range tc.nodes {
		tc.start(i, false)
	}
	appendAs(1, 10, true)
	appendAs(2, 12, true)
	appendAs(3, 14, true)
	if _, _, err := tc.leader().AppendAs(ctx, "producer-1", 4, batch[:1]...); err != nil {
		t.Fatal(err)
	}
	for i := range tc.nodes {
		tc.waitApplied(i, 17)
		if next := tc.nodes[i].NextOffset(); next != 17 {
			t.Fatalf("%s: next offset %d, want 17", nodeID(i), next)
		}
	}
}

func TestAppendAsRefusesBadProducers(t *testing.T) {
	tc := newTestCluster(t, 1)
	l := tc.leader()
	ctx := context.Background()
	if _, _, err := l.AppendAs(ctx, "p", 0, []byte("v")); !errors.Is(err, replica.ErrBadProducer) {
		t.Fatalf("sequence 0: %v", err)
	}
	if _, _, err := l.AppendAs(ctx, strings.Repeat("p", MaxProducerIDBytes+1), 1, []byte("v")); !errors.Is(err, replica.ErrBadProducer) {
		t.Fatalf("long producer id: %v", err)
	}
	if _, _, err := l.AppendAs(ctx, "p", 5, []byte("v")); err != nil {
		t.Fatal(err)
	}
	_, _, err := l.AppendAs(ctx, "p", 5, []byte("v"), []byte("w"))
	var se *replica.SequenceError
	if !errors.As(err, &se) {
		t.Fatalf("sequence 5 again with 2 records: %v", err)
	}
}

// FuzzProducersFile: no input makes the table's decoder panic, and a table
// that decodes encodes to the same bytes. The fuzzer's input is the file
// without its checksum, which is added, so that the decoder gets past it.
func FuzzProducersFile(f *testing.F) {
	tab := testProducers(4, 100, time.Hour)
	next := uint64(0)
	for i := range uint64(6) {
		_, next = applyTo(tab, i+1, entry{ts: int64(i), producer: fmt.Sprintf("p%d", i%3), seq: i + 1, recs: recsN(2)}, next)
	}
	withoutSum := func(b []byte) []byte { return b[:len(b)-4] }
	f.Add(withoutSum(tab.marshal()))
	f.Add(withoutSum(testProducers(4, 100, time.Hour).marshal()))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := binary.BigEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, producersCRC))
		got := testProducers(4, 100, time.Hour)
		if err := got.unmarshal(b); err != nil {
			return
		}
		again := testProducers(4, 100, time.Hour)
		if err := again.unmarshal(got.marshal()); err != nil || !bytes.Equal(again.marshal(), got.marshal()) {
			t.Fatalf("a decoded table does not round-trip: %v", err)
		}
	})
}

// TestAppendAsConcurrentWithAppend: producers' batches, each sent twice, and
// plain appends from many goroutines at once: every producer batch lands once,
// at the offsets both sends were told, and the log stays dense.
func TestAppendAsConcurrentWithAppend(t *testing.T) {
	tc := newTestCluster(t, 1)
	l := tc.leader()
	ctx := context.Background()
	const producers, batches, plain = 4, 20, 40
	type sent struct {
		first uint64
		recs  [][]byte
	}
	got := make([][]sent, producers)
	errs := make(chan error, producers+1)
	for p := range producers {
		go func() {
			for seq := uint64(1); seq <= batches; seq++ {
				recs := [][]byte{fmt.Appendf(nil, "p%d-%d-a", p, seq), fmt.Appendf(nil, "p%d-%d-b", p, seq)}
				first, dup, err := l.AppendAs(ctx, fmt.Sprintf("p%d", p), seq, recs...)
				if err != nil || dup {
					errs <- fmt.Errorf("producer %d seq %d: %d, %v, %v", p, seq, first, dup, err)
					return
				}
				again, dup, err := l.AppendAs(ctx, fmt.Sprintf("p%d", p), seq, recs...)
				if err != nil || !dup || again != first {
					errs <- fmt.Errorf("producer %d seq %d again: %d, %v, %v; want a duplicate at %d", p, seq, again, dup, err, first)
					return
				}
				got[p] = append(got[p], sent{first, recs})
			}
			errs <- nil
		}()
	}
	go func() {
		for i := range plain {
			if _, err := l.Append(ctx, fmt.Appendf(nil, "plain-%d", i)); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for range producers + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if next, want := l.NextOffset(), uint64(producers*batches*2+plain); next != want {
		t.Fatalf("next offset %d, want %d", next, want)
	}
	for p := range producers {
		for _, s := range got[p] {
			for i, want := range s.recs {
				if v, err := l.Read(s.first + uint64(i)); err != nil || !bytes.Equal(v, want) {
					t.Fatalf("offset %d = %q, %v; want %q", s.first+uint64(i), v, err, want)
				}
			}
		}
	}
}

// Batches one goroutine submits without waiting for any get offsets in the
// order submitted; a producer's likewise, each answered as its own (not a
// duplicate).
func TestSubmitAsKeepsOrder(t *testing.T) {
	tc := newTestCluster(t, 1)
	l := tc.leader()
	ctx := context.Background()
	for _, producer := range []string{"", "p"} {
		const batches = 40
		var pend []replica.Pending
		for i := range batches {
			p, err := l.SubmitAs(ctx, producer, uint64(i+1), fmt.Appendf(nil, "%s%d-a", producer, i), fmt.Appendf(nil, "%s%d-b", producer, i))
			if err != nil {
				t.Fatalf("SubmitAs %d: %v", i, err)
			}
			pend = append(pend, p)
		}
		var prev uint64
		for i, p := range pend {
			first, dup, err := p.Wait(ctx)
			if err != nil || dup {
				t.Fatalf("batch %d: %d, duplicate %v, %v", i, first, dup, err)
			}
			if i > 0 && first <= prev {
				t.Fatalf("batch %d got offset %d after batch %d's %d: not in the order submitted", i, first, i-1, prev)
			}
			recs, err := l.ReadRecords(first, 1<<20)
			if err != nil || len(recs) < 2 || string(recs[0].Value) != fmt.Sprintf("%s%d-a", producer, i) || string(recs[1].Value) != fmt.Sprintf("%s%d-b", producer, i) {
				t.Fatalf("batch %d at offset %d reads back %v, %v", i, first, recs, err)
			}
			prev = first
		}
	}
	if _, err := l.SubmitAs(ctx, "", 0); err == nil {
		t.Fatal("SubmitAs of no records succeeded")
	}
}
