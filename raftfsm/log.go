package raftfsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/logstore"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
	"github.com/proglogctl/proglogctl/raftfsm/transport"
)

// Log is a log replicated with Raft: records appended on the leader are
// committed by a quorum, then applied, exactly once and at the same offsets, to
// every server's local log, which serves reads.
//
// Appends go through one batching goroutine, which coalesces concurrent calls
// into Raft entries (group commit) and hands each entry's future to a second
// goroutine that answers the callers in order. Close stops both.
type Log struct {
	id     replica.Identity
	conf   Config
	logger *slog.Logger
	raft   *raft.Raft
	store  *logstore.Log
	stores raftStores // Raft's log and stable store
	fsm    *fsm
	// metered is the FSM Raft runs: fsm counting the bytes applied, which
	// compactLoop snapshots by.
	metered *meteredFSM
	// compacted (cap 1) is signalled after each snapshot compactLoop
	// takes, for tests to wait on.
	compacted chan struct{}

	reqs      chan *appendReq
	pending   chan pendingEntry
	slots     chan struct{} // one per entry in Raft not yet answered
	stop      chan struct{} // closed by Close after Raft has shut down
	fsmStop   chan struct{} // closed by Close first: the FSM stops retrying
	loopsDone chan struct{} // closed when the goroutines have returned
	wg        sync.WaitGroup

	observer *raft.Observer
	obsCh    chan raft.Observation
	leader   atomic.Pointer[leaderState]
	readMark atomic.Pointer[readMark] // the last barrier ReadIndex completed
	tuning   raftTuning               // run-time changes to Raft's settings (fastelect.go)

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

type leaderState struct {
	id, addr string
	changed  chan struct{} // closed when the leader changes
}

// New opens (or creates) the replica id in id.Dir, tuned by c, and starts
// Raft.
func New(id replica.Identity, c Config) (*Log, error) {
	if err := validateIdentity(id); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	l := &Log{
		id:        id,
		conf:      c,
		logger:    id.Logger.With("node", id.NodeID),
		reqs:      make(chan *appendReq, 1024),
		pending:   make(chan pendingEntry, c.MaxPendingEntries),
		slots:     make(chan struct{}, c.MaxPendingEntries),
		stop:      make(chan struct{}),
		fsmStop:   make(chan struct{}),
		loopsDone: make(chan struct{}),
		obsCh:     make(chan raft.Observation, 16),
		compacted: make(chan struct{}, 1),
	}
	l.leader.Store(&leaderState{changed: make(chan struct{})})
	ok := false
	defer func() {
		if !ok {
			l.closeStores()
		}
	}()

	var err error
	scratch := filepath.Join(id.Dir, "scratch")
	if err := os.RemoveAll(scratch); err != nil {
		return nil, fmt.Errorf("raftfsm: %w", err)
	}
	for _, d := range []string{"raft", "snapshots", "scratch"} {
		if err := os.MkdirAll(filepath.Join(id.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("raftfsm: %w", err)
		}
	}
	sc := c.Store
	sc.Logger = l.logger
	if id.OnSync != nil {
		if hook := sc.OnSync; hook != nil {
			sc.OnSync = func(d time.Duration, err error) { id.OnSync(d, err); hook(d, err) }
		} else {
			sc.OnSync = id.OnSync
		}
	}
	if l.store, err = logstore.Open(filepath.Join(id.Dir, "log"), sc); err != nil {
		return nil, err
	}
	applied, err := appliedIndex(l.store.Meta())
	if err != nil {
		return nil, err
	}
	l.fsm = &fsm{log: l.store, logger: l.logger, conf: c, scratch: scratch, applied: applied,
		prod: newProducers(c), stop: l.fsmStop, fault: c.applyFault}
	l.fsm.setStatus(nil)

	if l.stores, err = openRaftStores(filepath.Join(id.Dir, "raft"), c.RaftLogStore, c.RaftSegmentBytes, l.logger); err != nil {
		return nil, err
	}
	var logs raft.LogStore = l.stores
	if c.LogCacheBytes > 0 {
		logs = newLogCache(l.stores, c.LogCacheBytes, logCacheMaxEntries)
	}
	l.metered = &meteredFSM{fsm: l.fsm, threshold: c.SnapshotBytes, kick: make(chan struct{}, 1)}
	snaps, err := newSnapshotStore(filepath.Join(id.Dir, "snapshots"), c.SnapshotsRetained, l.logger)
	if err != nil {
		return nil, err
	}
	if err := l.fsm.catchUpWithSnapshot(snaps); err != nil {
		return nil, err
	}

	rc := c.raftConfig(id.NodeID)
	rc.Logger = transport.NewHCLogger(l.logger, "raft")
	if id.Bootstrap {
		has, err := raft.HasExistingState(logs, l.stores, snaps)
		if err != nil {
			return nil, fmt.Errorf("raftfsm: %w", err)
		}
		if !has {
			cfg := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: rc.LocalID, Address: id.Transport.LocalAddr(),
			}}}
			if err := raft.BootstrapCluster(rc, logs, l.stores, snaps, id.Transport, cfg); err != nil {
				return nil, fmt.Errorf("raftfsm: bootstrap: %w", err)
			}
		}
	}
	if l.raft, err = raft.NewRaft(rc, l.metered, logs, l.stores, snaps, id.Transport); err != nil {
		return nil, fmt.Errorf("raftfsm: start Raft: %w", err)
	}
	l.observer = raft.NewObserver(l.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	l.raft.RegisterObserver(l.observer)
	l.wg.Add(3)
	go l.batchLoop()
	go l.completeLoop()
	go l.observeLoop()
	if c.SnapshotBytes > 0 {
		l.wg.Add(1)
		go l.compactLoop()
	}
	if c.Store.RetainAge > 0 {
		l.wg.Add(1)
		go l.retainLoop()
	}
	l.noteLeader()
	l.startFastElection()
	ok = true
	return l, nil
}

// closeStores closes what New opened, for a failed New and for Close.
func (l *Log) closeStores() error {
	var errs []error
	if l.stores != nil {
		errs = append(errs, l.stores.Close())
	}
	if l.store != nil {
		errs = append(errs, l.store.Close())
	}
	if c, ok := l.id.Transport.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// appendReq is one Append call waiting for its records to commit.
type appendReq struct {
	recs [][]byte
	// producer and seq, when producer is set, make the request exactly
	// once: it travels in an entry of its own (see batchLoop).
	producer string
	seq      uint64
	// first, duplicate and err are written by completeLoop only, before
	// done is closed.
	first     uint64
	duplicate bool
	err       error
	done      chan struct{}
}

// pendingEntry is an entry handed to Raft, waiting for its result.
type pendingEntry struct {
	future raft.ApplyFuture
	// reqs are the requests with records in the entry; starts[i] is the
	// position of reqs[i]'s first record in it, or -1 when reqs[i] began in
	// an earlier entry; ends[i] says whether reqs[i]'s last record is in it.
	reqs   []*appendReq
	starts []int
	ends   []bool
}

// Append replicates recs as one batch and returns the offset of the first:
// the records are committed by a quorum and applied on this server when it
// returns. Concurrent calls are coalesced into shared Raft entries, and a
// batch that fits in one entry (MaxEntryBytes) is always carried by one, so it
// commits whole or not at all. A larger batch is split over consecutive
// entries, so its offsets are still consecutive; if it fails part way (the
// leader lost its leadership), the entries that committed stay in the log.
//
// On a follower it returns a *NotLeaderError. With no records it appends
// nothing and returns the local NextOffset. If ctx ends first the records may
// still be appended.
func (l *Log) Append(ctx context.Context, recs ...[]byte) (uint64, error) {
	if l.closed.Load() {
		return 0, replica.ErrClosed
	}
	if len(recs) == 0 {
		return l.store.NextOffset(), nil
	}
	if err := l.checkRecords(recs); err != nil {
		return 0, err
	}
	if l.raft.State() != raft.Leader {
		return 0, l.notLeader()
	}
	return l.enqueue(ctx, &appendReq{recs: recs, done: make(chan struct{})})
}

// enqueue hands req to batchLoop and waits for its answer.
func (l *Log) enqueue(ctx context.Context, req *appendReq) (uint64, error) {
	if err := l.submit(ctx, req); err != nil {
		return 0, err
	}
	return l.awaitAppend(ctx, req)
}

// submit hands req to batchLoop.
func (l *Log) submit(ctx context.Context, req *appendReq) error {
	select {
	case l.reqs <- req:
		return nil
	case <-l.stop:
		return replica.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// awaitAppend waits for the answer to a submitted req.
func (l *Log) awaitAppend(ctx context.Context, req *appendReq) (uint64, error) {
	select {
	case <-req.done:
		return req.first, req.err
	case <-l.loopsDone:
		// Every entry handed to Raft has been answered; a request still
		// queued never reached it.
		select {
		case <-req.done:
			return req.first, req.err
		default:
			return 0, replica.ErrClosed
		}
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (l *Log) notLeader() error {
	addr, id := l.raft.LeaderWithID()
	return &replica.NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// batchLoop owns the encoding of entries. It keeps at most MaxPendingEntries
// entries in Raft at once: while they commit, new requests queue, and when a
// slot frees every queued request is packed into the next entries (up to
// MaxEntryBytes each). So the busier the log, the larger the entries (group
// commit), while a lone caller's record still goes out at once.
//
// A request with a producer id goes into an entry of its own, which carries
// its producer id and sequence: the FSM decides per entry whether it is a
// duplicate. Such entries still share Raft's disk writes with the others
// (BatchApplyCh). Every entry is stamped with the leader's clock when it is
// built.
func (l *Log) batchLoop() {
	defer l.wg.Done()
	defer close(l.pending)
	b := &batcher{l: l, size: entrySize(nil)}
	for {
		req, ok := b.next()
		// Waiting for a slot is what lets later requests join this entry.
		if !ok || !b.acquire() || !b.add(req) || !b.addQueued() || !b.apply() {
			return
		}
	}
}

// batcher is batchLoop's state: the entry being packed and the slot held for
// it. Only batchLoop's goroutine uses it. Each method that may wait returns
// false when the log is stopping, and batchLoop then returns.
type batcher struct {
	l *Log
	// The entry being packed: reqs and starts as in pendingEntry, recs its
	// records and size their entrySize.
	reqs   []*appendReq
	starts []int
	recs   [][]byte
	size   int
	// splitting is the request being added while records of it remain, so
	// the entry does not end it.
	splitting *appendReq
	haveSlot  bool       // a slot in Raft is held for the entry
	producer  *appendReq // the request the entry is of, when it has a producer id
}

// next waits for the next request.
func (b *batcher) next() (*appendReq, bool) {
	select {
	case req := <-b.l.reqs:
		return req, true
	case <-b.l.stop:
		return nil, false
	}
}

// acquire waits for a slot in Raft for the entry.
func (b *batcher) acquire() bool {
	select {
	case b.l.slots <- struct{}{}:
		b.haveSlot = true
		return true
	case <-b.l.stop:
		return false
	}
}

// addQueued adds every request queued meanwhile, without waiting for more.
func (b *batcher) addQueued() bool {
	for {
		select {
		case req := <-b.l.reqs:
			if !b.add(req) {
				return false
			}
		default:
			return true
		}
	}
}

// add packs req's records into the entry, handing full entries to Raft on
// the way. A request that fits in one entry is never split: it starts a new
// entry when the current one has no room left for all of it, so it commits
// whole or not at all.
func (b *batcher) add(req *appendReq) bool {
	if req.producer != "" {
		return b.addProduced(req)
	}
	limit := b.l.conf.MaxEntryBytes
	if whole := entrySize(req.recs); len(b.recs) > 0 && whole <= limit && b.size+whole-entrySize(nil) > limit {
		if !b.apply() {
			return false
		}
	}
	b.reqs, b.starts = append(b.reqs, req), append(b.starts, len(b.recs))
	b.splitting = req
	defer func() { b.splitting = nil }()
	for _, r := range req.recs {
		n := uvarintLen(uint64(len(r))) + len(r)
		if len(b.recs) > 0 && b.size+n > limit {
			if !b.apply() {
				return false
			}
			b.reqs, b.starts = append(b.reqs, req), append(b.starts, -1)
		}
		b.recs, b.size = append(b.recs, r), b.size+n
	}
	return true
}

// addProduced gives a request with a producer id an entry of its own, which
// carries the producer id and sequence (AppendAs checked that it fits).
func (b *batcher) addProduced(req *appendReq) bool {
	if !b.apply() {
		return false
	}
	b.producer = req
	b.reqs, b.starts, b.recs = append(b.reqs, req), append(b.starts, 0), append(b.recs, req.recs...)
	return b.apply()
}

// apply hands the entry to Raft, and its future to completeLoop, and starts
// an empty one. An empty entry is not sent.
func (b *batcher) apply() bool {
	if len(b.recs) == 0 {
		return true
	}
	if !b.haveSlot && !b.acquire() {
		return false
	}
	b.haveSlot = false
	ends := make([]bool, len(b.reqs))
	for i, r := range b.reqs {
		ends[i] = r != b.splitting
	}
	e := entry{ts: time.Now().UnixNano(), recs: b.recs}
	if b.producer != nil {
		e.producer, e.seq = b.producer.producer, b.producer.seq
	}
	// Raft keeps the data until the entry is applied: a new slice each time.
	data := appendEntry(make([]byte, 0, entrySize(b.recs)+producerSize(e.producer)), e)
	p := pendingEntry{future: b.l.raft.Apply(data, b.l.conf.ApplyTimeout), reqs: b.reqs, starts: b.starts, ends: ends}
	b.reqs, b.starts, b.recs, b.size, b.producer = nil, nil, b.recs[:0], entrySize(nil), nil
	select {
	case b.l.pending <- p:
		return true
	case <-b.l.stop:
		return false
	}
}

// completeLoop answers requests as their entries commit, in order.
func (l *Log) completeLoop() {
	defer l.wg.Done()
	for p := range l.pending {
		err := p.future.Error()
		<-l.slots
		var res applyResult
		if err == nil {
			var ok bool
			if res, ok = p.future.Response().(applyResult); ok {
				err = res.err
			} else {
				err = fmt.Errorf("raftfsm: the FSM answered an entry with %T", p.future.Response())
			}
		}
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			err = l.notLeader() // never entered the log
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
			err = replica.ErrLeadershipLost
		}
		for i, r := range p.reqs {
			if err != nil && r.err == nil {
				r.err = err
			}
			if p.starts[i] >= 0 {
				r.first = res.first + uint64(p.starts[i])
			}
			r.duplicate = res.duplicate
			if p.ends[i] {
				close(r.done)
			}
		}
	}
}

// Read returns the record at off from the local log.
func (l *Log) Read(off uint64) ([]byte, error) {
	v, err := l.store.Read(off)
	return v, storeErr(err)
}

// ReadBatch returns records from off on from the local log; see
// logstore.Log.ReadBatch.
func (l *Log) ReadBatch(off uint64, maxBytes int) ([][]byte, error) {
	vs, err := l.store.ReadBatch(off, maxBytes)
	return vs, storeErr(err)
}

// ReadRecords is ReadBatch that also returns each record's offset and time;
// see logstore.Log.ReadRecords.
func (l *Log) ReadRecords(off uint64, maxBytes int) ([]replica.Record, error) {
	rs, err := l.store.ReadRecords(off, maxBytes)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]replica.Record, len(rs))
	for i, r := range rs {
		out[i] = replica.Record(r)
	}
	return out, nil
}

// OffsetForTime returns the offset of the first record retained on this
// server whose time is at or after ts (unix nanoseconds): LowestOffset when
// ts is at or before every record's time, NextOffset when no record is that
// recent. Records without time count as older than any time. See
// logstore.Log.OffsetForTime.
func (l *Log) OffsetForTime(ts int64) (uint64, error) {
	off, err := l.store.OffsetForTime(ts)
	return off, storeErr(err)
}

// Wait blocks until off has been applied on this server, ctx ends or the log closes.
func (l *Log) Wait(ctx context.Context, off uint64) error { return storeErr(l.store.Wait(ctx, off)) }

// LowestOffset returns the lowest offset retained on this server.
func (l *Log) LowestOffset() uint64 { return l.store.LowestOffset() }

// NextOffset returns the offset after the last record applied on this server.
func (l *Log) NextOffset() uint64 { return l.store.NextOffset() }

// Join adds a voter, or changes the address of a known one. It is idempotent
// and must be called on the leader.
func (l *Log) Join(id, addr string) error {
	if l.closed.Load() {
		return replica.ErrClosed
	}
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return l.mapErr(err)
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(id) && s.Address == raft.ServerAddress(addr) && s.Suffrage == raft.Voter {
			return nil
		}
		if s.ID == raft.ServerID(id) || s.Address == raft.ServerAddress(addr) {
			if err := l.raft.RemoveServer(s.ID, 0, 0).Error(); err != nil {
				return l.mapErr(err)
			}
		}
	}
	return l.mapErr(l.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0).Error())
}

// Leave removes a server from the cluster; removing an unknown one is not an
// error. It must be called on the leader.
func (l *Log) Leave(id string) error {
	if l.closed.Load() {
		return replica.ErrClosed
	}
	return l.mapErr(l.raft.RemoveServer(raft.ServerID(id), 0, 0).Error())
}

func (l *Log) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return l.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown):
		return replica.ErrClosed
	}
	return fmt.Errorf("raftfsm: %w", err)
}

// Servers returns the members of the Raft configuration.
func (l *Log) Servers() ([]replica.Server, error) {
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, l.mapErr(err)
	}
	_, leaderID := l.raft.LeaderWithID()
	var out []replica.Server
	for _, s := range f.Configuration().Servers {
		out = append(out, replica.Server{
			ID:       string(s.ID),
			Address:  string(s.Address),
			IsLeader: s.ID == leaderID,
			IsVoter:  s.Suffrage == raft.Voter,
		})
	}
	return out, nil
}

// CaughtUp reports whether this server has applied every entry it knows to be
// committed.
func (l *Log) CaughtUp() bool { return l.raft.AppliedIndex() >= l.raft.CommitIndex() }

// ApplyStatus reports why this server cannot apply committed entries to its
// local log (a full disk, say), or a nil err while it applies them; changed is
// closed when that changes. While err is set the replica retries, recovering
// the log the way a restart would, until the entries are applied or it closes.
func (l *Log) ApplyStatus() (changed <-chan struct{}, err error) {
	st := l.fsm.status.Load()
	return st.changed, st.err
}

// IsLeader reports whether this server is the leader.
func (l *Log) IsLeader() bool { return l.raft.State() == raft.Leader }

// State returns this server's Raft state: "Follower", "Candidate", "Leader"
// or "Shutdown".
func (l *Log) State() string { return l.raft.State().String() }

// Leader returns the leader's ID and address as this server knows them (empty
// when there is none), and a channel closed when that changes.
func (l *Log) Leader() (id, addr string, changed <-chan struct{}) {
	st := l.leader.Load()
	return st.id, st.addr, st.changed
}

// WaitForLeader blocks until this server knows a leader, and returns it.
func (l *Log) WaitForLeader(ctx context.Context) (id, addr string, err error) {
	for {
		id, addr, changed := l.Leader()
		if id != "" {
			return id, addr, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", "", fmt.Errorf("raftfsm: no leader yet: %w", ctx.Err())
		}
	}
}

// observeLoop turns Raft's leader observations into leader-change
// notifications.
func (l *Log) observeLoop() {
	defer l.wg.Done()
	for {
		select {
		case <-l.obsCh:
			l.noteLeader()
		case <-l.stop:
			return
		}
	}
}

// noteLeader publishes the leader Raft reports, if it changed.
func (l *Log) noteLeader() {
	addr, id := l.raft.LeaderWithID()
	old := l.leader.Load()
	if old.id == string(id) && old.addr == string(addr) {
		return
	}
	if l.leader.CompareAndSwap(old, &leaderState{id: string(id), addr: string(addr), changed: make(chan struct{})}) {
		close(old.changed)
	}
}

// Close stops the replica. A leader first hands leadership to another voter,
// so the cluster does not wait for an election timeout. Close is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.fsmStop) // an append that keeps failing must not hold up Raft's shutdown
		var errs []error
		if l.raft.State() == raft.Leader && l.voters() > 1 {
			done := make(chan error, 1)
			go func() { done <- l.raft.LeadershipTransfer().Error() }()
			select {
			case err := <-done:
				if err != nil {
					l.logger.Warn("leadership transfer before shutdown failed", "err", err)
				}
			case <-time.After(l.conf.ShutdownTransferTimeout):
				l.logger.Warn("leadership transfer before shutdown timed out")
			}
		}
		errs = append(errs, l.shutdownRaft())
		close(l.stop)
		l.raft.DeregisterObserver(l.observer)
		l.wg.Wait()
		close(l.loopsDone)
		errs = append(errs, l.closeStores())
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// shutdownRaft stops Raft, waiting at most ShutdownTimeout: a Raft goroutine
// that never returns must not keep the process from stopping.
func (l *Log) shutdownRaft() error {
	done := make(chan error, 1)
	go func() { done <- l.raft.Shutdown().Error() }()
	timer := time.NewTimer(l.conf.ShutdownTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		l.logger.Error("Raft did not shut down in time; closing the stores under it", "timeout", l.conf.ShutdownTimeout)
		return fmt.Errorf("%w after %v", replica.ErrShutdownTimeout, l.conf.ShutdownTimeout)
	}
}

func (l *Log) voters() int {
	servers, err := l.Servers()
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range servers {
		if s.IsVoter {
			n++
		}
	}
	return n
}
