package raftfsm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/proglogctl/proglogctl/logstore"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// TestStoreErrNamesLocalErrorsInReplicaTerms: what the node matches of an
// error of the local log, it matches under replica's names alone.
func TestStoreErrNamesLocalErrorsInReplicaTerms(t *testing.T) {
	if storeErr(nil) != nil {
		t.Fatal("storeErr(nil) is not nil")
	}
	var oor *replica.OutOfRangeError
	err := storeErr(fmt.Errorf("read: %w", &logstore.OutOfRangeError{Off: 9, Lowest: 3, Next: 7}))
	if !errors.As(err, &oor) || *oor != (replica.OutOfRangeError{Off: 9, Lowest: 3, Next: 7}) || !errors.Is(err, replica.ErrOffsetOutOfRange) {
		t.Fatalf("out of range: got %#v (%v)", err, err)
	}
	for _, tc := range []struct {
		local, want error
	}{
		{logstore.ErrClosed, replica.ErrStoreClosed},
		{&logstore.CorruptError{Path: "00000000000000000000.store", Pos: 12, Reason: "bad crc"}, replica.ErrCorrupt},
		{&logstore.RecordTooLargeError{Size: 10, Max: 5}, replica.ErrRecordTooLarge},
	} {
		err := storeErr(tc.local)
		if !errors.Is(err, tc.want) || !errors.Is(err, tc.local) || err.Error() != tc.local.Error() {
			t.Errorf("storeErr(%v) = %v: want it to match %v and the original, with the original's text", tc.local, err, tc.want)
		}
	}
	other := errors.New("disk on fire")
	if storeErr(other) != other {
		t.Errorf("storeErr changed an error it has no name for")
	}
}
