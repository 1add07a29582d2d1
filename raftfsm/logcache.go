package raftfsm

import (
	"sync"

	"github.com/hashicorp/raft"
)

// logCache keeps the newest Raft entries in memory in front of a LogStore,
// bounded by the bytes of their data rather than by their number: an entry
// carries anything from one record to MaxEntryBytes, so raft.LogCache's
// count bound (512 entries) could pin a gigabyte. The newest entries are
// what Raft reads back: a follower applies the entries it has just stored,
// and a leader replicates the entries it has just appended.
//
// It holds a run of consecutive indexes, oldest first. Storing an entry that
// does not follow the newest cached one starts the run again; DeleteRange
// empties it (Raft deletes only to compact the head or to drop a conflicting
// tail). mu guards the run; the store is called outside it, so reads from the
// cache never wait for a write to the store. Raft calls StoreLogs and
// DeleteRange from one goroutine at a time.
type logCache struct {
	store    raft.LogStore
	maxBytes int
	maxLogs  int

	mu    sync.Mutex
	ring  []*raft.Log // len maxLogs; the run starts at ring[head]
	head  int
	n     int    // entries in the run
	first uint64 // index of ring[head] when n > 0
	bytes int    // data bytes of the run
}

var (
	_ raft.LogStore          = (*logCache)(nil)
	_ raft.MonotonicLogStore = (*logCache)(nil)
)

// logCacheMaxEntries bounds the entries a logCache holds, whatever their
// size: a few seconds of single-record entries at full speed.
const logCacheMaxEntries = 4096

// newLogCache caches at most maxLogs entries and maxBytes of entry data in
// front of store. An entry larger than maxBytes is never cached.
func newLogCache(store raft.LogStore, maxBytes, maxLogs int) *logCache {
	return &logCache{store: store, maxBytes: maxBytes, maxLogs: maxLogs, ring: make([]*raft.Log, maxLogs)}
}

// GetLog implements raft.LogStore.
func (c *logCache) GetLog(idx uint64, out *raft.Log) error {
	c.mu.Lock()
	if c.n > 0 && idx >= c.first && idx < c.first+uint64(c.n) {
		*out = *c.ring[(c.head+int(idx-c.first))%c.maxLogs]
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	return c.store.GetLog(idx, out)
}

// StoreLog implements raft.LogStore.
func (c *logCache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore. Entries are cached only once the store
// has them.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	err := c.store.StoreLogs(logs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.resetLocked()
		return err
	}
	for _, l := range logs {
		c.addLocked(l)
	}
	return nil
}

func (c *logCache) addLocked(l *raft.Log) {
	if len(l.Data) > c.maxBytes {
		c.resetLocked()
		return
	}
	if c.n > 0 && l.Index != c.first+uint64(c.n) {
		c.resetLocked()
	}
	for c.n > 0 && (c.n == c.maxLogs || c.bytes+len(l.Data) > c.maxBytes) {
		c.dropOldestLocked()
	}
	if c.n == 0 {
		c.first = l.Index
	}
	c.ring[(c.head+c.n)%c.maxLogs] = l
	c.n++
	c.bytes += len(l.Data)
}

func (c *logCache) dropOldestLocked() {
	c.bytes -= len(c.ring[c.head].Data)
	c.ring[c.head] = nil
	c.head = (c.head + 1) % c.maxLogs
	c.first++
	c.n--
}

func (c *logCache) resetLocked() {
	clear(c.ring)
	c.head, c.n, c.first, c.bytes = 0, 0, 0, 0
}

// DeleteRange implements raft.LogStore.
func (c *logCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	c.resetLocked()
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}

// FirstIndex implements raft.LogStore.
func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex implements raft.LogStore.
func (c *logCache) LastIndex() (uint64, error) { return c.store.LastIndex() }

// cached returns the entries and data bytes the cache holds.
func (c *logCache) cached() (n, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.bytes
}

// IsMonotonic implements raft.MonotonicLogStore as the store does: Raft then
// removes a monotonic store's whole log after installing a snapshot, since
// such a store (raft-wal) cannot hold a gap.
func (c *logCache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
