package raftfsm

import (
	"errors"

	"github.com/proglogctl/proglogctl/logstore"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// storeErr names an error of the local log in the replica's terms, so that
// callers match replica's errors alone: an offset out of range becomes a
// *replica.OutOfRangeError, and the other errors the replica's callers act on
// keep the local log's text and chain under the replica's sentinel.
func storeErr(err error) error {
	var oor *logstore.OutOfRangeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &oor):
		return &replica.OutOfRangeError{Off: oor.Off, Lowest: oor.Lowest, Next: oor.Next}
	case errors.Is(err, logstore.ErrClosed):
		return &storeError{kind: replica.ErrStoreClosed, err: err}
	case errors.Is(err, logstore.ErrCorrupt):
		return &storeError{kind: replica.ErrCorrupt, err: err}
	case errors.Is(err, logstore.ErrRecordTooLarge):
		return &storeError{kind: replica.ErrRecordTooLarge, err: err}
	}
	return err
}

// storeError is an error of the local log that matches kind too.
type storeError struct{ kind, err error }

func (e *storeError) Error() string        { return e.err.Error() }
func (e *storeError) Unwrap() error        { return e.err }
func (e *storeError) Is(target error) bool { return target == e.kind }
