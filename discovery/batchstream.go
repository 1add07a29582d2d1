package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// Batch is one batch of ProduceBatches: the producer's sequence it is sent
// as, and its records.
type Batch struct {
	Seq     uint64
	Records [][]byte
}

// BatchError is ProduceBatches' error for the batch of sequence Seq: it and
// the batches after it were not confirmed. Err says why. Later is how many
// batches after it had been sent on the stream too: they may be in the log
// (at most once) even when this one was refused.
type BatchError struct {
	Seq   uint64
	Err   error
	Later int
}

func (e *BatchError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *BatchError) Unwrap() error { return e.Err }

// errStalled ends a stream whose oldest batch was not answered in time.
var errStalled = errors.New("discovery: no answer on the produce stream in time")

// ProduceBatches appends the batches next returns, in the order returned,
// each atomically and exactly once as producer's sequence (see
// ProduceBatchAs), with up to window of them committing at once on a
// ProduceBatchStream to the leader. done is called with each batch's
// outcome, in order, as the cluster answers. next returns ok false when
// there are no more batches, and must return when its ctx ends; next and
// done each run on one goroutine at a time. An error from next ends the
// call once the batches before it are answered; one from done ends it at
// once.
//
// A batch's answer may wait answerTimeout. When the stream breaks, its
// oldest batch waits that long, or another leader answers for itself
// meanwhile, the batches sent and not answered are sent again one by one
// with ProduceBatchAs (so each learns its outcome, a duplicate where it had
// been appended), each within answerTimeout, and then a new stream carries
// on. An error ProduceBatchAs returns for one of them ends the call as a
// *BatchError naming it.
func (c *Client) ProduceBatches(ctx context.Context, producer string, window int, answerTimeout time.Duration,
	next func(ctx context.Context) (Batch, bool, error), done func(Batch, Produced) error) error {
	var (
		over    bool // next said there is no more, or failed
		nextErr error
	)
	once := func(ctx context.Context) (Batch, bool) {
		if over {
			return Batch{}, false
		}
		b, ok, err := next(ctx)
		if !ok || err != nil {
			over, nextErr = ctx.Err() == nil, err // an ended ctx is not the input's end
			return Batch{}, false
		}
		return b, true
	}
	one := func(b Batch) error {
		actx, cancel := context.WithTimeout(ctx, answerTimeout)
		res, err := c.ProduceBatchAs(actx, producer, b.Seq, b.Records)
		cancel()
		if err != nil {
			return &BatchError{Seq: b.Seq, Err: err}
		}
		return done(b, res)
	}
	streams := true
	for {
		if !streams { // a server without ProduceBatchStream: one batch at a time
			b, ok := once(ctx)
			if !ok {
				return errors.Join(nextErr, ctx.Err())
			}
			if err := one(b); err != nil {
				return err
			}
			continue
		}
		unanswered, serr, err := c.produceOnStream(ctx, producer, window, answerTimeout, once, done)
		switch {
		case err != nil:
			return err
		case serr == nil && len(unanswered) == 0 && over:
			return nextErr // next had no more, and every batch was answered
		case serr == nil && len(unanswered) == 0 && ctx.Err() != nil:
			return ctx.Err() // ended while next waited
		case status.Code(serr) == codes.Unimplemented:
			streams = false
		}
		if len(unanswered) == 0 {
			// The stream failed (or could not open) with nothing in
			// flight: the next batch goes alone, and waits for the
			// cluster, or fails, as a single write does.
			b, ok := once(ctx)
			if !ok {
				return errors.Join(nextErr, ctx.Err())
			}
			unanswered = []Batch{b}
		}
		for i, b := range unanswered {
			if err := one(b); err != nil {
				var be *BatchError
				if errors.As(err, &be) {
					be.Later = len(unanswered) - 1 - i
				}
				return err
			}
		}
	}
}

// produceOnStream runs one ProduceBatchStream: it sends batches from next
// while fewer than window are unanswered, and hands each answer to done. It
// returns with serr nil when the stream ended cleanly with every batch
// answered; else serr is the stream's error (or why it could not be opened)
// and unanswered the batches sent and not answered, in order, for
// ProduceBatches to send again. err is done's.
func (c *Client) produceOnStream(ctx context.Context, producer string, window int, answerTimeout time.Duration,
	next func(context.Context) (Batch, bool), done func(Batch, Produced) error) (unanswered []Batch, serr, err error) {
	var picked atomic.Pointer[string]
	sctx, cancel := context.WithCancelCause(noticingPick(ctx, &picked))
	stream, err := c.log.ProduceBatchStream(sctx, waitReady)
	if err != nil {
		cancel(nil)
		return nil, err, nil
	}
	var (
		mu       sync.Mutex
		inFlight []Batch   // sent, not answered, oldest first
		since    time.Time // when the oldest of inFlight was sent, or the last answer came
		room     = make(chan struct{}, window)
		sendDone = make(chan struct{})
	)
	for range window {
		room <- struct{}{}
	}
	go func() {
		defer close(sendDone)
		for {
			select {
			case <-room:
			case <-sctx.Done():
				return
			}
			b, ok := next(sctx)
			if !ok {
				_ = stream.CloseSend()
				return
			}
			mu.Lock()
			if len(inFlight) == 0 {
				since = time.Now()
			}
			inFlight = append(inFlight, b)
			mu.Unlock()
			if err := stream.Send(batchRequest(producer, b)); err != nil {
				return // Recv reports the stream's error
			}
		}
	}()
	stopWatch := c.watchStream(sctx, cancel, &picked, answerTimeout, func() (bool, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return len(inFlight) > 0, since
	})
	defer func() {
		stopWatch()
		cancel(nil)
		<-sendDone
	}()
	for {
		res, rerr := stream.Recv()
		if rerr != nil {
			// What was sent is known once the sender has stopped.
			cancel(nil)
			<-sendDone
			mu.Lock()
			defer mu.Unlock()
			if rerr == io.EOF && len(inFlight) == 0 {
				return nil, nil, nil
			}
			if rerr == io.EOF { // answers missing: the server ended it early
				rerr = errors.New("discovery: the produce stream ended with batches not answered")
			}
			return slices.Clone(inFlight), leaderMoved(sctx, rerr), nil
		}
		mu.Lock()
		if len(inFlight) == 0 {
			mu.Unlock()
			return nil, nil, errors.New("discovery: the produce stream answered a batch that was not sent")
		}
		b := inFlight[0]
		inFlight = inFlight[1:]
		since = time.Now()
		mu.Unlock()
		if int(res.Count) != len(b.Records) {
			return nil, nil, fmt.Errorf("discovery: the produce stream answered sequence %d with %d records; %d were sent", b.Seq, res.Count, len(b.Records))
		}
		room <- struct{}{}
		if err := done(b, Produced{First: res.FirstOffset, Duplicate: res.Duplicate, Durability: res.Durability, Attempts: 1}); err != nil {
			return nil, nil, err
		}
	}
}

// batchRequest is the request of b: its records' messages in one slice.
func batchRequest(producer string, b Batch) *logv1.ProduceBatchRequest {
	req := &logv1.ProduceBatchRequest{Records: make([]*logv1.Record, len(b.Records)), ProducerId: producer, Sequence: b.Seq}
	recs := make([]logv1.Record, len(b.Records))
	for i, v := range b.Records {
		recs[i].Value = v
		req.Records[i] = &recs[i]
	}
	return req
}

// watchStream watches a produce stream while waiting reports batches
// unanswered: once the oldest has waited stallAfter it asks the cluster for
// its servers every stallCheck, and cancels the stream when a leader other
// than the server the stream went to answers for itself (errLeaderMoved),
// or when the oldest has waited answerTimeout (errStalled). It returns the
// func that stops it.
func (c *Client) watchStream(ctx context.Context, cancel context.CancelCauseFunc, picked *atomic.Pointer[string], answerTimeout time.Duration, waiting func() (bool, time.Time)) func() {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(stallCheck)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			busy, since := waiting()
			if !busy || time.Since(since) < stallAfter {
				continue
			}
			if time.Since(since) > answerTimeout {
				cancel(errStalled)
				return
			}
			c.rb.resolveNow()
			if c.leaderMovedFrom(picked) {
				cancel(errLeaderMoved)
				return
			}
		}
	}()
	return func() { close(done) }
}
