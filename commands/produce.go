package commands

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
line with the offset and the input line; --quiet a summary.`,
		Flags: append(append(clientFlags(),
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the records from `FILE` (- is stdin)", TakesFile: true},
			&cli.IntFlag{Name: "batch", Usage: "at most this many records per request (and 1 MiB); what has arrived goes at once", Value: 5000, EnvVars: []string{"PROGLOG_PRODUCE_BATCH"}},
			&cli.BoolFlag{Name: "strip-cr", Usage: "drop a CR before each delimiter (input from Windows); without it the CR is part of the record", EnvVars: []string{"PROGLOG_STRIP_CR"}},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only a summary", EnvVars: []string{"PROGLOG_QUIET"}},
			&cli.StringFlag{Name: "progress", Usage: "a progress bar on stderr: `auto` (when stderr is a terminal that offsets are not printed to, for input that takes over a second), always or never", Value: "auto", EnvVars: []string{"PROGLOG_PROGRESS"}},
		), append(outputFlags(), delimiterFlags("the bytes that end each record of the input")...)...),
		Action: runProduce,
	}
}

func runProduce(c *cli.Context) error {
	batchSize, maxBytes := c.Int("batch"), c.Int("max-record-bytes")
	if batchSize < 1 || maxBytes < 1 {
		return UsageError{Err: fmt.Errorf("produce: --batch and --max-record-bytes must be positive")}
	}
	format, err := outputFormat(c, "text", "text", "json", "raw")
	if err != nil {
		return err
	}
	in, err := produceInput(c, maxBytes)
	if err != nil {
		return err
	}
	defer in.close()
	bar, err := newProgress(c, in.size)
	if err != nil {
		return err
	}
	defer bar.stop() // on an error, before it is printed
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()

	out := bufio.NewWriter(c.App.Writer)
	enc := json.NewEncoder(out)
	var batch [][]byte
	var lines []int
	batchBytes := 0
	produced, first, end := 0, uint64(0), uint64(0)
	contiguous := true // every batch landed right after the one before
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		ctx, cancel := callCtx(c)
		off, err := cl.ProduceBatch(ctx, batch)
		cancel()
		if err != nil {
			out.Flush()
			var notSent *discovery.NotSentError
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
				if !errors.As(err, &notSent) {
					return fmt.Errorf("records from line %d on may or may not have been produced (%d before them were): %w", lines[0], produced, callError(c, err))
				}
			}
			return fmt.Errorf("records from line %d on were not produced (%d before them were): %w", lines[0], produced, callError(c, err))
		}
		if produced == 0 {
			first = off
		} else if off != end {
			contiguous = false
		}
		end = off + uint64(len(batch))
		for i := range batch {
			var err error
			switch {
			case c.Bool("quiet"):
			case format == "json":
				err = enc.Encode(struct {
					Offset uint64 `json:"offset"`
					Line   int    `json:"line"`
				}{off + uint64(i), lines[i]})
			default:
				_, err = fmt.Fprintln(out, off+uint64(i))
			}
			if err != nil {
				return err
			}
		}
		produced += len(batch)
		bar.add(int64(batchBytes+len(batch)), produced) // each line with its newline
		batch, lines, batchBytes = batch[:0], lines[:0], 0
		if err := out.Flush(); err != nil { // offsets as their records commit
			return fmt.Errorf("writing the offsets (%d records were produced): %w", produced, err)
		}
		return nil
	}
	ra := readInput(in.next, batchSize)
	defer ra.stop()
	var next inputRecord // read, not yet in a batch, when held
	held, interrupted := false, false
	for !interrupted {
		if !held {
			select {
			case next, held = <-ra.recs: // the first record of a batch (recs is never closed)
				ra.took(next)
			case <-c.Context.Done():
				select {
				case next, held = <-ra.recs:
					// Read before the interrupt: the batch fails as not
					// sent, and produce says from which line.
					ra.took(next)
				default:
					// Interrupted while waiting for input: what was read
					// has been produced.
					interrupted = true
				}
			}
		}
		// Add what has arrived, without waiting, while it fits. A batch is
		// one atomic request, and a request must fit in one Raft entry:
		// keep it well under that.
		for held && next.err == nil && len(batch) < batchSize && (len(batch) == 0 || batchBytes+len(next.rec) <= maxBatchBytes) {
			batch, lines, batchBytes = append(batch, next.rec), append(lines, next.line), batchBytes+len(next.rec)
			select {
			case next = <-ra.recs:
				ra.took(next)
			default:
				held = false
			}
		}
		if err := send(); err != nil {
			return err
		}
		if held && next.err == io.EOF {
			break
		}
		if held && next.err != nil {
			return fmt.Errorf("%w; %d records before it were produced", next.err, produced)
		}
	}
	if !interrupted {
		bar.finish()
	}
	if c.Bool("quiet") {
		switch {
		case produced == 0:
			fmt.Fprintln(out, "produced 0 records")
		case contiguous:
			fmt.Fprintf(out, "produced %d records at offsets %d..%d\n", produced, first, end-1)
		default:
			fmt.Fprintf(out, "produced %d records between offsets %d and %d (other producers' records in between)\n", produced, first, end-1)
		}
	}
	return out.Flush()
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
