package raftfsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// Exactly-once produce. A client names itself with a stable producer id and
// numbers its batches with increasing sequence numbers; an entry carries one
// producer's one batch (entry.go). The FSM keeps, per producer, the last
// batches appended (a window of ProducerWindow: sequence, first offset,
// count) and the entry time of its last append, and applies an entry with a
// producer like this, identically on every replica:
//
//   - a sequence in the window with the same count: nothing is appended; the
//     answer is the batch's original first offset, marked duplicate;
//   - a sequence above the last one appended, or a producer not in the
//     table: the batch is appended and recorded;
//   - anything else (below the last and no longer in the window, or in the
//     window with another count): refused with a *SequenceError.
//
// Time is entry time, never a replica's clock: the table's clock is the
// largest leader timestamp applied so far. A producer whose last append is
// older than ProducerMaxAge by that clock is evicted, and so is the least
// recently appending one when there are more than MaxProducers. So every
// replica holds the same table at the same entry.
//
// The table is written into every snapshot (file producersFile beside the
// log's segments) and read back by Restore and on start. It records the Raft
// index it is up to date with and the log's next offset there; entries that a
// restart replays at or below the log's applied index are not appended again,
// but they update the table, which so catches up with the log.

// producersFile is the table's file in a snapshot's files; a name no log
// segment can have.
const producersFile = "producers" // on-disk format; never change

// The table's file:
//
//	magic "PLPT" | version u32 | index u64 | next u64 | clock i64 | count u32 |
//	count × ( id len uvarint | id | last i64 | batches uvarint |
//	          batches × ( sequence uvarint | first uvarint | count uvarint ) ) |
//	crc32c u32 of everything before it
//
// Producers are in order of their last append, least recent first; fixed
// width integers are big-endian.
const (
	producersMagic   = "PLPT" // on-disk format; never change
	producersVersion = 1      // on-disk format; never change
)

// checkProducer refuses a producer id or sequence no entry may carry.
func checkProducer(producer string, seq uint64) error {
	switch {
	case len(producer) > MaxProducerIDBytes:
		return fmt.Errorf("%w: producer id of %d bytes is longer than %d", replica.ErrBadProducer, len(producer), MaxProducerIDBytes)
	case producer != "" && seq == 0:
		return fmt.Errorf("%w: producer %q: sequences start at 1", replica.ErrBadProducer, producer)
	}
	return nil
}

// sentBatch is one batch a producer appended.
type sentBatch struct {
	seq, first uint64
	count      int
}

// producer is one producer's entry in the table, a node of its list.
type producer struct {
	id         string
	last       int64       // entry time of its last append
	batches    []sentBatch // ascending sequence; at most window
	prev, next *producer
}

// producers is the exactly-once table. The FSM goroutine owns it.
type producers struct {
	window, max int
	maxAge      int64 // nanoseconds; 0: no age limit

	clock int64 // the largest entry timestamp applied
	byID  map[string]*producer
	// head is the least recently appending producer, tail the most.
	head, tail *producer

	// index is the Raft index of the last entry the table has taken in,
	// next the log's next offset after it (unknown when !nextKnown: a
	// snapshot without a table).
	index     uint64
	next      uint64
	nextKnown bool
}

func newProducers(c Config) *producers {
	return &producers{window: c.ProducerWindow, max: c.MaxProducers, maxAge: int64(c.ProducerMaxAge),
		byID: make(map[string]*producer), nextKnown: true}
}

// reset empties the table, which is then up to date at index with the log's
// next offset next.
func (t *producers) reset(index, next uint64, nextKnown bool) {
	t.clock, t.head, t.tail = 0, nil, nil
	t.byID = make(map[string]*producer)
	t.index, t.next, t.nextKnown = index, next, nextKnown
}

// len returns the number of producers in the table.
func (t *producers) len() int { return len(t.byID) }

// check decides what applying a batch of count records with producer id p and
// sequence seq does: nothing to decide for no producer (nil, nil); a
// duplicate (the batch it repeats); or a refusal (*SequenceError). nil, nil
// means append it.
func (t *producers) check(p string, seq uint64, count int) (*sentBatch, error) {
	if p == "" {
		return nil, nil
	}
	pr := t.byID[p]
	if pr == nil || len(pr.batches) == 0 {
		return nil, nil
	}
	last := pr.batches[len(pr.batches)-1].seq
	if seq > last {
		return nil, nil
	}
	for i := range pr.batches {
		if b := &pr.batches[i]; b.seq == seq {
			if b.count != count {
				return nil, &replica.SequenceError{Producer: p, Seq: seq, Last: last, Count: count, PrevCount: b.count}
			}
			dup := *b
			return &dup, nil
		}
	}
	return nil, &replica.SequenceError{Producer: p, Seq: seq, Last: last, Count: count, PrevCount: count}
}

// applied takes in the entry e at index: its timestamp moves the clock, and
// when count records of it were appended at first (count 0: nothing was)
// under a producer id, they are recorded. next is the log's next offset
// after the entry.
func (t *producers) applied(index uint64, e entry, first uint64, count int, next uint64) {
	t.tick(e.ts)
	if e.producer != "" && count > 0 {
		t.record(e.producer, e.seq, first, count)
	}
	t.index, t.next, t.nextKnown = index, next, true
}

// replay takes in an entry at index that the log applied before this start:
// it decides what the entry did as check did when it was first applied, and
// records it, without appending anything. Entries the table has taken in
// already are ignored. It reports false for a batch it could not record:
// after a snapshot without a table (taken before tables existed) the
// offsets of replayed records are unknown until an entry is applied anew.
func (t *producers) replay(index uint64, e entry) bool {
	if index <= t.index {
		return true
	}
	n := len(e.recs)
	if dup, err := t.check(e.producer, e.seq, n); dup != nil || err != nil {
		n = 0
	}
	if !t.nextKnown {
		t.tick(e.ts)
		t.index = index
		return e.producer == "" || n == 0
	}
	t.applied(index, e, t.next, n, t.next+uint64(n))
	return true
}

// tick moves the clock to ts when later, and evicts the producers idle for
// longer than maxAge by it.
func (t *producers) tick(ts int64) {
	if ts <= t.clock {
		return
	}
	t.clock = ts
	if t.maxAge <= 0 {
		return
	}
	for t.head != nil && t.clock-t.head.last > t.maxAge {
		t.remove(t.head)
	}
}

// record adds a batch appended for producer p, making p the most recent
// producer, and evicts the least recent ones beyond max.
func (t *producers) record(p string, seq, first uint64, count int) {
	pr := t.byID[p]
	if pr == nil {
		pr = &producer{id: p}
		t.byID[p] = pr
	} else {
		t.unlink(pr)
	}
	pr.last = t.clock
	if len(pr.batches) >= t.window {
		n := copy(pr.batches, pr.batches[len(pr.batches)-t.window+1:])
		pr.batches = pr.batches[:n]
	}
	pr.batches = append(pr.batches, sentBatch{seq: seq, first: first, count: count})
	t.pushBack(pr)
	for len(t.byID) > t.max {
		t.remove(t.head)
	}
}

func (t *producers) remove(pr *producer) {
	t.unlink(pr)
	delete(t.byID, pr.id)
}

func (t *producers) unlink(pr *producer) {
	if pr.prev != nil {
		pr.prev.next = pr.next
	} else {
		t.head = pr.next
	}
	if pr.next != nil {
		pr.next.prev = pr.prev
	} else {
		t.tail = pr.prev
	}
	pr.prev, pr.next = nil, nil
}

func (t *producers) pushBack(pr *producer) {
	pr.prev = t.tail
	if t.tail != nil {
		t.tail.next = pr
	} else {
		t.head = pr
	}
	t.tail = pr
}

var producersCRC = crc32.MakeTable(crc32.Castagnoli)

// marshal encodes the table (format above).
func (t *producers) marshal() []byte {
	b := append([]byte(producersMagic), 0, 0, 0, producersVersion)
	b = binary.BigEndian.AppendUint64(b, t.index)
	b = binary.BigEndian.AppendUint64(b, t.next)
	b = binary.BigEndian.AppendUint64(b, uint64(t.clock))
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.byID)))
	for pr := t.head; pr != nil; pr = pr.next {
		b = binary.AppendUvarint(b, uint64(len(pr.id)))
		b = append(b, pr.id...)
		b = binary.BigEndian.AppendUint64(b, uint64(pr.last))
		b = binary.AppendUvarint(b, uint64(len(pr.batches)))
		for _, sb := range pr.batches {
			b = binary.AppendUvarint(b, sb.seq)
			b = binary.AppendUvarint(b, sb.first)
			b = binary.AppendUvarint(b, uint64(sb.count))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, producersCRC))
}

var errBadProducers = errors.New("raftfsm: producer table: corrupt")

// unmarshal replaces the table with the one encoded in b. Producers and
// batches beyond this table's limits are dropped (the least recent first),
// as applying would have.
func (t *producers) unmarshal(b []byte) error {
	const fixed = 4 + 4 + 8 + 8 + 8 + 4
	if len(b) < fixed+4 || string(b[:4]) != producersMagic {
		return fmt.Errorf("%w: no header", errBadProducers)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, producersCRC) != sum {
		return fmt.Errorf("%w: checksum mismatch", errBadProducers)
	}
	if v := binary.BigEndian.Uint32(body[4:]); v != producersVersion {
		return fmt.Errorf("%w: version %d, want %d", errBadProducers, v, producersVersion)
	}
	t.reset(binary.BigEndian.Uint64(body[8:]), binary.BigEndian.Uint64(body[16:]), true)
	t.clock = int64(binary.BigEndian.Uint64(body[24:]))
	count := binary.BigEndian.Uint32(body[32:])
	r := body[fixed:]
	uvarint := func(what string) (uint64, error) {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad %s", errBadProducers, what)
		}
		r = r[n:]
		return v, nil
	}
	for i := uint32(0); i < count; i++ {
		l, err := uvarint("id length")
		if err != nil {
			return err
		}
		if l > MaxProducerIDBytes || l+8 > uint64(len(r)) {
			return fmt.Errorf("%w: producer %d cut short", errBadProducers, i)
		}
		pr := &producer{id: string(r[:l]), last: int64(binary.BigEndian.Uint64(r[l:]))}
		r = r[l+8:]
		n, err := uvarint("batch count")
		if err != nil {
			return err
		}
		if n > uint64(len(r))/3 { // every batch takes at least 3 bytes
			return fmt.Errorf("%w: producer %d: bad batch count", errBadProducers, i)
		}
		pr.batches = make([]sentBatch, 0, min(int(n), t.window))
		for range n {
			var sb sentBatch
			var c uint64
			if sb.seq, err = uvarint("sequence"); err == nil {
				if sb.first, err = uvarint("offset"); err == nil {
					c, err = uvarint("count")
				}
			}
			if err != nil {
				return err
			}
			sb.count = int(c)
			if len(pr.batches) == t.window {
				pr.batches = append(pr.batches[:0], pr.batches[1:]...)
			}
			pr.batches = append(pr.batches, sb)
		}
		if _, dup := t.byID[pr.id]; dup {
			return fmt.Errorf("%w: producer %q twice", errBadProducers, pr.id)
		}
		t.byID[pr.id] = pr
		t.pushBack(pr)
	}
	if len(r) != 0 {
		return fmt.Errorf("%w: %d bytes after the last producer", errBadProducers, len(r))
	}
	for len(t.byID) > t.max {
		t.remove(t.head)
	}
	return nil
}

// writeFile writes the table into dir as producersFile, fsynced.
func (t *producers) writeFile(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, producersFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("raftfsm: producer table: %w", err)
	}
	_, err = f.Write(t.marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raftfsm: producer table: %w", err)
	}
	return snapshotFsyncDir(dir)
}

// readFile replaces the table with the one in dir's producersFile, and
// reports whether there was one.
func (t *producers) readFile(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, producersFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("raftfsm: producer table: %w", err)
	}
	if err := t.unmarshal(b); err != nil {
		return false, fmt.Errorf("%w (%s)", err, filepath.Join(dir, producersFile))
	}
	return true, nil
}
