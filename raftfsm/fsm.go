package raftfsm

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/logstore"
)

// fsm applies committed entries to the local log.
//
// It is persistent, so it must be idempotent: the Raft index of the last entry
// it applied is stored as the log's metadata, atomically with the records, and
// entries at or below it are skipped. Raft replays its log on every start; a
// record is never appended twice.
//
// Raft calls ApplyBatch, Apply, Snapshot and Restore from one goroutine, which
// owns applied; Persist and Release of a snapshot run concurrently with it.
type fsm struct {
	log       *logstore.Log
	logger    *slog.Logger
	scratch   string // directory for checkpoints and restores
	applied   uint64 // Raft index of the last entry applied
	maxAppend int    // bytes of records per logstore append
	recs      [][]byte
}

var _ raft.BatchingFSM = (*fsm)(nil)

// applyResult is the response of an applied entry: the offset of its first
// record, or why it could not be applied.
type applyResult struct {
	first uint64
	err   error
}

// appliedIndex decodes the Raft index stored as the log's metadata.
func appliedIndex(meta []byte) (uint64, error) {
	switch len(meta) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(meta), nil
	}
	return 0, fmt.Errorf("raftfsm: log metadata is %d bytes, want 8", len(meta))
}

func indexMeta(index uint64) []byte { return binary.BigEndian.AppendUint64(nil, index) }

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: the records of every entry go to the
// log in as few appends as possible, each carrying the index of its last entry.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	resp := make([]interface{}, len(logs))
	f.recs = f.recs[:0]
	bytes := 0
	var spans []int // resp index → position of its first record in f.recs
	pending := []int{}
	var lastIndex uint64

	flush := func() {
		if lastIndex <= f.applied {
			return
		}
		first, err := f.log.AppendWithMeta(indexMeta(lastIndex), f.recs...)
		for k, i := range pending {
			if err != nil {
				resp[i] = applyResult{err: err}
				continue
			}
			resp[i] = applyResult{first: first + uint64(spans[k])}
		}
		if err != nil {
			f.logger.Error("cannot apply committed entries to the log", "last_index", lastIndex, "err", err)
			return
		}
		f.applied = lastIndex
		f.recs, spans, pending, bytes = f.recs[:0], spans[:0], pending[:0], 0
	}

	for i, l := range logs {
		if l.Index <= f.applied {
			resp[i] = applyResult{err: errReplayed}
			continue
		}
		if l.Type != raft.LogCommand {
			lastIndex = l.Index
			continue
		}
		if bytes+len(l.Data) > f.maxAppend && len(f.recs) > 0 {
			flush()
		}
		n := len(f.recs)
		recs, err := decodeEntry(f.recs, l.Data)
		if err != nil {
			// Every replica decodes the same bytes the same way, so all skip it.
			f.logger.Error("skipping a malformed entry", "index", l.Index, "err", err)
			resp[i] = applyResult{err: err}
			f.recs = f.recs[:n]
			lastIndex = l.Index
			continue
		}
		f.recs = recs
		spans, pending = append(spans, n), append(pending, i)
		bytes += len(l.Data)
		lastIndex = l.Index
	}
	flush()
	clear(f.recs[:cap(f.recs)]) // do not pin entry data
	return resp
}

// errReplayed is the response to an entry applied before this start.
var errReplayed = fmt.Errorf("raftfsm: entry already applied")
