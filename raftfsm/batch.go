package raftfsm

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// CheckRecord refuses r with an error matching replica.ErrRecordTooLarge
// when it is over the record limit. It is the one place a record's size is
// checked on its way in.
func (l *Log) CheckRecord(r []byte) error {
	if len(r) > l.conf.Store.MaxRecordBytes {
		return fmt.Errorf("%w: the record is %d bytes, the limit is %d", replica.ErrRecordTooLarge, len(r), l.conf.Store.MaxRecordBytes)
	}
	return nil
}

// checkRecords is CheckRecord over a batch, naming the record by its index.
func (l *Log) checkRecords(recs [][]byte) error {
	for i, r := range recs {
		if len(r) > l.conf.Store.MaxRecordBytes {
			return fmt.Errorf("%w: record %d of the batch is %d bytes, the limit is %d", replica.ErrRecordTooLarge, i, len(r), l.conf.Store.MaxRecordBytes)
		}
	}
	return nil
}

// AppendAtomic is Append for a batch that must commit whole or not at all: a
// batch that does not fit one Raft entry is refused with a
// *BatchTooLargeError instead of being split.
func (l *Log) AppendAtomic(ctx context.Context, recs ...[]byte) (uint64, error) {
	if err := l.checkRecords(recs); err != nil {
		return 0, err
	}
	if size := entrySize(recs); size > l.conf.MaxEntryBytes {
		return 0, &replica.BatchTooLargeError{Size: size, Max: l.conf.MaxEntryBytes}
	}
	return l.Append(ctx, recs...)
}

// AppendAs is AppendAtomic for a batch of a producer: producer (at most
// MaxProducerIDBytes; empty: none, and then it is AppendAtomic) numbers its
// batches with increasing sequences from 1. A batch whose producer and
// sequence were appended before is not appended again: AppendAs returns the
// first offset it got then, with duplicate set. A sequence the producer
// table cannot check is refused with a *SequenceError (see producers.go).
func (l *Log) AppendAs(ctx context.Context, producer string, seq uint64, recs ...[]byte) (first uint64, duplicate bool, err error) {
	if producer == "" {
		first, err = l.AppendAtomic(ctx, recs...)
		return first, false, err
	}
	p, err := l.SubmitAs(ctx, producer, seq, recs...)
	if err != nil {
		return 0, false, err
	}
	return p.Wait(ctx)
}

// Pending is a batch SubmitAs handed to the batcher, until its outcome.
type Pending struct {
	l   *Log
	req *appendReq
}

// SubmitAs is AppendAs without the wait for the outcome: it checks the
// batch (at least one record), hands it to the batcher and returns, so the
// batches one goroutine submits get increasing offsets in the order
// submitted while several of them are in Raft at once. A batch refused
// before it was handed over (a check, a follower: *NotLeaderError, ctx)
// returns an error and no Pending.
func (l *Log) SubmitAs(ctx context.Context, producer string, seq uint64, recs ...[]byte) (replica.Pending, error) {
	if len(recs) == 0 {
		if producer != "" {
			return nil, fmt.Errorf("%w: producer %q: a batch needs at least one record", replica.ErrBadProducer, producer)
		}
		return nil, errors.New("raftfsm: a batch needs at least one record")
	}
	if err := l.checkRecords(recs); err != nil {
		return nil, err
	}
	size := entrySize(recs)
	if producer != "" {
		if err := checkProducer(producer, seq); err != nil {
			return nil, err
		}
		size += producerSize(producer)
	}
	if size > l.conf.MaxEntryBytes {
		return nil, &replica.BatchTooLargeError{Size: size, Max: l.conf.MaxEntryBytes}
	}
	if l.closed.Load() {
		return nil, replica.ErrClosed
	}
	if l.raft.State() != raft.Leader {
		return nil, l.notLeader()
	}
	req := &appendReq{recs: recs, producer: producer, seq: seq, done: make(chan struct{})}
	if err := l.submit(ctx, req); err != nil {
		return nil, err
	}
	return &Pending{l: l, req: req}, nil
}

// Done is closed once the outcome is known. It stays open if the Log is
// closed first: select on a stop of your own too, and call Wait.
func (p *Pending) Done() <-chan struct{} { return p.req.done }

// Wait waits for the outcome: the first offset of the batch, and whether it
// was a duplicate of a producer's earlier batch (see AppendAs). If ctx ends
// first the records may still be appended.
func (p *Pending) Wait(ctx context.Context) (first uint64, duplicate bool, err error) {
	first, err = p.l.awaitAppend(ctx, p.req)
	if err != nil {
		return 0, false, err
	}
	return first, p.req.duplicate, nil
}

// Batch gathers records for one AppendAtomic: Add takes records while they
// fit one Raft entry and maxBytes of encoded records.
type Batch struct {
	recs        [][]byte
	size, limit int
}

// NewBatch returns an empty batch bounded by one entry and maxBytes.
func (l *Log) NewBatch(maxBytes int) replica.Batch {
	return &Batch{limit: min(l.conf.MaxEntryBytes, maxBytes), size: entrySize(nil)}
}

// Add adds r if the batch is empty or r fits, and reports whether it did.
func (b *Batch) Add(r []byte) bool {
	grown := b.size + uvarintLen(uint64(len(r))) + len(r)
	if len(b.recs) > 0 && grown > b.limit {
		return false
	}
	b.recs, b.size = append(b.recs, r), grown
	return true
}

// Records returns the records added, in order.
func (b *Batch) Records() [][]byte { return b.recs }

// Len returns how many records were added.
func (b *Batch) Len() int { return len(b.recs) }
