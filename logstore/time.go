package logstore

import (
	"fmt"
	"sort"
)

// OffsetForTime returns the offset of the first retained record whose time
// (see AppendTimed) is at or after ts, in unix nanoseconds: LowestOffset when
// ts is at or before every record's, NextOffset when no record is that
// recent. Records appended without time count as older than any time, so
// they are skipped, except that a ts of 0 or below returns LowestOffset,
// where every record qualifies. Like a read, it takes no lock; it binary
// searches the segments and then one segment's time index.
func (l *Log) OffsetForTime(ts int64) (uint64, error) {
retry:
	st := l.cur.Load()
	switch {
	case st.closed:
		return 0, ErrClosed
	case ts <= 0:
		return st.lowest(), nil
	case ts > st.lastTime:
		return st.next, nil
	}
	last := len(st.segs) - 1
	// Segments' latest times carry forward, so they never decrease.
	from := sort.Search(last, func(i int) bool { return st.segs[i].lastTime >= ts })
	for i := from; i <= last; i++ {
		s := st.segs[i]
		n, limit := s.times, s.size
		if i == last {
			n, limit = st.times, st.active
		}
		if !s.acquire() {
			goto retry // dropped by retention or replaced since st was loaded
		}
		rel, ok, err := s.firstTimedAtOrAfter(ts, n, limit)
		s.release()
		if err != nil {
			return 0, err
		}
		if ok {
			return s.base + uint64(rel), nil
		}
	}
	return st.next, nil
}

// firstTimedAtOrAfter returns the relative offset of the first batch with a
// time at or after ts among the segment's first n time index entries, and
// whether there is one; limit is the segment's store bytes that hold them.
// Entries' times never decrease (a marker carries the latest time before it),
// so the first entry at or after ts is found by binary search; markers from
// there on are stepped over. The entry found and the one before it are
// checked against the store: where they do not match it, the answer is an
// ErrCorrupt naming the time index, not a wrong offset (damage elsewhere in
// the file is Check's to find).
func (s *segment) firstTimedAtOrAfter(ts int64, n uint32, limit int64) (uint32, bool, error) {
	var b [timeEntrySize]byte
	var rerr error
	i := sort.Search(int(n), func(i int) bool {
		if rerr != nil {
			return true
		}
		if _, err := s.timeIndex.ReadAt(b[:], headerSize+int64(i)*timeEntrySize); err != nil {
			rerr = err
			return true
		}
		return decodeTimeEntry(b[:]).time >= ts
	})
	if rerr != nil {
		return 0, false, fmt.Errorf("logstore: read %s: %w", s.timeIndexPath, rerr)
	}
	if i > 0 {
		es, err := s.readTimeEntries(i-1, i)
		if err != nil {
			return 0, false, err
		}
		if err := s.verifyTimeEntry(i-1, es[0], limit, 0); err != nil {
			return 0, false, err
		}
	}
	const chunk = 64
	for ; i < int(n); i += chunk {
		es, err := s.readTimeEntries(i, min(i+chunk, int(n)))
		if err != nil {
			return 0, false, err
		}
		for j, e := range es {
			if !e.marker {
				return e.rel, true, s.verifyTimeEntry(i+j, e, limit, ts)
			}
		}
	}
	return 0, false, nil
}

// verifyTimeEntry checks that the i-th time index entry e, unless a marker,
// names a record frame with its time, within limit store bytes. With ts not
// 0, e is an answer for ts: its record must also start a batch, after a
// record without time or with a time below ts.
func (s *segment) verifyTimeEntry(i int, e timeEntry, limit, ts int64) error {
	if e.marker {
		return nil
	}
	bad := func(why string) error {
		return &CorruptError{Path: s.timeIndexPath, Pos: headerSize + int64(i)*timeEntrySize,
			Reason: fmt.Sprintf("entry %d is %s, but %s", i, e, why)}
	}
	from := e.rel
	if ts != 0 && e.rel > 0 {
		from--
	}
	b := make([]byte, (e.rel-from+1)*indexEntrySize)
	if _, err := s.index.ReadAt(b, headerSize+int64(from)*indexEntrySize); err != nil {
		return bad(fmt.Sprintf("the index does not hold its record (%v)", err))
	}
	pos := int64(decodeIndexEntry(b[len(b)-indexEntrySize:]).pos)
	f, _, err := readFrameAt(s.store, pos, limit)
	if err != nil || f.off != s.base+uint64(e.rel) || f.time != e.time || e.time < ts {
		return bad(fmt.Sprintf("the record's frame at %s byte %d holds offset %d, time %d (%v)", s.storePath, pos, f.off, f.time, err))
	}
	if from < e.rel {
		p, _, err := readFrameAt(s.store, int64(decodeIndexEntry(b).pos), pos)
		if err != nil || p.flags&flagBatchEnd == 0 || p.time >= ts {
			return bad(fmt.Sprintf("the record before it does not end a batch with an earlier time (time %d, %v)", p.time, err))
		}
	}
	return nil
}
