package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// workloadConfig bounds a chaos workload.
type workloadConfig struct {
	producers, consumers int
	maxOps               int           // per worker
	duration             time.Duration // the workload stops after it
	opTimeout            time.Duration // one request's deadline; past it the outcome is unknown
	backoff              time.Duration // pause after a failed request, so a dead node is not hammered
}

func defaultWorkload(d time.Duration) workloadConfig {
	return workloadConfig{producers: 3, consumers: 3, maxOps: max(20000, int(d.Seconds())*500), duration: d, opTimeout: 2 * time.Second, backoff: 50 * time.Millisecond}
}

// workload runs producers and consumers against every node over the log.v1
// API and records each operation. Producers send Produce with values
// "p<id>-<seq>" round-robin to the nodes (so followers forward writes). All
// but the last are exactly-once producers: each request carries producer id
// "p<id>" and sequence seq+1, and a request whose outcome is unknown is sent
// again, to the next node, until it is answered or the workload ends (the
// operation spans every attempt). The last producer sends plain records and
// never retries, so unknown outcomes stay in the history too;
// consumers read, round-robin over the nodes, mostly the newest
// acknowledged offset (the one a lagging follower is most likely not to
// have), else an older one, else one just past it.
type workload struct {
	conf  workloadConfig
	conns []*grpc.ClientConn
	start time.Time // monotonic origin of Call and Return

	cancel context.CancelFunc
	wg     sync.WaitGroup
	next   atomic.Int64 // one past the highest acknowledged offset

	mu   sync.Mutex // guards hist
	hist [][]chaosOp
}

func startWorkload(conf workloadConfig, conns []*grpc.ClientConn, seed uint64) *workload {
	ctx, cancel := context.WithTimeout(context.Background(), conf.duration)
	w := &workload{conf: conf, conns: conns, start: time.Now(), cancel: cancel}
	w.hist = make([][]chaosOp, conf.producers+conf.consumers)
	for id := range conf.producers + conf.consumers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(id)))
			var ops []chaosOp
			for seq := 0; seq < conf.maxOps && ctx.Err() == nil; seq++ {
				var op chaosOp
				if id < conf.producers {
					op = w.produce(ctx, id, seq)
				} else {
					op = w.consume(ctx, id, seq, rng)
				}
				if ctx.Err() != nil && op.Outcome == outUnknown && op.Kind == opConsume {
					break // cut short by the end of the workload
				}
				ops = append(ops, op)
				if op.Outcome == outUnknown {
					select {
					case <-ctx.Done():
					case <-time.After(conf.backoff):
					}
				}
			}
			w.mu.Lock()
			w.hist[id] = ops
			w.mu.Unlock()
		}()
	}
	return w
}

func (w *workload) now() time.Duration { return time.Since(w.start) }

func (w *workload) produce(ctx context.Context, id, seq int) chaosOp {
	node := (id + seq) % len(w.conns)
	op := chaosOp{Client: id, Node: node, Kind: opProduce, Value: fmt.Sprintf("p%d-%d", id, seq)}
	req := &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(op.Value)}}
	exactlyOnce := id < w.conf.producers-1
	if exactlyOnce {
		req.ProducerId, req.Sequence = fmt.Sprintf("p%d", id), uint64(seq)+1
	}
	op.Call = w.now()
	for attempt := 0; ; attempt++ {
		// Each attempt gets its own deadline, not the workload's: a
		// produce in flight when the workload ends is not abandoned half
		// way.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.conf.opTimeout)
		resp, err := logv1.NewLogClient(w.conns[(node+attempt)%len(w.conns)]).Produce(rctx, req)
		cancel()
		op.Return = w.now()
		if err == nil {
			op.Outcome, op.Off, op.Retries, op.Duplicate = outOK, resp.Offset, attempt, resp.Duplicate
			break
		}
		op.Outcome, op.Err, op.Retries = outUnknown, errText(err), attempt
		if !exactlyOnce || ctx.Err() != nil {
			return op
		}
		select {
		case <-ctx.Done():
			return op
		case <-time.After(w.conf.backoff):
		}
	}
	for {
		n := w.next.Load()
		if int64(op.Off)+1 <= n || w.next.CompareAndSwap(n, int64(op.Off)+1) {
			break
		}
	}
	return op
}

func (w *workload) consume(ctx context.Context, id, seq int, rng *rand.Rand) chaosOp {
	node := (id + seq) % len(w.conns)
	next := w.next.Load()
	var off int64
	switch r := rng.IntN(10); {
	case r < 5:
		off = next - 1
	case r < 8:
		off = rng.Int64N(next + 1)
	default:
		off = next + rng.Int64N(3)
	}
	op := chaosOp{Client: id, Node: node, Kind: opConsume, Off: uint64(max(off, 0))}
	rctx, cancel := context.WithTimeout(ctx, w.conf.opTimeout)
	defer cancel()
	op.Call = w.now()
	resp, err := logv1.NewLogClient(w.conns[node]).Consume(rctx, &logv1.ConsumeRequest{Offset: op.Off})
	op.Return = w.now()
	switch {
	case err == nil:
		op.Outcome, op.Value = outOK, string(resp.Record.Value)
	case status.Code(err) == codes.OutOfRange && strings.Contains(status.Convert(err).Message(), "below the lowest retained offset"):
		op.Outcome = outDropped
	case status.Code(err) == codes.OutOfRange:
		op.Outcome = outOutOfRange
	default:
		op.Outcome, op.Err = outUnknown, errText(err)
	}
	return op
}

// errText is an operation's error as its gRPC code and message, digits
// masked so that messages of one kind count together.
func errText(err error) string {
	st := status.Convert(err)
	msg := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '#'
		}
		return r
	}, st.Message())
	return st.Code().String() + ": " + msg
}

// stop ends the workload (each worker finishes the request it is in) and
// returns the history, sorted by call time.
func (w *workload) stop() []chaosOp {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	hist := slices.Concat(w.hist...)
	slices.SortFunc(hist, func(a, b chaosOp) int { return int(min(max(a.Call-b.Call, -1), 1)) })
	return hist
}

// historyCounts summarises a history.
type historyCounts struct {
	ops, produces, acked, unknownProduces, reads, readOK, readOOR, readDropped, readFailed int
	// retried: exactly-once produces sent more than once and answered;
	// duplicates: of those, answered as appended by an earlier attempt.
	retried, duplicates int
}

func countHistory(hist []chaosOp) historyCounts {
	var c historyCounts
	c.ops = len(hist)
	for _, op := range hist {
		switch {
		case op.Kind == opProduce:
			c.produces++
			if op.Outcome == outOK {
				c.acked++
				if op.Retries > 0 {
					c.retried++
				}
				if op.Duplicate {
					c.duplicates++
				}
			} else {
				c.unknownProduces++
			}
		default:
			c.reads++
			switch op.Outcome {
			case outOK:
				c.readOK++
			case outOutOfRange:
				c.readOOR++
			case outDropped:
				c.readDropped++
			default:
				c.readFailed++
			}
		}
	}
	return c
}
