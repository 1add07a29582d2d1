package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// Bench modes: which log.v1 RPC carries the records.
const (
	benchUnary  = "unary"  // one Produce per record
	benchBatch  = "batch"  // one ProduceBatch per --batch records
	benchStream = "stream" // one ProduceStream per worker, --batch records in flight on it
)

// The RPCs --consume reads back with (--consume-rpc).
const (
	consumeBatch  = "batch"  // ConsumeBatchStream through the client, which reads from a follower
	consumeStream = "stream" // ConsumeStream, one message a record, from one follower
)

// benchMaxDuration bounds --duration: a load loop always ends.
const benchMaxDuration = time.Hour

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "produce (and read back) load against a cluster and report throughput and latency",
		Description: `bench runs --concurrency workers that produce records of --record-size bytes until
--count records are produced or --duration passes, whichever comes first; with
--consume it then reads back everything produced: with ConsumeBatchStream through
the client, which reads from a follower, or with --consume-rpc stream with
ConsumeStream, one message a record, from one follower (the leader when there
is none). It prints
records/s, MB/s (10^6 bytes of record values) and the latency of each call (unary,
batch) or of each record from send to acknowledgement (stream).

--keep-going (unary and batch) tries a call that failed again, 10 ms later, until
it succeeds or the run ends, instead of ending the run: its latency runs from the
first try, so the max latency is the longest a client waited for an
acknowledgement (across a leader's crash, say), and the failed tries are counted.
A call whose outcome was unknown may then append its records twice. Every run
reports the longest time in which no record was acknowledged (max gap).

--local N runs the load against a throwaway in-process cluster of N nodes on free
loopback ports (certificates and ACL generated in a temporary directory, removed
afterwards), so one command reproduces a figure; the nodes share this process, so
its RSS, reported with --json, includes the client.

--floor runs the same load against the floor instead: an in-memory log.v1
server (no Raft, no disk, no ACL) in this process, served by gRPC with the TLS
setup of a node (certificates made as for --local). Its figures are what gRPC
and TLS cost on this machine. --compare-floor runs the load against the
cluster (--local N or --addr) and then against the floor, and prints the
floor's figures and the ratio of the cluster's to them (records/s: cluster
over floor; latency: cluster over floor).

--scenarios standard runs the standard scenarios instead of one load (unary
produce on 1 and 3 nodes, ProduceStream with 1024 in flight, ProduceBatch,
ConsumeBatchStream, each on a fresh --local cluster and then on a fresh floor),
--runs times, and prints a markdown table of the medians (workload |
proglogctl | floor | ratio) with the machine it ran on; --markdown FILE writes
it to FILE too. Every run is bounded in count and time.`,
		Flags: append(clientFlags(),
			&cli.IntFlag{Name: "record-size", Usage: "bytes per record", Value: 256, EnvVars: []string{"PROGLOG_BENCH_RECORD_SIZE"}},
			&cli.IntFlag{Name: "count", Usage: "stop after this many records (0: only --duration bounds the run)", Value: 0, EnvVars: []string{"PROGLOG_BENCH_COUNT"}},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (at most 1h)", Value: 10 * time.Second, EnvVars: []string{"PROGLOG_BENCH_DURATION"}},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Usage: "workers producing at once (each with its own calls or stream)", Value: 1, EnvVars: []string{"PROGLOG_BENCH_CONCURRENCY"}},
			&cli.IntFlag{Name: "batch", Usage: "records per ProduceBatch (--mode batch), or records in flight per stream (--mode stream)", Value: 100, EnvVars: []string{"PROGLOG_BENCH_BATCH"}},
			&cli.StringFlag{Name: "mode", Usage: "`unary` (Produce), batch (ProduceBatch) or stream (ProduceStream)", Value: benchUnary, EnvVars: []string{"PROGLOG_BENCH_MODE"}},
			&cli.BoolFlag{Name: "keep-going", Usage: "unary and batch: try a failed call again until it succeeds or the run ends, rather than end the run (its latency runs from the first try)", EnvVars: []string{"PROGLOG_BENCH_KEEP_GOING"}},
			&cli.BoolFlag{Name: "consume", Usage: "read back what was produced and report that too", EnvVars: []string{"PROGLOG_BENCH_CONSUME"}},
			&cli.StringFlag{Name: "consume-rpc", Value: consumeBatch, Usage: "with --consume: read back with ConsumeBatchStream (batch) or with ConsumeStream from one follower (stream)", EnvVars: []string{"PROGLOG_BENCH_CONSUME_RPC"}},
			&cli.IntFlag{Name: "local", Usage: "run against an in-process cluster of `N` nodes in a temporary directory (0: the cluster of --addr)", EnvVars: []string{"PROGLOG_BENCH_LOCAL"}},
			&cli.BoolFlag{Name: "floor", Usage: "run against an in-memory log.v1 server with a node's TLS (what gRPC and TLS cost here) instead of a cluster", EnvVars: []string{"PROGLOG_BENCH_FLOOR"}},
			&cli.StringFlag{Name: "serve-floor", Usage: "serve the floor on this `host:port` with the config directory's node certificate until interrupted (it holds at most 1 GiB of records), so that a bench in another process (--addr proglog://host:port) measures what gRPC and TLS cost between processes", EnvVars: []string{"PROGLOG_BENCH_SERVE_FLOOR"}},
			&cli.BoolFlag{Name: "compare-floor", Usage: "run against the cluster (--local or --addr), then against the floor, and print the ratios", EnvVars: []string{"PROGLOG_BENCH_COMPARE_FLOOR"}},
			&cli.StringFlag{Name: "scenarios", Usage: "run a set of scenarios (`standard`) with --local clusters and the floor, and print a markdown table", EnvVars: []string{"PROGLOG_BENCH_SCENARIOS"}},
			&cli.IntFlag{Name: "runs", Usage: "with --scenarios: runs of each scenario, the table shows medians", Value: 3, EnvVars: []string{"PROGLOG_BENCH_RUNS"}},
			&cli.StringFlag{Name: "markdown", Usage: "with --scenarios: write the table to `FILE` as well", EnvVars: []string{"PROGLOG_BENCH_MARKDOWN"}},
			&cli.StringFlag{Name: "raft-log-store", Usage: "with --local: Raft's log store of the nodes, segments, wal or bolt", Value: raftfsm.DefaultConfig().RaftLogStore, EnvVars: []string{"PROGLOG_RAFT_LOG_STORE"}},
			&cli.StringFlag{Name: "pprof-addr", Usage: "serve net/http/pprof on this loopback `host:port` while running (with --local, the nodes' profiles)", EnvVars: []string{"PROGLOG_BENCH_PPROF_ADDR"}},
			&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object", EnvVars: []string{"PROGLOG_JSON"}},
		),
		Action: runBench,
	}
}

// benchOptions are bench's flags.
type benchOptions struct {
	recordSize, count, concurrency, batch int
	duration                              time.Duration
	mode, consumeRPC                      string
	consume, keepGoing                    bool
}

func (o benchOptions) validate() error {
	switch {
	case o.recordSize < 1:
		return fmt.Errorf("bench: --record-size %d must be positive", o.recordSize)
	case o.count < 0:
		return fmt.Errorf("bench: --count %d must not be negative", o.count)
	case o.duration <= 0 || o.duration > benchMaxDuration:
		return fmt.Errorf("bench: --duration %v: want more than 0 and at most %v", o.duration, benchMaxDuration)
	case o.concurrency < 1 || o.concurrency > 4096:
		return fmt.Errorf("bench: --concurrency %d: want 1 to 4096", o.concurrency)
	case o.batch < 1:
		return fmt.Errorf("bench: --batch %d must be positive", o.batch)
	case o.mode != benchUnary && o.mode != benchBatch && o.mode != benchStream:
		return fmt.Errorf("bench: --mode %q: want unary, batch or stream", o.mode)
	case o.consume && o.consumeRPC != consumeBatch && o.consumeRPC != consumeStream:
		return fmt.Errorf("bench: --consume-rpc %q: want batch or stream", o.consumeRPC)
	case o.keepGoing && o.mode == benchStream:
		return errors.New("bench: --keep-going goes with --mode unary or batch: a stream that breaks has records in flight whose outcome is unknown")
	case o.mode == benchBatch && o.batch*(o.recordSize+8) > maxBatchBytes:
		return fmt.Errorf("bench: --batch %d of --record-size %d is over the %d bytes a batch may carry", o.batch, o.recordSize, maxBatchBytes)
	}
	return nil
}

// BenchResult is what bench prints with --json.
type BenchResult struct {
	Mode        string `json:"mode"`
	RecordSize  int    `json:"record_size"`
	Concurrency int    `json:"concurrency"`
	Batch       int    `json:"batch"`
	LocalNodes  int    `json:"local_nodes,omitempty"`
	// Floor says the run was against the floor (--floor).
	Floor   bool        `json:"floor,omitempty"`
	Produce BenchPhase  `json:"produce"`
	Consume *BenchPhase `json:"consume,omitempty"`
	// ConsumedWith names the RPC of the consume phase, and the server it
	// read from when that was one server.
	ConsumedWith string       `json:"consumed_with,omitempty"`
	Process      *BenchMemory `json:"process,omitempty"`
	// Servers is what each server reported of its RSS and disk use while
	// the load ran (GetServers once a second); none for the floor.
	Servers []BenchServer `json:"servers,omitempty"`
	// FloorRun is the same load against the floor, and RatioToFloor the
	// ratios of this run's figures to its (--compare-floor).
	FloorRun     *BenchResult `json:"floor_run,omitempty"`
	RatioToFloor *BenchRatio  `json:"ratio_to_floor,omitempty"`
}

// BenchRatio compares a run with the same load against the floor: each
// field is the run's figure divided by the floor's (0 when either is
// missing). Throughput below 1 and latency above 1 are what the cluster
// costs over gRPC and TLS.
type BenchRatio struct {
	ProduceRecordsPerSec float64 `json:"produce_records_per_sec"`
	ProduceP50           float64 `json:"produce_p50"`
	ProduceP99           float64 `json:"produce_p99"`
	ConsumeRecordsPerSec float64 `json:"consume_records_per_sec,omitempty"`
}

// ratioTo compares r with fl, the same load against the floor.
func ratioTo(r, fl BenchResult) *BenchRatio {
	div := func(a, b float64) float64 {
		if a <= 0 || b <= 0 {
			return 0
		}
		return a / b
	}
	q := &BenchRatio{ProduceRecordsPerSec: div(r.Produce.RecordsPerSec, fl.Produce.RecordsPerSec)}
	if r.Produce.Latency != nil && fl.Produce.Latency != nil {
		q.ProduceP50 = div(r.Produce.Latency.P50, fl.Produce.Latency.P50)
		q.ProduceP99 = div(r.Produce.Latency.P99, fl.Produce.Latency.P99)
	}
	if r.Consume != nil && fl.Consume != nil {
		q.ConsumeRecordsPerSec = div(r.Consume.RecordsPerSec, fl.Consume.RecordsPerSec)
	}
	return q
}

// BenchPhase is the outcome of producing or consuming.
type BenchPhase struct {
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	// Latency is per call (unary, batch) or per record (stream), in
	// milliseconds; absent for consume.
	Latency *BenchLatency `json:"latency_ms,omitempty"`
	// MaxGapMs is the longest time in which no record was acknowledged
	// (from the start, between acknowledgements, and to the end), and
	// FailedCalls the tries that failed and were made again
	// (--keep-going); produce only.
	MaxGapMs    float64 `json:"max_gap_ms,omitempty"`
	FailedCalls int64   `json:"failed_calls,omitempty"`
}

// BenchLatency holds latency percentiles in milliseconds.
type BenchLatency struct {
	Calls int     `json:"calls"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// BenchMemory is this process's memory after the run (Linux only), which with
// --local is the nodes' and the client's together.
type BenchMemory struct {
	RSSBytes     int64 `json:"rss_bytes"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

func runBench(c *cli.Context) (err error) {
	if err := noArgs(c); err != nil {
		return err
	}
	o := benchOptions{
		recordSize: c.Int("record-size"), count: c.Int("count"), duration: c.Duration("duration"),
		concurrency: c.Int("concurrency"), batch: c.Int("batch"), mode: c.String("mode"), consume: c.Bool("consume"),
		consumeRPC: c.String("consume-rpc"), keepGoing: c.Bool("keep-going"),
	}
	if err := o.validate(); err != nil {
		return UsageError{Err: err}
	}
	local, floor, compare := c.Int("local"), c.Bool("floor"), c.Bool("compare-floor")
	switch {
	case local < 0 || local > 9:
		return UsageError{Err: fmt.Errorf("bench: --local %d: want 0 to 9", local)}
	case floor && compare:
		return UsageError{Err: errors.New("bench: --floor runs against the floor alone, --compare-floor against a cluster and the floor: give one")}
	case floor && local > 0:
		return UsageError{Err: errors.New("bench: --floor runs against the floor, not a cluster; for both, use --compare-floor with --local")}
	}
	if addr := c.String("serve-floor"); addr != "" {
		if floor || compare || local > 0 || c.IsSet("scenarios") {
			return UsageError{Err: errors.New("bench: --serve-floor only serves the floor; run the load from another bench")}
		}
		return serveFloor(c, addr)
	}
	if sc := c.String("scenarios"); sc != "" {
		return runScenarios(c, sc)
	}
	for _, f := range []string{"runs", "markdown"} {
		if c.IsSet(f) {
			return UsageError{Err: fmt.Errorf("bench: --%s goes with --scenarios", f)}
		}
	}
	if a := c.String("pprof-addr"); a != "" {
		stop, err := servePprof(a)
		if err != nil {
			return err
		}
		defer stop()
	}
	var res BenchResult
	switch {
	case floor:
		res, err = benchFloor(c, o)
	case local > 0:
		res, err = benchLocal(c, o, local, c.String("raft-log-store"), c.App.ErrWriter)
	default:
		// The cluster and credentials as every client command finds them:
		// flags, then the profile, then the config directory's.
		var cs clientSettings
		if cs, err = settings(c); err != nil {
			return err
		}
		res, err = benchAt(c, o, cs.Addr, certs.TLSFiles{CertFile: cs.CertFile, KeyFile: cs.KeyFile, CAFile: cs.CAFile})
	}
	if err != nil {
		return err
	}
	if compare {
		fl, err := benchFloor(c, o)
		if err != nil {
			return fmt.Errorf("bench: floor: %w", err)
		}
		res.FloorRun, res.RatioToFloor = &fl, ratioTo(res, fl)
	}
	return printBench(c.App.Writer, res, c.Bool("json"))
}

// benchLocal runs the load against a local cluster of n nodes with Raft log
// store store, closed before it returns, and reports this process's memory.
// logs receives the nodes' errors.
func benchLocal(c *cli.Context, o benchOptions, n int, store string, logs io.Writer) (res BenchResult, err error) {
	lc, err := startLocal(c.Context, n, store, logs, 30*time.Second)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := lc.Close(); err == nil {
			err = cerr
		}
	}()
	if res, err = benchAt(c, o, lc.target, lc.client); err != nil {
		return res, err
	}
	res.LocalNodes, res.Process = n, readMemory()
	return res, nil
}

// benchFloor runs the load against a floor, stopped before it returns.
func benchFloor(c *cli.Context, o benchOptions) (res BenchResult, err error) {
	lc, err := startFloor()
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := lc.Close(); err == nil {
			err = cerr
		}
	}()
	res, err = benchAt(c, o, lc.target, lc.client)
	res.Floor = true
	return res, err
}

// benchAt runs the load against the servers of target with the client
// credentials in files: one unmeasured record, the produce load, and with
// o.consume the read back.
func benchAt(c *cli.Context, o benchOptions, target string, files certs.TLSFiles) (res BenchResult, err error) {
	res = BenchResult{Mode: o.mode, RecordSize: o.recordSize, Concurrency: o.concurrency, Batch: o.batch}
	if o.mode == benchUnary {
		res.Batch = 1
	}
	tlsConf, err := certs.ClientTLSConfig(files)
	if err != nil {
		return res, fmt.Errorf("client credentials: %w", err)
	}
	cl, err := discovery.Dial(target, tlsConf)
	if err != nil {
		return res, fmt.Errorf("cannot dial %s: %w", target, err)
	}
	defer cl.Close()
	// One record first, unmeasured, so the timing does not include finding
	// the leader and the TLS handshake.
	wctx, cancel := callCtx(c)
	_, err = cl.Produce(wctx, make([]byte, o.recordSize))
	cancel()
	if err != nil {
		return res, fmt.Errorf("bench: warm-up: %w", callError(c, err))
	}
	stopSampling := sampleServers(c.Context, cl, time.Second)
	defer func() { res.Servers = stopSampling() }()
	prod, first, end, err := benchProduce(c.Context, cl, o, c.Duration("timeout"))
	res.Produce = prod
	if err != nil {
		return res, fmt.Errorf("bench: produce (%d records acknowledged): %w", prod.Records, callError(c, err))
	}
	if o.consume && prod.Records > 0 {
		ctx, cancel := context.WithTimeout(c.Context, o.duration+c.Duration("timeout"))
		defer cancel()
		var cons BenchPhase
		if o.consumeRPC == consumeStream {
			cons, res.ConsumedWith, err = benchConsumeStream(ctx, cl, first, end, o.recordSize)
		} else {
			cons, err = benchConsume(ctx, cl, first, end, o.recordSize)
			res.ConsumedWith = "ConsumeBatchStream"
		}
		res.Consume = &cons
		if err != nil {
			return res, fmt.Errorf("bench: consume (%d records read): %w", cons.Records, callError(c, err))
		}
	}
	return res, nil
}

// benchProduce runs the produce load and returns its outcome and the range
// of offsets [first, end) the acknowledged records fall in.
func benchProduce(ctx context.Context, cl *discovery.Client, o benchOptions, timeout time.Duration) (_ BenchPhase, first, end uint64, _ error) {
	value := make([]byte, o.recordSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	// claim takes up to n records from the budget; 0 when it is spent.
	var claimed atomic.Int64
	claim := func(n int) int {
		if o.count == 0 {
			return n
		}
		after := claimed.Add(int64(n))
		if over := after - int64(o.count); over > 0 {
			return max(0, n-int(over))
		}
		return n
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopAt := time.Now().Add(o.duration)
	stopCtx, stopCancel := context.WithDeadline(ctx, stopAt)
	defer stopCancel()

	var (
		mu       sync.Mutex
		firstErr error
		lo, hi   = ^uint64(0), uint64(0)
		acked    atomic.Int64
		failed   atomic.Int64
		lats     = make([][]time.Duration, o.concurrency)
		begin    = time.Now()
		lastAck  = begin
		maxGap   time.Duration
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	note := func(off uint64, n int) {
		acked.Add(int64(n))
		now := time.Now()
		mu.Lock()
		lo, hi = min(lo, off), max(hi, off+uint64(n))
		maxGap, lastAck = max(maxGap, now.Sub(lastAck)), now
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range o.concurrency {
		wg.Go(func() {
			var err error
			switch o.mode {
			case benchUnary, benchBatch:
				lats[w], err = benchCalls(stopCtx, cl, o, value, claim, note, &failed, timeout)
			case benchStream:
				lats[w], err = benchStreamWorker(ctx, stopCtx, cl, o, value, claim, note, timeout)
			}
			if err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	all := slices.Concat(lats...)
	n := acked.Load()
	ph := phase(n, int64(o.recordSize), elapsed)
	ph.Latency = latency(all)
	ph.MaxGapMs = durationMs(max(maxGap, time.Since(lastAck)))
	ph.FailedCalls = failed.Load()
	if n == 0 {
		lo = 0
	}
	return ph, lo, hi, firstErr
}

// benchCalls is one unary or batch worker: one call at a time until the
// budget is spent or ctx ends. It returns each call's latency. With
// o.keepGoing a call that fails is made again 10 ms later (counted in
// failed) until it succeeds or ctx ends, and its latency runs from the
// first try.
func benchCalls(ctx context.Context, cl *discovery.Client, o benchOptions, value []byte, claim func(int) int, note func(uint64, int), failed *atomic.Int64, timeout time.Duration) ([]time.Duration, error) {
	per := 1
	if o.mode == benchBatch {
		per = o.batch
	}
	batch := make([][]byte, per)
	for i := range batch {
		batch[i] = value
	}
	var lats []time.Duration
	for ctx.Err() == nil {
		n := claim(per)
		if n == 0 {
			return lats, nil
		}
		start := time.Now()
		var off uint64
		var err error
		for {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			if o.mode == benchUnary {
				off, err = cl.Produce(cctx, value)
			} else {
				off, err = cl.ProduceBatch(cctx, batch[:n])
			}
			cancel()
			if err == nil || !o.keepGoing || !sleepCtx(ctx, 10*time.Millisecond) {
				break
			}
			failed.Add(1)
		}
		if err != nil {
			if o.keepGoing {
				return lats, nil // the run ended during the retries
			}
			return lats, err
		}
		lats = append(lats, time.Since(start))
		note(off, n)
	}
	return lats, nil
}

// benchStreamWorker keeps o.batch records in flight on one ProduceStream
// until the budget is spent or stop ends, then waits (within timeout) for
// the acknowledgements still owed. It returns each record's latency.
func benchStreamWorker(ctx, stop context.Context, cl *discovery.Client, o benchOptions, value []byte, claim func(int) int, note func(uint64, int), timeout time.Duration) ([]time.Duration, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := cl.ProduceStream(sctx)
	if err != nil {
		return nil, err
	}
	sent := make(chan time.Time, o.batch) // send times of records in flight
	sendErr := make(chan error, 1)
	go func() {
		defer close(sent)
		req := &logv1.ProduceRequest{Record: &logv1.Record{Value: value}}
		for stop.Err() == nil && claim(1) == 1 {
			select {
			case sent <- time.Now():
			case <-stop.Done():
				// The claimed record was not sent.
				sendErr <- s.CloseSend()
				return
			}
			if err := s.Send(req); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- s.CloseSend()
	}()
	// Acknowledgements still owed after stop get timeout to arrive.
	drain := context.AfterFunc(stop, func() {
		t := time.AfterFunc(timeout, cancel)
		context.AfterFunc(sctx, func() { t.Stop() })
	})
	defer drain()
	var lats []time.Duration
	for at := range sent {
		res, err := s.Recv()
		if err != nil {
			cancel()
			for range sent {
			}
			<-sendErr
			return lats, err
		}
		lats = append(lats, time.Since(at))
		note(res.Offset, 1)
	}
	if err := <-sendErr; err != nil && err != io.EOF {
		return lats, err
	}
	return lats, nil
}

// benchConsume reads [first, end) back and checks every record's offset and size.
func benchConsume(ctx context.Context, cl *discovery.Client, first, end uint64, size int) (BenchPhase, error) {
	begin := time.Now()
	var n int64
	err := cl.Read(ctx, first, end, false, func(r *logv1.Record) error {
		if err := checkBenchRecord(r, first+uint64(n), size); err != nil {
			return err
		}
		n++
		return nil
	})
	if err == nil && n != int64(end-first) {
		err = fmt.Errorf("read %d records of [%d, %d)", n, first, end)
	}
	return phase(n, int64(size), time.Since(begin)), err
}

// benchConsumeStream reads [first, end) back with ConsumeStream from one
// follower (the first the cluster lists; the leader when it has none) and
// returns the phase and "ConsumeStream from" the server's id.
func benchConsumeStream(ctx context.Context, cl *discovery.Client, first, end uint64, size int) (BenchPhase, string, error) {
	servers, err := cl.Servers(ctx)
	if err == nil && len(servers) == 0 {
		err = errors.New("the cluster lists no servers")
	}
	if err != nil {
		return BenchPhase{}, "", err
	}
	from := servers[0]
	for _, s := range servers {
		if !s.IsLeader {
			from = s
			break
		}
	}
	with := "ConsumeStream from " + from.Id
	sc, err := cl.DialServer(from.RpcAddr)
	if err != nil {
		return BenchPhase{}, with, err
	}
	defer sc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the stream follows the log: it ends here
	begin := time.Now()
	var n int64
	stream, err := sc.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: first})
	for err == nil && first+uint64(n) < end {
		var res *logv1.ConsumeResponse
		if res, err = stream.Recv(); err == nil {
			err = checkBenchRecord(res.GetRecord(), first+uint64(n), size)
			n++
		}
	}
	return phase(n, int64(size), time.Since(begin)), with, err
}

// checkBenchRecord checks that r is the record bench wrote at off.
func checkBenchRecord(r *logv1.Record, off uint64, size int) error {
	switch {
	case r.GetOffset() != off:
		return fmt.Errorf("read offset %d where %d was next", r.GetOffset(), off)
	case len(r.GetValue()) != size:
		return fmt.Errorf("record %d has %d bytes, want %d (was the log written by someone else meanwhile?)", off, len(r.GetValue()), size)
	}
	return nil
}

func phase(n, size int64, elapsed time.Duration) BenchPhase {
	s := elapsed.Seconds()
	return BenchPhase{
		Records: n, Bytes: n * size, Seconds: s,
		RecordsPerSec: float64(n) / s, MBPerSec: float64(n*size) / 1e6 / s,
	}
}

// latency returns the percentiles of lats (nearest rank).
// durationMs is d in milliseconds.
func durationMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sleepCtx waits d, or less when ctx ends: it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func latency(lats []time.Duration) *BenchLatency {
	if len(lats) == 0 {
		return nil
	}
	slices.Sort(lats)
	at := func(p float64) float64 {
		i := int(p*float64(len(lats))+0.5) - 1
		i = min(max(i, 0), len(lats)-1)
		return durationMs(lats[i])
	}
	return &BenchLatency{Calls: len(lats), P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: at(1)}
}

// readMemory reads this process's resident set from /proc (nil elsewhere).
func readMemory() *BenchMemory {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	m := &BenchMemory{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSSBytes = kb << 10
		case "VmHWM":
			m.PeakRSSBytes = kb << 10
		}
	}
	return m
}

func printBench(w io.Writer, r BenchResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(r)
	}
	out := bufio.NewWriter(w)
	printRun(out, r)
	if fl := r.FloorRun; fl != nil {
		printRun(out, *fl)
	}
	if q := r.RatioToFloor; q != nil {
		fmt.Fprintf(out, "ratio to the floor: produce %.2f× records/s, %.2f× p50 latency, %.2f× p99 latency", q.ProduceRecordsPerSec, q.ProduceP50, q.ProduceP99)
		if q.ConsumeRecordsPerSec > 0 {
			fmt.Fprintf(out, "; consume %.2f× records/s", q.ConsumeRecordsPerSec)
		}
		fmt.Fprintln(out)
	}
	return out.Flush()
}

func printRun(out io.Writer, r BenchResult) {
	where := "cluster"
	switch {
	case r.Floor:
		where = "floor (in-memory log.v1 server, TLS as a node's)"
	case r.LocalNodes > 0:
		where = fmt.Sprintf("local cluster of %d nodes", r.LocalNodes)
	}
	fmt.Fprintf(out, "produce: %s, %d B records, concurrency %d, batch %d, %s\n", r.Mode, r.RecordSize, r.Concurrency, r.Batch, where)
	printPhase(out, r.Produce)
	if r.Consume != nil {
		fmt.Fprintf(out, "consume: %s\n", r.ConsumedWith)
		printPhase(out, *r.Consume)
	}
	if r.Process != nil {
		fmt.Fprintf(out, "process: rss %.1f MB, peak %.1f MB\n", float64(r.Process.RSSBytes)/1e6, float64(r.Process.PeakRSSBytes)/1e6)
	}
	printServers(out, r.Servers, r.Produce.Bytes)
}

func printPhase(w io.Writer, p BenchPhase) {
	fmt.Fprintf(w, "  %d records, %.1f MB in %.2fs: %.0f records/s, %.2f MB/s\n", p.Records, float64(p.Bytes)/1e6, p.Seconds, p.RecordsPerSec, p.MBPerSec)
	if l := p.Latency; l != nil {
		fmt.Fprintf(w, "  latency over %d calls: p50 %.3fms p90 %.3fms p99 %.3fms p99.9 %.3fms max %.3fms\n", l.Calls, l.P50, l.P90, l.P99, l.P999, l.Max)
		fmt.Fprintf(w, "  longest time with no acknowledgement: %.3fms; failed tries made again: %d\n", p.MaxGapMs, p.FailedCalls)
	}
}

// servePprof serves net/http/pprof on addr, which must be a loopback
// address: profiles are not for the network. stop shuts the server down.
func servePprof(addr string) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, UsageError{Err: fmt.Errorf("--pprof-addr %q: %w", addr, err)}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, UsageError{Err: fmt.Errorf("--pprof-addr %q: profiles are served on loopback addresses only", addr)}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return func() {
		srv.Close()
		<-done
	}, nil
}
