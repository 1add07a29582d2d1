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
		n := s.times
		if i == last {
			n = st.times
		}
		if !s.acquire() {
			goto retry // dropped by retention or replaced since st was loaded
		}
		rel, ok, err := s.firstTimedAtOrAfter(ts, n)
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
// whether there is one. Entries' times never decrease (a marker carries the
// latest time before it), so the first entry at or after ts is found by
// binary search; markers from there on are stepped over.
func (s *segment) firstTimedAtOrAfter(ts int64, n uint32) (uint32, bool, error) {
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
	const chunk = 64
	for ; i < int(n); i += chunk {
		es, err := s.readTimeEntries(i, min(i+chunk, int(n)))
		if err != nil {
			return 0, false, err
		}
		for _, e := range es {
			if !e.marker {
				return e.rel, true, nil
			}
		}
	}
	return 0, false, nil
}
