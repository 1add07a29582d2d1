package replica

import (
	"errors"
	"fmt"
)

// The errors a Log returns. Match them with errors.Is and errors.As; the text
// of an error of the local log is the local log's own.
var (
	// ErrClosed is returned by a Log's methods after Close.
	ErrClosed = errors.New("replica: log closed")
	// ErrStoreClosed is returned by reads of a log whose local store has
	// closed under them.
	ErrStoreClosed = errors.New("replica: local log closed")
	// ErrNotLeader is matched by *NotLeaderError. The records were not
	// appended: retrying on the leader is safe.
	ErrNotLeader = errors.New("replica: not the leader")
	// ErrLeadershipLost: this server stopped leading before the records were
	// known to commit. They may or may not be in the log.
	ErrLeadershipLost = errors.New("replica: leadership lost before the records were known to commit; they may or may not be in the log")
	// ErrShutdownTimeout is returned by Close when Raft did not stop in
	// time; the stores are closed all the same.
	ErrShutdownTimeout = errors.New("replica: Raft did not shut down")
	// ErrOffsetOutOfRange is matched by *OutOfRangeError.
	ErrOffsetOutOfRange = errors.New("replica: offset out of range")
	// ErrRecordTooLarge refuses a record over the record limit; nothing of
	// its batch is appended.
	ErrRecordTooLarge = errors.New("replica: record too large")
	// ErrBatchTooLarge is matched by *BatchTooLargeError.
	ErrBatchTooLarge = errors.New("replica: batch larger than one atomic append")
	// ErrCorrupt marks data that fails verification on this server.
	ErrCorrupt = errors.New("replica: corrupt data")
	// ErrSequence is matched by *SequenceError.
	ErrSequence = errors.New("replica: producer sequence refused")
	// ErrBadProducer: a producer id over the limit, or a producer id with
	// sequence 0.
	ErrBadProducer = errors.New("replica: invalid producer id or sequence")
)

// NotLeaderError is returned by writes on a server that is not the leader. It
// names the leader when this server knows one, so the caller can forward.
type NotLeaderError struct {
	LeaderID   string // empty when no leader is known
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return "replica: not the leader, and no leader is known"
	}
	return fmt.Sprintf("replica: not the leader; the leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// OutOfRangeError is a read outside [Lowest, Next).
type OutOfRangeError struct {
	Off    uint64 // the offset asked for
	Lowest uint64 // the lowest offset still held
	Next   uint64 // the offset the next record will get
}

func (e *OutOfRangeError) Error() string {
	if e.Off >= e.Next {
		return fmt.Sprintf("replica: offset %d is past the end of the log (next offset %d)", e.Off, e.Next)
	}
	return fmt.Sprintf("replica: offset %d is below the lowest retained offset %d (the log holds %d to %d)", e.Off, e.Lowest, e.Lowest, e.Next-1)
}

// Is makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// BatchTooLargeError refuses an atomic batch that does not fit one Raft entry:
// Raft would carry it in several, which could commit in part.
type BatchTooLargeError struct {
	Size, Max int // the batch's encoded size and the largest
}

func (e *BatchTooLargeError) Error() string {
	return fmt.Sprintf("replica: the batch takes %d bytes, more than the largest atomic batch (%d bytes)", e.Size, e.Max)
}

// Is makes errors.Is(err, ErrBatchTooLarge) true.
func (e *BatchTooLargeError) Is(target error) bool { return target == ErrBatchTooLarge }

// SequenceError refuses a batch whose outcome the producer table cannot
// tell: its sequence is below the producer's last appended one and no longer
// remembered, or it is remembered with another number of records.
type SequenceError struct {
	Producer string
	Seq      uint64
	Last     uint64 // the producer's last appended sequence
	// Count and PrevCount are set when Seq was appended with PrevCount
	// records and is sent again with Count.
	Count, PrevCount int
}

func (e *SequenceError) Error() string {
	if e.PrevCount != e.Count {
		return fmt.Sprintf("replica: producer %q sent sequence %d again with %d records; it was appended with %d",
			e.Producer, e.Seq, e.Count, e.PrevCount)
	}
	return fmt.Sprintf("replica: producer %q: sequence %d is below its last appended sequence %d and too old to check for a duplicate; use a new sequence",
		e.Producer, e.Seq, e.Last)
}

// Is makes errors.Is(err, ErrSequence) true.
func (e *SequenceError) Is(target error) bool { return target == ErrSequence }
