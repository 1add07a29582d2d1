package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// service implements log.v1 on a Node. Authorization has been done by the
// interceptors before any method runs.
type service struct {
	logv1.UnimplementedLogServer
	n *Node
}

var _ logv1.LogServer = (*service)(nil)

// maxForwardBytes bounds the record bytes ProduceStream coalesces into one
// append, so a forwarded batch stays well inside gRPC's default 4 MiB message
// limit.
const maxForwardBytes = 1 << 20

// durability is what an acknowledged write survives here: raftfsm's Raft
// log stores (raft-boltdb and raft-wal, neither with fsync turned off) fsync
// an entry before the server counts it stored, Raft acknowledges an entry
// once a quorum of voters stored it, and the local log is fsynced before
// Raft compacts its copy (raftfsm's snapshots).
const durability = logv1.Durability_DURABILITY_QUORUM_FSYNC

// batch is one produce request's records with its producer id and sequence
// (an empty producer: no deduplication).
type batch struct {
	producer string
	seq      uint64
	recs     [][]byte
}

// appended is the outcome of an append.
type appended struct {
	first     uint64
	duplicate bool // an earlier append of the same producer and sequence
	forwarded bool // appended by the leader; maybe not applied here yet
}

// append appends b as one batch on the leader: here, or forwarded to the
// leader when this node follows (then forwarded is set, and the records may
// not be applied here yet: see awaitApplied). A write that arrived forwarded
// is not forwarded again; the caller gets Unavailable and retries.
func (n *Node) append(ctx context.Context, b batch) (appended, error) {
	first, dup, err := n.log.AppendAs(ctx, b.producer, b.seq, b.recs...)
	var nl *replica.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderAddr == "" || nl.LeaderAddr == n.advertise || callerFrom(ctx).peer {
		return appended{first: first, duplicate: dup}, err
	}
	return n.forwardAppend(ctx, nl.LeaderAddr, b)
}

// forwardAppend appends b on the leader at addr with a ProduceBatch.
func (n *Node) forwardAppend(ctx context.Context, addr string, b batch) (appended, error) {
	client, err := n.forwardClient(addr)
	if err != nil {
		return appended{}, err
	}
	req := &logv1.ProduceBatchRequest{Records: make([]*logv1.Record, len(b.recs)), ProducerId: b.producer, Sequence: b.seq}
	for i, r := range b.recs {
		req.Records[i] = &logv1.Record{Value: r}
	}
	res, err := client.ProduceBatch(ctx, req)
	if status.Code(err) == codes.Canceled && ctx.Err() == nil {
		// The connection was replaced under the call: the leader changed.
		return appended{}, replica.ErrLeadershipLost
	}
	if err != nil {
		return appended{}, err
	}
	if int(res.Count) != len(b.recs) {
		return appended{}, fmt.Errorf("node: leader %s appended %d records of %d", addr, res.Count, len(b.recs))
	}
	return appended{first: res.FirstOffset, duplicate: res.Duplicate, forwarded: true}, nil
}

// awaitApplied waits until this node has applied the offsets below end, which
// a forwarded append got: a client that reads them from this node next finds
// them here without asking the leader. The records are committed whatever
// happens, so a wait cut short (by ctx or Close) is not an error; a read then
// waits for them itself.
func (n *Node) awaitApplied(ctx context.Context, end uint64) {
	if end == 0 || end <= n.log.NextOffset() {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.stopCtx, cancel)()
	if err := n.log.Wait(ctx, end-1); err != nil {
		n.logger.Debug("forwarded records not applied here before answering", "end", end, "err", err)
	}
}

// readIndex returns an offset at or past the leader's commit point at some
// moment during the call: every record acknowledged before the call has an
// offset below it (replica.Log.ReadIndex). The leader answers itself; a
// follower asks the leader with a GetOffsets over the forwarding connection
// (a call that arrived from a node is not passed on again). While no leader
// is known (an election) it waits for one. It is the one step of a read that
// needs the leader, and is bounded by readIndexTimeout: with no leader
// reachable in time it returns an error wrapping errNoLeader, which the
// client gets as Unavailable before its own deadline.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	bound := n.readIndexTimeout(ctx)
	rctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var (
		ri  uint64
		err error
		nl  *replica.NotLeaderError
	)
	for {
		// The leader as observed before asking: a change after it closes
		// changed, so none is missed between the answer and the wait.
		known, _, changed := n.log.Leader()
		ri, err = n.log.ReadIndex(rctx)
		if !errors.As(err, &nl) || nl.LeaderAddr != "" || known != "" {
			break
		}
		select {
		case <-changed:
			continue
		case <-rctx.Done():
		}
		break
	}
	if errors.As(err, &nl) && nl.LeaderAddr != "" && nl.LeaderAddr != n.advertise && !callerFrom(ctx).peer {
		ri, err = n.leaderReadIndex(rctx, nl.LeaderAddr)
	}
	switch {
	case err == nil:
		return ri, nil
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case errors.As(err, &nl):
		if nl.LeaderAddr == "" {
			return 0, fmt.Errorf("%w: no leader is known", errNoLeader)
		}
		return 0, fmt.Errorf("%w: the leader is %s at %s", errNoLeader, nl.LeaderID, nl.LeaderAddr)
	case rctx.Err() != nil:
		return 0, fmt.Errorf("%w: none answered within %v", errNoLeader, bound)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return 0, fmt.Errorf("%w: %v", errNoLeader, status.Convert(err).Message())
	}
	return 0, err
}

// readIndexTimeout bounds obtaining a read index: half of what is left of
// ctx's deadline, so that a client hears Unavailable (and tries another
// server) rather than its own deadline, and at most RaftTimeout.
func (n *Node) readIndexTimeout(ctx context.Context) time.Duration {
	d := n.conf.RaftTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return d
}

// leaderReadIndex asks the leader at addr for its read index.
func (n *Node) leaderReadIndex(ctx context.Context, addr string) (uint64, error) {
	client, err := n.forwardClient(addr)
	if err != nil {
		return 0, err
	}
	res, err := client.GetOffsets(ctx, &logv1.GetOffsetsRequest{})
	if err != nil {
		return 0, err
	}
	return res.NextOffset, nil
}

// readPastEnd serves a read of off at or past this node's next offset. It
// obtains a read index: below it, off was written (and acknowledged, or seen
// by another reader) before or during the call, so it waits, bounded by ctx,
// until this node has applied off and returns the record; at or past it, off
// is not written yet and the answer is an OutOfRangeError that names the read
// index as the end.
func (n *Node) readPastEnd(ctx context.Context, off uint64) (replica.Record, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.stopCtx, cancel)()
	ri, err := n.readIndex(ctx)
	if err != nil {
		return replica.Record{}, n.endErr(err)
	}
	if off >= ri {
		return replica.Record{}, &replica.OutOfRangeError{Off: off, Lowest: n.log.LowestOffset(), Next: ri}
	}
	if err := n.log.Wait(ctx, off); err != nil {
		return replica.Record{}, n.endErr(err)
	}
	return n.readRecord(off)
}

// readRecord reads the record at off with its time.
func (n *Node) readRecord(off uint64) (replica.Record, error) {
	recs, err := n.log.ReadRecords(off, 1) // one record: it never fits in 1 byte
	if err != nil {
		return replica.Record{}, err
	}
	return recs[0], nil
}

// forwardClient returns a client of the leader at addr over the one cached
// connection, replacing the connection when the leader's address changed.
// The connection is authenticated with PeerTLS (the node certificate).
func (n *Node) forwardClient(addr string) (logv1.LogClient, error) {
	n.fwdMu.Lock()
	defer n.fwdMu.Unlock()
	if n.fwdDone {
		return nil, errShuttingDown
	}
	if n.fwdConn != nil && n.fwdAddr == addr {
		return logv1.NewLogClient(n.fwdConn), nil
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(peerCreds{n}))
	if err != nil {
		return nil, fmt.Errorf("node: connect to leader %s: %w", addr, err)
	}
	if n.fwdConn != nil {
		// Calls still on the old connection fail with Unavailable.
		n.fwdConn.Close()
	}
	n.fwdConn, n.fwdAddr = conn, addr
	n.logger.Debug("forwarding writes", "leader", addr)
	return logv1.NewLogClient(conn), nil
}

func (s *service) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	if req.GetRecord() == nil {
		return nil, s.n.status(fmt.Errorf("%w: no record", errInvalid))
	}
	a, err := s.n.append(ctx, batch{producer: req.ProducerId, seq: req.Sequence, recs: [][]byte{req.Record.Value}})
	if err != nil {
		return nil, s.n.status(err)
	}
	if a.forwarded {
		s.n.awaitApplied(ctx, a.first+1)
	}
	return &logv1.ProduceResponse{Offset: a.first, Durability: durability, Duplicate: a.duplicate}, nil
}

func (s *service) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	b, err := batchOf(req)
	if err != nil {
		return nil, s.n.status(err)
	}
	// A ProduceBatch is atomic: one larger than a Raft entry is refused.
	a, err := s.n.append(ctx, b)
	if err != nil {
		return nil, s.n.status(err)
	}
	if a.forwarded {
		s.n.awaitApplied(ctx, a.first+uint64(len(b.recs)))
	}
	return batchResponse(a, len(b.recs)), nil
}

// batchOf is the batch a ProduceBatchRequest carries.
func batchOf(req *logv1.ProduceBatchRequest) (batch, error) {
	if len(req.GetRecords()) == 0 {
		return batch{}, fmt.Errorf("%w: a batch needs at least one record", errInvalid)
	}
	recs := make([][]byte, len(req.Records))
	for i, r := range req.Records {
		if r == nil {
			return batch{}, fmt.Errorf("%w: record %d is missing", errInvalid, i)
		}
		recs[i] = r.Value
	}
	return batch{producer: req.ProducerId, seq: req.Sequence, recs: recs}, nil
}

// batchResponse answers a batch of count records appended as a.
func batchResponse(a appended, count int) *logv1.ProduceBatchResponse {
	return &logv1.ProduceBatchResponse{FirstOffset: a.first, Count: uint32(count), Durability: durability, Duplicate: a.duplicate}
}

// streamItem is one request of a produce stream read, or the error that
// ended reading. A whole item is appended as a batch of its own, never
// joined to others: a ProduceBatchStream request, or a ProduceStream
// request with a producer id.
type streamItem struct {
	batch
	whole bool
	err   error
}

// streamResult answers count consecutive requests of a ProduceStream.
type streamResult struct {
	appended
	count int
	err   error
}

// ProduceStream reads requests on one goroutine, appends on a second and
// answers on the handler's. Reading never waits for a commit: while one
// append is in Raft, the requests read meanwhile queue (up to
// ProduceStreamWindow) and go out together as the next append. Up to
// streamInFlight appends per stream are in Raft at once, submitted in order,
// so a stream's records get offsets in request order; concurrent streams and
// calls still share Raft entries (group commit in the replica). A request with a
// producer id is a batch of its own, deduplicated by its producer id and
// sequence as a ProduceBatch is.
func (s *service) ProduceStream(stream logv1.Log_ProduceStreamServer) error {
	n := s.n
	recv := func() streamItem {
		req, err := stream.Recv()
		switch {
		case err != nil:
		case req.GetRecord() == nil:
			err = fmt.Errorf("%w: no record", errInvalid)
		default:
			err = n.log.CheckRecord(req.Record.Value)
		}
		if err != nil {
			return streamItem{err: err}
		}
		return streamItem{batch: batch{producer: req.ProducerId, seq: req.Sequence, recs: [][]byte{req.Record.Value}}, whole: req.ProducerId != ""}
	}
	send := func(r streamResult) error {
		for i := range r.count {
			if err := stream.Send(&logv1.ProduceResponse{Offset: r.first + uint64(i), Durability: durability, Duplicate: r.duplicate}); err != nil {
				return err
			}
		}
		return nil
	}
	return n.produceStream(stream.Context(), n.conf.ProduceStreamWindow, recv, send)
}

// ProduceBatchStream is ProduceStream for batches: each request is a batch
// of its own, appended atomically as ProduceBatch appends it, and answered
// with one response. A request is read ahead only while streamInFlight
// others are: each may be a whole Raft entry.
func (s *service) ProduceBatchStream(stream logv1.Log_ProduceBatchStreamServer) error {
	recv := func() streamItem {
		req, err := stream.Recv()
		if err != nil {
			return streamItem{err: err}
		}
		b, err := batchOf(req)
		return streamItem{batch: b, whole: true, err: err}
	}
	send := func(r streamResult) error { return stream.Send(batchResponse(r.appended, r.count)) }
	return s.n.produceStream(stream.Context(), streamInFlight, recv, send)
}

// produceStream runs a produce stream: recv reads requests on one
// goroutine (at most window ahead of the appends), appendStream appends on a
// second, and send answers each result on the handler's, in order.
func (n *Node) produceStream(ctx context.Context, window int, recv func() streamItem, send func(streamResult) error) error {
	in := make(chan streamItem, window)
	out := make(chan streamResult, 1)
	n.goTracked(func() { n.readStream(ctx, recv, in) })
	n.goTracked(func() { n.appendStream(ctx, in, out) })
	return n.answerStream(ctx, out, send)
}

// readStream reads a stream's requests with recv into in until the client
// ends the stream, a request is refused (its error is the last item) or the
// stream's context ends. It closes in.
func (n *Node) readStream(ctx context.Context, recv func() streamItem, in chan<- streamItem) {
	defer close(in)
	for {
		item := recv()
		if item.err == io.EOF {
			return
		}
		select {
		case in <- item:
		case <-ctx.Done():
			return
		}
		if item.err != nil {
			return
		}
	}
}

// streamInFlight is how many batches of one ProduceStream are in Raft at
// once: while they commit, the next ones are built and submitted, in order.
const streamInFlight = 4

// appendStream appends what readStream read in batches: each batch is the
// next request and every request already read behind it that fits
// (nextBatch). On the leader up to streamInFlight batches are submitted to
// the replica at once (replica.Log.SubmitAs), which gives them offsets in the
// order submitted, and their outcomes are sent to out in that order; on a
// follower each batch is forwarded to the leader, one at a time, once the
// batches in flight have their outcomes. It sends a result per batch, or
// the error that ends the stream, to out, and closes out.
func (n *Node) appendStream(ctx context.Context, in <-chan streamItem, out chan<- streamResult) {
	defer close(out)
	q := &streamFlight{ctx: ctx, out: out}
	var (
		pending *streamItem // read while filling the previous batch
		ended   bool        // in was closed
	)
	for {
		var item streamItem
		switch {
		case len(q.batches) == streamInFlight || (ended && pending == nil):
			if len(q.batches) == 0 || !q.finish() {
				return
			}
			continue
		case pending != nil:
			item, pending = *pending, nil
		default:
			var ok bool
			select {
			case item, ok = <-in:
				if !ok {
					ended = true
					continue
				}
			case <-q.headDone():
				if !q.finish() {
					return
				}
				continue
			case <-n.stopping:
				if q.finishDone() {
					q.emit(streamResult{err: errShuttingDown})
				}
				return
			case <-ctx.Done():
				return
			}
		}
		if item.err != nil {
			if q.drain() {
				q.emit(streamResult{err: item.err})
			}
			return
		}
		var b batch
		b, pending = n.nextBatch(item, in)
		p, err := n.log.SubmitAs(ctx, b.producer, b.seq, b.recs...)
		if err == nil {
			q.batches = append(q.batches, inFlight{p, len(b.recs)})
			continue
		}
		// Refused before it was submitted: the batches before it are
		// answered first, then this one's error, or a follower forwards it.
		if !q.drain() {
			return
		}
		var a appended
		var nl *replica.NotLeaderError
		if errors.As(err, &nl) {
			a, err = n.append(ctx, b)
		}
		if !q.emit(streamResult{appended: a, count: len(b.recs), err: err}) {
			return
		}
	}
}

// streamFlight is the batches of one ProduceStream in Raft, oldest first,
// and where their outcomes go.
type streamFlight struct {
	ctx     context.Context
	out     chan<- streamResult
	batches []inFlight
}

// inFlight is a batch submitted to the replica and its count of records.
type inFlight struct {
	p     replica.Pending
	count int
}

// emit sends r to out; false when r is an error or the stream ended.
func (q *streamFlight) emit(r streamResult) bool {
	select {
	case q.out <- r:
		return r.err == nil
	case <-q.ctx.Done():
		return false
	}
}

// headDone is closed when the oldest batch has its outcome; nil (never
// ready) when none is in flight.
func (q *streamFlight) headDone() <-chan struct{} {
	if len(q.batches) == 0 {
		return nil
	}
	return q.batches[0].p.Done()
}

// finish waits for the oldest batch's outcome and emits it. A batch
// refused as not appended while later ones are in flight is reported as of
// unknown outcome: a later one may commit, so resending would duplicate it
// and put this one after it.
func (q *streamFlight) finish() bool {
	f := q.batches[0]
	q.batches = q.batches[1:]
	first, dup, err := f.p.Wait(q.ctx)
	var nl *replica.NotLeaderError
	if len(q.batches) > 0 && errors.As(err, &nl) {
		err = fmt.Errorf("%w (a later batch of the stream was in flight)", replica.ErrLeadershipLost)
	}
	return q.emit(streamResult{appended: appended{first: first, duplicate: dup}, count: f.count, err: err})
}

// finishDone emits the outcomes of the oldest batches that have them
// already, without waiting.
func (q *streamFlight) finishDone() bool {
	for len(q.batches) > 0 {
		select {
		case <-q.headDone():
			if !q.finish() {
				return false
			}
		default:
			return true
		}
	}
	return true
}

// drain finishes every batch in flight, in order.
func (q *streamFlight) drain() bool {
	for len(q.batches) > 0 {
		if !q.finish() {
			return false
		}
	}
	return true
}

// nextBatch starts a batch with first and adds the requests already waiting
// in in while they fit one Raft entry (so the batch is never split) and one
// forwarded message, without waiting for more. A whole request is a batch
// of its own. The request that did not fit, or an error read, is returned as
// pending for the next batch.
func (n *Node) nextBatch(first streamItem, in <-chan streamItem) (batch, *streamItem) {
	if first.whole {
		return first.batch, nil
	}
	b := n.log.NewBatch(maxForwardBytes)
	b.Add(first.recs[0])
	for b.Len() < n.conf.ProduceStreamWindow {
		select {
		case next, ok := <-in:
			if !ok {
				return batch{recs: b.Records()}, nil
			}
			if next.err != nil || next.whole || !b.Add(next.recs[0]) {
				return batch{recs: b.Records()}, &next
			}
		default:
			return batch{recs: b.Records()}, nil
		}
	}
	return batch{recs: b.Records()}, nil
}

// answerStream answers each result with send, in order, and ends the
// stream with the first error.
func (n *Node) answerStream(ctx context.Context, out <-chan streamResult, send func(streamResult) error) error {
	for r := range out {
		if r.err != nil {
			return n.status(r.err)
		}
		if r.forwarded {
			// Waiting here, not in the appender, keeps the next append
			// going meanwhile.
			n.awaitApplied(ctx, r.first+uint64(r.count))
		}
		if err := send(r); err != nil {
			return err
		}
	}
	return n.status(ctx.Err())
}

// Consume serves an offset this node holds at once; one at or past its end
// needs a read index first (readPastEnd).
func (s *service) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	r, err := s.n.readRecord(req.Offset)
	var oor *replica.OutOfRangeError
	if errors.As(err, &oor) && req.Offset >= oor.Next {
		r, err = s.n.readPastEnd(ctx, req.Offset)
	}
	if err != nil {
		return nil, s.n.status(err)
	}
	return &logv1.ConsumeResponse{Record: &logv1.Record{Value: r.Value, Offset: r.Offset, Timestamp: r.Time}}, nil
}

// follow sends the records from off on in batches of at most maxBytes (one
// record at least) until end (exclusive; 0 for none). At the end of this
// node's log it waits for the next commit when atEnd is nil; otherwise it asks
// atEnd(off) and returns unless that says records from off on are coming. It
// ends with errShuttingDown when the node closes.
func (n *Node) follow(ctx context.Context, off, end uint64, maxBytes int, atEnd func(ctx context.Context, off uint64) (bool, error), send func(recs []replica.Record) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.stopCtx, cancel)()
	for end == 0 || off < end {
		recs, err := n.log.ReadRecords(off, maxBytes)
		var oor *replica.OutOfRangeError
		switch {
		case errors.As(err, &oor) && off >= oor.Next:
			if atEnd != nil {
				more, err := atEnd(ctx, off)
				if err != nil {
					return n.endErr(err)
				}
				if !more {
					return nil
				}
			}
			if err := n.log.Wait(ctx, off); err != nil {
				return n.endErr(err)
			}
			continue
		case err != nil:
			return n.endErr(err)
		}
		if end != 0 && uint64(len(recs)) > end-off {
			recs = recs[:end-off]
		}
		if err := send(recs); err != nil {
			return err
		}
		off += uint64(len(recs))
	}
	return nil
}

// endErr reports a wait cut short by Close as the node shutting down.
func (n *Node) endErr(err error) error {
	select {
	case <-n.stopping:
		if errors.Is(err, context.Canceled) || errors.Is(err, replica.ErrClosed) || errors.Is(err, replica.ErrStoreClosed) {
			return errShuttingDown
		}
	default:
	}
	return err
}

func (s *service) ConsumeStream(req *logv1.ConsumeRequest, stream logv1.Log_ConsumeStreamServer) error {
	err := s.n.follow(stream.Context(), req.Offset, 0, s.n.conf.ConsumeBatchBytes, nil, func(recs []replica.Record) error {
		for _, r := range recs {
			if err := stream.Send(&logv1.ConsumeResponse{Record: &logv1.Record{Value: r.Value, Offset: r.Offset, Timestamp: r.Time}}); err != nil {
				return err
			}
		}
		return nil
	})
	return s.n.status(err)
}

func (s *service) ConsumeBatchStream(req *logv1.ConsumeBatchRequest, stream logv1.Log_ConsumeBatchStreamServer) error {
	n := s.n
	if req.EndOffset != 0 && req.EndOffset <= req.Offset {
		return nil
	}
	// Without follow the stream ends at the end of the log as a read index
	// gives it, obtained once, when the stream first reaches the end of
	// this node's log (or at the start, for an offset past it): a follower
	// that trails the leader sends what was written before the call too.
	var atEnd func(ctx context.Context, off uint64) (bool, error)
	if !req.Follow {
		var ri uint64
		known := false
		readIndex := func(ctx context.Context) error {
			if known {
				return nil
			}
			var err error
			ri, err = n.readIndex(ctx)
			known = err == nil
			return err
		}
		if next := n.log.NextOffset(); req.Offset > next {
			if err := readIndex(stream.Context()); err != nil {
				return n.status(err)
			}
			if req.Offset > ri {
				return n.status(&replica.OutOfRangeError{Off: req.Offset, Lowest: n.log.LowestOffset(), Next: ri})
			}
		}
		atEnd = func(ctx context.Context, off uint64) (bool, error) {
			if err := readIndex(ctx); err != nil {
				return false, err
			}
			return off < ri, nil
		}
	}
	budget := n.conf.ConsumeBatchBytes
	if req.MaxBytes != 0 && int(req.MaxBytes) < budget {
		budget = int(req.MaxBytes)
	}
	err := n.follow(stream.Context(), req.Offset, req.EndOffset, budget, atEnd, func(recs []replica.Record) error {
		// A ConsumeBatchResponse, encoded by serverCodec.
		return stream.SendMsg(&recordBatch{recs: recs})
	})
	return n.status(err)
}

func (s *service) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	n := s.n
	servers, err := n.log.Servers()
	if err != nil {
		return nil, n.status(err)
	}
	res := &logv1.GetServersResponse{
		Servers: make([]*logv1.Server, 0, len(servers)),
		Self: &logv1.Server{Id: n.conf.NodeID, RpcAddr: n.Addr(), IsLeader: n.log.IsLeader(), State: n.log.State(),
			NextOffset: n.log.NextOffset(), LowestOffset: n.log.LowestOffset(), Durability: durability,
			RssBytes: n.resources.rss(), DiskBytes: n.resources.disk()},
	}
	for _, sv := range servers {
		out := &logv1.Server{Id: sv.ID, RpcAddr: sv.Address, IsLeader: sv.IsLeader, IsVoter: sv.IsVoter}
		switch {
		case sv.ID == n.conf.NodeID:
			out.State, out.NextOffset, out.LowestOffset, out.Durability = res.Self.State, res.Self.NextOffset, res.Self.LowestOffset, durability
			out.RssBytes, out.DiskBytes = res.Self.RssBytes, res.Self.DiskBytes
			res.Self.IsVoter = sv.IsVoter
		case sv.IsLeader:
			out.State = "Leader"
		}
		res.Servers = append(res.Servers, out)
	}
	return res, nil
}

// GetOffsets answers with a read index as next_offset: the end of the log as
// the leader confirmed it during the call, which a follower may not have
// applied yet (its reads below it wait). The leader's answer to a follower's
// GetOffsets is what the follower's own reads past its end rely on.
func (s *service) GetOffsets(ctx context.Context, req *logv1.GetOffsetsRequest) (*logv1.GetOffsetsResponse, error) {
	n := s.n
	ri, err := n.readIndex(ctx)
	if err != nil {
		return nil, n.status(n.endErr(err))
	}
	return &logv1.GetOffsetsResponse{LowestOffset: n.log.LowestOffset(), NextOffset: max(ri, n.log.NextOffset())}, nil
}

// GetOffsetForTime answers from this node's log once it holds every record
// written before the call (a read index, waited for as a read past the end
// is), so no record acknowledged before the call is missed: the first one
// with a time at or after the request's, or the end of the log.
func (s *service) GetOffsetForTime(ctx context.Context, req *logv1.GetOffsetForTimeRequest) (*logv1.GetOffsetForTimeResponse, error) {
	n := s.n
	off, err := n.offsetForTime(ctx, req.Timestamp)
	if err != nil {
		return nil, n.status(err)
	}
	return &logv1.GetOffsetForTimeResponse{Offset: off}, nil
}

func (n *Node) offsetForTime(ctx context.Context, ts int64) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.stopCtx, cancel)()
	ri, err := n.readIndex(ctx)
	if err != nil {
		return 0, n.endErr(err)
	}
	if ri > 0 {
		if err := n.log.Wait(ctx, ri-1); err != nil {
			return 0, n.endErr(err)
		}
	}
	return n.log.OffsetForTime(ts)
}
