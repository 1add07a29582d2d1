package logstore

import (
	"errors"
	"fmt"
)

var (
	// ErrOffsetOutOfRange is matched (errors.Is) by *OutOfRangeError.
	ErrOffsetOutOfRange = errors.New("logstore: offset out of range")
	// ErrRecordTooLarge is matched by *RecordTooLargeError.
	ErrRecordTooLarge = errors.New("logstore: record too large")
	// ErrBatchTooLarge: one Append's records do not fit in one segment.
	ErrBatchTooLarge = errors.New("logstore: batch too large for one segment")
	// ErrCorrupt is matched by *CorruptError.
	ErrCorrupt = errors.New("logstore: corrupt data")
	// ErrClosed is returned by every method of a closed Log but Close.
	ErrClosed = errors.New("logstore: log closed")
	// ErrLocked: another process has the data directory open.
	ErrLocked = errors.New("logstore: data directory is in use by another process")
)

// OutOfRangeError is returned for a read outside [Lowest, Next).
type OutOfRangeError struct {
	Off    uint64 // the offset asked for
	Lowest uint64 // the lowest offset still retained
	Next   uint64 // the offset the next appended record will get
}

func (e *OutOfRangeError) Error() string {
	if e.Off >= e.Next {
		return fmt.Sprintf("logstore: offset %d is past the end of the log (next offset %d)", e.Off, e.Next)
	}
	return fmt.Sprintf("logstore: offset %d is below the lowest retained offset %d (the log holds %d to %d)", e.Off, e.Lowest, e.Lowest, e.Next-1)
}

// Is makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// RecordTooLargeError is returned when a record of an Append exceeds
// Config.MaxRecordBytes; nothing of that Append is written.
type RecordTooLargeError struct {
	Index int // position of the record in the Append call
	Size  int
	Max   int
}

func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("logstore: record %d is %d bytes, the limit is %d", e.Index, e.Size, e.Max)
}

// Is makes errors.Is(err, ErrRecordTooLarge) true.
func (e *RecordTooLargeError) Is(target error) bool { return target == ErrRecordTooLarge }

// CorruptError names the file and position of data that fails verification.
type CorruptError struct {
	Path   string
	Pos    int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("logstore: corrupt data in %s at byte %d: %s", e.Path, e.Pos, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
