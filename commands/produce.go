package commands

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/discovery"
)

func produceCommand() *cli.Command {
	return &cli.Command{
		Name:      "produce",
		Usage:     "append records: the arguments, or one record per line of --file or stdin",
		ArgsUsage: "[VALUE...]",
		Description: `Each argument is a record; without arguments, each line of --file or stdin is
one, or each piece between --delimiter bytes (-0: NUL), so records may hold any
bytes, newlines included. A trailing CR is part of the record unless --strip-cr.
Output (-o): text or raw, the offset of each record a line; json one object a
line with the offset, the input line, the producer id and sequence of its batch,
whether an earlier attempt had appended it (duplicate) and what the
acknowledgement guarantees (durability); --quiet a summary.

Exactly once: produce numbers its batches as a producer whose id is kept per
profile in the config directory (--producer-id names another), with sequences
that never repeat for that id. After a timeout or a leader change it sends a
batch again with the same id and sequence until the cluster says where it is
(within --timeout): the cluster never appends a batch twice. A second produce
running with the same profile at once uses a fresh id for its run.`,
		Flags: append(append(clientFlags(),
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the records from `FILE` (- is stdin)", TakesFile: true},
			&cli.IntFlag{Name: "batch", Usage: "at most this many records per request (and 1 MiB); what has arrived goes at once", Value: 5000, EnvVars: []string{"PROGLOG_PRODUCE_BATCH"}},
			&cli.BoolFlag{Name: "strip-cr", Usage: "drop a CR before each delimiter (input from Windows); without it the CR is part of the record", EnvVars: []string{"PROGLOG_STRIP_CR"}},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only a summary", EnvVars: []string{"PROGLOG_QUIET"}},
			&cli.StringFlag{Name: "producer-id", Usage: "produce as producer `ID` (at most 256 bytes; default: the profile's own, made on first use)", EnvVars: []string{"PROGLOG_PRODUCER_ID"}},
			&cli.StringFlag{Name: "progress", Usage: "a progress bar on stderr: `auto` (when stderr is a terminal that offsets are not printed to, for input that takes over a second), always or never", Value: "auto", EnvVars: []string{"PROGLOG_PROGRESS"}},
		), append(outputFlags(), delimiterFlags("the bytes that end each record of the input")...)...),
		Action: runProduce,
	}
}

func runProduce(c *cli.Context) error {
	o, err := produceOptionsOf(c)
	if err != nil {
		return err
	}
	r, err := startProduce(c, o)
	if err != nil {
		return err
	}
	defer r.close() // on an error, before it is printed
	interrupted, err := r.produceAll()
	if err != nil {
		return err
	}
	return r.finish(interrupted)
}

// produceOptions are produce's settings from its flags.
type produceOptions struct {
	batchSize, maxBytes int
	format              string // text, json or raw
	quiet               bool
}

func produceOptionsOf(c *cli.Context) (produceOptions, error) {
	o := produceOptions{batchSize: c.Int("batch"), maxBytes: c.Int("max-record-bytes"), quiet: c.Bool("quiet")}
	if o.batchSize < 1 || o.maxBytes < 1 {
		return o, UsageError{Err: fmt.Errorf("produce: --batch and --max-record-bytes must be positive")}
	}
	var err error
	o.format, err = outputFormat(c, "text", "text", "json", "raw")
	return o, err
}

// produceRun is one run of produce: its input, the cluster, the producer
// that numbers its batches, and what was produced so far. While produceAll
// runs, the goroutine ProduceBatches sends from reads the input and takes
// the producer's sequences; everything else is the goroutine running
// produce's.
type produceRun struct {
	c    *cli.Context
	o    produceOptions
	in   produceSource
	bar  *progress
	cl   *discovery.Client
	prod *producer
	out  *bufio.Writer
	enc  *json.Encoder

	produced   int
	first, end uint64 // offsets of the first record produced and after the last
	contiguous bool   // every batch landed right after the one before
	durability logv1.Durability
}

// startProduce opens the input, the progress bar, the connection and the
// producer.
func startProduce(c *cli.Context, o produceOptions) (*produceRun, error) {
	in, err := produceInput(c, o.maxBytes)
	if err != nil {
		return nil, err
	}
	r := &produceRun{c: c, o: o, in: in, contiguous: true, out: bufio.NewWriter(c.App.Writer)}
	r.enc = json.NewEncoder(r.out)
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	if r.bar, err = newProgress(c, in.size); err != nil {
		return nil, err
	}
	if r.cl, err = dial(c); err != nil {
		return nil, err
	}
	if r.prod, err = openProducer(c); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

// close releases what startProduce opened; an unfinished bar is left as it
// is, ending its line.
func (r *produceRun) close() {
	r.bar.stop()
	if r.prod != nil {
		r.prod.close()
	}
	if r.cl != nil {
		r.cl.Close()
	}
	r.in.close()
}

// produceAll sends the input in batches, each what has arrived while the
// ones before were in flight, up to produceWindow of them committing at
// once on a stream, until the input ends, a batch fails, or produce is
// interrupted while waiting for input (then interrupted is true).
func (r *produceRun) produceAll() (interrupted bool, err error) {
	ra := readInput(r.in.next, r.o.batchSize)
	defer ra.stop()
	var (
		next inputRecord // read, not yet in a batch, when held
		held bool
		mu   sync.Mutex
		sent = map[uint64]inputBatch{} // by sequence, until answered
	)
	nextBatch := func(ctx context.Context) (discovery.Batch, bool, error) {
		if !held {
			if next, held = waitInput(ctx, ra); !held {
				return discovery.Batch{}, false, nil
			}
		}
		switch {
		case next.err == io.EOF:
			return discovery.Batch{}, false, nil
		case next.err != nil:
			return discovery.Batch{}, false, errInput{next.err}
		}
		var b inputBatch
		b, next, held = r.gather(ra, next)
		seq, err := r.prod.nextSequence()
		if err != nil {
			return discovery.Batch{}, false, err
		}
		mu.Lock()
		sent[seq] = b
		mu.Unlock()
		return discovery.Batch{Seq: seq, Records: b.recs}, true, nil
	}
	done := func(db discovery.Batch, res discovery.Produced) error {
		mu.Lock()
		b := sent[db.Seq]
		delete(sent, db.Seq)
		mu.Unlock()
		return r.produced1(b, db.Seq, res)
	}
	err = r.cl.ProduceBatches(r.c.Context, r.prod.id, produceWindow, r.c.Duration("timeout"), nextBatch, done)
	var be *discovery.BatchError
	var ie errInput
	switch {
	case err == nil:
		return false, nil
	case errors.As(err, &be):
		r.out.Flush()
		mu.Lock()
		b := sent[be.Seq]
		mu.Unlock()
		err := r.sendError(b, be.Seq, be.Err)
		if be.Later > 0 {
			err = fmt.Errorf("%w; the %d batches after it were sent too and are in the log at most once", err, be.Later)
		}
		return false, err
	case errors.As(err, &ie):
		return false, fmt.Errorf("%w; %d records before it were produced", ie.err, r.produced)
	case r.c.Context.Err() != nil && errors.Is(err, r.c.Context.Err()):
		return true, nil // interrupted while waiting for input: what was read has been produced
	}
	return false, err
}

// produceWindow is how many batches of produce are committing at once.
const produceWindow = 4

// errInput carries an error reading the input through ProduceBatches.
type errInput struct{ err error }

func (e errInput) Error() string { return e.err.Error() }

// waitInput waits for the first record of the next batch; held is false
// when ctx ended while waiting for input.
func waitInput(ctx context.Context, ra *readAhead) (next inputRecord, held bool) {
	select {
	case next = <-ra.recs: // recs is never closed
		ra.took(next)
		return next, true
	case <-ctx.Done():
		select {
		case next = <-ra.recs:
			// Read before ctx ended: the batch fails as not sent if
			// produce was interrupted, and produce says from which line.
			ra.took(next)
			return next, true
		default:
			return inputRecord{}, false
		}
	}
}

// inputBatch is records to produce in one request, with their line numbers
// and size.
type inputBatch struct {
	recs  [][]byte
	lines []int
	bytes int
}

// gather starts a batch with next and adds what has arrived behind it,
// without waiting, while it fits. A batch is one atomic request, and a
// request must fit in one Raft entry: it is kept well under that. It
// returns the record that did not fit or ended the input (held), if any.
func (r *produceRun) gather(ra *readAhead, next inputRecord) (b inputBatch, _ inputRecord, held bool) {
	held = true
	for held && next.err == nil && len(b.recs) < r.o.batchSize && (len(b.recs) == 0 || b.bytes+len(next.rec) <= maxBatchBytes) {
		b.recs, b.lines, b.bytes = append(b.recs, next.rec), append(b.lines, next.line), b.bytes+len(next.rec)
		select {
		case next = <-ra.recs:
			ra.took(next)
		default:
			held = false
		}
	}
	return b, next, held
}

// produced1 records that b was produced as sequence seq, at the offsets of
// res, and prints them.
func (r *produceRun) produced1(b inputBatch, seq uint64, res discovery.Produced) error {
	if r.produced == 0 {
		r.first = res.First
	} else if res.First != r.end {
		r.contiguous = false
	}
	r.end, r.durability = res.First+uint64(len(b.recs)), res.Durability
	if err := r.print(b, seq, res); err != nil {
		return err
	}
	r.produced += len(b.recs)
	r.bar.add(int64(b.bytes+len(b.recs)), r.produced) // each line with its newline
	// Offsets are printed as their records commit.
	if err := r.out.Flush(); err != nil {
		return fmt.Errorf("writing the offsets (%d records were produced): %w", r.produced, err)
	}
	return nil
}

// sendError explains a batch that failed: refused, never sent, or sent with
// no answer that told its outcome before --timeout (then it is in the log at
// most once: the cluster never appends a producer's sequence twice).
func (r *produceRun) sendError(b inputBatch, seq uint64, err error) error {
	var notSent *discovery.NotSentError
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
		if !errors.As(err, &notSent) {
			return fmt.Errorf("records from line %d on were sent (%s, sequence %d) and no server confirmed them within --timeout %v; they are in the log at most once (%d before them were produced): %w",
				b.lines[0], r.prod.describe(), seq, r.c.Duration("timeout"), r.produced, callError(r.c, err))
		}
	}
	return fmt.Errorf("records from line %d on were not produced (%d before them were): %w", b.lines[0], r.produced, callError(r.c, err))
}

// producedRecord is one line of produce -o json.
type producedRecord struct {
	Offset     uint64 `json:"offset"`
	Line       int    `json:"line"`
	ProducerID string `json:"producer_id"`
	Sequence   uint64 `json:"sequence"`
	// Duplicate: an earlier attempt had appended the batch; the offset is
	// where, and nothing was appended again.
	Duplicate  bool   `json:"duplicate"`
	Durability string `json:"durability"`
}

// print prints the offsets of b, produced as sequence seq.
func (r *produceRun) print(b inputBatch, seq uint64, res discovery.Produced) error {
	if res.Duplicate && r.o.format != "json" {
		fmt.Fprintf(r.c.App.ErrWriter, "produce: records from line %d on were appended by an earlier attempt (%s, sequence %d), not again: offsets %d..%d\n",
			b.lines[0], r.prod.describe(), seq, res.First, res.First+uint64(len(b.recs))-1)
	}
	for i := range b.recs {
		var err error
		off := res.First + uint64(i)
		switch {
		case r.o.quiet:
		case r.o.format == "json":
			err = r.enc.Encode(producedRecord{Offset: off, Line: b.lines[i], ProducerID: r.prod.id, Sequence: seq,
				Duplicate: res.Duplicate, Durability: orDash(durabilityName(res.Durability))})
		default:
			_, err = fmt.Fprintln(r.out, off)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// finish completes the bar and prints the summary of --quiet.
func (r *produceRun) finish(interrupted bool) error {
	if !interrupted {
		r.bar.finish()
	}
	if r.o.quiet {
		switch {
		case r.produced == 0:
			fmt.Fprintln(r.out, "produced 0 records")
		case r.contiguous:
			fmt.Fprintf(r.out, "produced %d records at offsets %d..%d, %s\n", r.produced, r.first, r.end-1, durabilityText(r.durability))
		default:
			fmt.Fprintf(r.out, "produced %d records between offsets %d and %d (other producers' records in between), %s\n",
				r.produced, r.first, r.end-1, durabilityText(r.durability))
		}
	}
	return r.out.Flush()
}

// readAhead reads produce's input on a goroutine of its own, so that a batch
// is what has arrived while the one before was in flight: a big file goes in
// full batches, and a line piped in slowly goes out at once. It stays at most
// readAheadBytes (or one record) ahead of what has been taken.
type readAhead struct {
	recs    chan inputRecord // never closed
	queued  atomic.Int64     // bytes in recs
	drained chan struct{}    // a token after records were taken
	done    chan struct{}    // closed by stop
}

// readAheadBytes bounds the records read but not yet taken.
const readAheadBytes = 4 * maxBatchBytes

// readInput starts reading with next. The goroutine ends when next has
// returned an error (io.EOF at the end) and it was taken, or after stop,
// unless it is blocked reading a stdin that never ends: the process exits
// under it (an in-process caller whose Main.Stdin stays open loses the line
// it reads then).
func readInput(next func() ([]byte, int, error), maxRecords int) *readAhead {
	// The count bounds the channel's memory; the byte budget bounds the rest.
	r := &readAhead{recs: make(chan inputRecord, min(maxRecords, 1<<16)), drained: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		for {
			rec, line, err := next()
			for r.queued.Load() >= readAheadBytes {
				select {
				case <-r.drained:
				case <-r.done:
					return
				}
			}
			r.queued.Add(int64(len(rec)))
			select {
			case r.recs <- inputRecord{rec, line, err}:
			case <-r.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// took accounts for rec, received from recs.
func (r *readAhead) took(rec inputRecord) {
	r.queued.Add(-int64(len(rec.rec)))
	select {
	case r.drained <- struct{}{}:
	default:
	}
}

// stop ends the reading goroutine unless it is blocked in next.
func (r *readAhead) stop() { close(r.done) }

// inputRecord is one record read by produce, or the error (io.EOF at the
// end) that ended the input.
type inputRecord struct {
	rec  []byte
	line int
	err  error
}

// maxBatchBytes bounds the records of one produce request; a single larger
// record still goes alone.
const maxBatchBytes = 1 << 20

// produceSource is the input of produce.
type produceSource struct {
	// next yields the records with their line numbers (argument numbers
	// for arguments), then io.EOF. A record over the size limit is an
	// error naming its line.
	next  func() (rec []byte, line int, err error)
	close func()
	// size is the input's length in bytes, -1 when unknown (a pipe), 0 for
	// arguments.
	size int64
}

// produceInput opens the records to produce: the arguments, --file, or stdin.
func produceInput(c *cli.Context, maxBytes int) (produceSource, error) {
	check := func(rec []byte, line int) ([]byte, int, error) {
		if len(rec) > maxBytes {
			return nil, line, fmt.Errorf("line %d: record of %d bytes is over the limit of %d bytes", line, len(rec), maxBytes)
		}
		return rec, line, nil
	}
	if c.NArg() > 0 {
		if c.IsSet("file") {
			return produceSource{}, UsageError{Err: fmt.Errorf("produce: give values as arguments or --file, not both")}
		}
		args, i := c.Args().Slice(), 0
		return produceSource{next: func() ([]byte, int, error) {
			if i == len(args) {
				return nil, 0, io.EOF
			}
			i++
			return check([]byte(args[i-1]), i)
		}, close: func() {}}, nil
	}
	src := produceSource{close: func() {}, size: -1}
	r := c.App.Reader
	if f := c.String("file"); f != "" && f != "-" {
		file, err := os.Open(f)
		if err != nil {
			return produceSource{}, fmt.Errorf("produce: %w", err)
		}
		r, src.close = file, func() { file.Close() }
	}
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			src.size = fi.Size()
		}
	}
	delim, err := parseDelimiter(c)
	if err != nil {
		return produceSource{}, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxBytes+len(delim)+1)
	sc.Split(splitOn(delim, c.Bool("strip-cr")))
	line := 0
	src.next = func() ([]byte, int, error) {
		if !sc.Scan() {
			if err := sc.Err(); err == bufio.ErrTooLong {
				return nil, line + 1, fmt.Errorf("line %d: record is over the limit of %d bytes", line+1, maxBytes)
			} else if err != nil {
				return nil, line, fmt.Errorf("produce: read input: %w", err)
			}
			return nil, 0, io.EOF
		}
		line++
		return check(append([]byte(nil), sc.Bytes()...), line)
	}
	return src, nil
}

// splitOn is a bufio.SplitFunc that yields the pieces of the input ended by
// delim (the last one may end at EOF instead; an input ending with delim has
// no empty record after it). With stripCR a CR before delim is dropped, as
// bufio.ScanLines does; without it the CR is part of the record.
func splitOn(delim []byte, stripCR bool) bufio.SplitFunc {
	return func(data []byte, atEOF bool) (int, []byte, error) {
		if atEOF && len(data) == 0 {
			return 0, nil, nil
		}
		if i := bytes.Index(data, delim); i >= 0 {
			tok := data[:i]
			if stripCR {
				tok = bytes.TrimSuffix(tok, []byte{'\r'})
			}
			return i + len(delim), tok, nil
		}
		if atEOF {
			if stripCR {
				return len(data), bytes.TrimSuffix(data, []byte{'\r'}), nil
			}
			return len(data), data, nil
		}
		return 0, nil, nil
	}
}

// progressDelay is how long produce runs before --progress auto shows a bar:
// small inputs finish without one.
const progressDelay = time.Second

// progress is a bar of the input produced so far, on stderr. A nil *progress
// draws nothing. Only the goroutine producing uses it.
type progress struct {
	bar   *progressbar.ProgressBar
	ended bool // finish or stop was called
}

// newProgress returns the bar --progress asks for over an input of size
// bytes (-1: unknown, 0: arguments, which never get one), or nil.
func newProgress(c *cli.Context, size int64) (*progress, error) {
	w := c.App.ErrWriter
	switch mode := c.String("progress"); mode {
	case "never":
		return nil, nil
	case "always":
	case "auto":
		// Offsets printed to the same terminal would tear the bar.
		offsetsOnTerminal := !c.Bool("quiet") && isTerminal(c.App.Writer)
		if !isTerminal(w) || offsetsOnTerminal {
			return nil, nil
		}
		w = silentUntil{w: w, t: time.Now().Add(progressDelay)}
	default:
		return nil, UsageError{Err: fmt.Errorf("produce: --progress %q: want auto, always or never", mode)}
	}
	if size == 0 {
		return nil, nil
	}
	return &progress{bar: progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0), // the spinner turns on each add: no goroutine of its own
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)}, nil
}

// add counts n more bytes of input produced, produced records in all.
// Errors drawing on stderr are not produce's to report.
func (p *progress) add(n int64, produced int) {
	if p != nil {
		p.bar.Describe(fmt.Sprintf("produced %d records", produced))
		_ = p.bar.Add64(n)
	}
}

// finish draws the bar complete.
func (p *progress) finish() {
	if p != nil && !p.ended {
		p.ended = true
		_ = p.bar.Finish()
	}
}

// stop leaves an unfinished bar as it is and ends its line, so that what
// follows (an error) starts on a line of its own.
func (p *progress) stop() {
	if p != nil && !p.ended {
		p.ended = true
		_ = p.bar.Exit()
	}
}

// silentUntil discards what is written to it until t.
type silentUntil struct {
	w io.Writer
	t time.Time
}

func (s silentUntil) Write(b []byte) (int, error) {
	if time.Now().Before(s.t) {
		return len(b), nil
	}
	return s.w.Write(b)
}
