package commands

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func produceCommand() *cli.Command {
	return &cli.Command{
		Name:      "produce",
		Usage:     "append records: the arguments, or one record per line of --file or stdin",
		ArgsUsage: "[VALUE...]",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read one record per line from `FILE` (- is stdin)", TakesFile: true},
			&cli.IntFlag{Name: "batch", Usage: "records sent per request", Value: 500, EnvVars: []string{"PROGLOG_PRODUCE_BATCH"}},
			&cli.IntFlag{Name: "max-record-bytes", Usage: "refuse lines longer than this before sending anything of them", Value: 1 << 20, EnvVars: []string{"PROGLOG_MAX_RECORD_BYTES"}},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only a summary", EnvVars: []string{"PROGLOG_QUIET"}},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per record", EnvVars: []string{"PROGLOG_JSON"}},
		),
		Action: runProduce,
	}
}

func runProduce(c *cli.Context) error {
	batchSize, maxBytes := c.Int("batch"), c.Int("max-record-bytes")
	if batchSize < 1 || maxBytes < 1 {
		return UsageError{Err: fmt.Errorf("produce: --batch and --max-record-bytes must be positive")}
	}
	next, closeInput, err := produceInput(c, maxBytes)
	if err != nil {
		return err
	}
	defer closeInput()
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
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
				return fmt.Errorf("records from line %d on may or may not have been produced (%d before them were): %w", lines[0], produced, callError(c, err))
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
			case c.Bool("json"):
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
		batch, lines, batchBytes = batch[:0], lines[:0], 0
		return nil
	}
	for {
		rec, line, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if serr := send(); serr != nil {
				return serr
			}
			out.Flush()
			return fmt.Errorf("%w; %d records before it were produced", err, produced)
		}
		// A batch is one atomic request, and a request must fit in one Raft
		// entry: keep it well under that.
		if batchBytes+len(rec) > maxBatchBytes {
			if err := send(); err != nil {
				return err
			}
		}
		batch, lines, batchBytes = append(batch, rec), append(lines, line), batchBytes+len(rec)
		if len(batch) == batchSize {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := send(); err != nil {
		return err
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

// maxBatchBytes bounds the records of one produce request; a single larger
// record still goes alone.
const maxBatchBytes = 1 << 20

// produceInput returns a function yielding the records to produce with their
// line numbers (argument numbers for arguments), then io.EOF. A record over
// maxBytes is an error naming its line.
func produceInput(c *cli.Context, maxBytes int) (next func() ([]byte, int, error), closeInput func(), err error) {
	check := func(rec []byte, line int) ([]byte, int, error) {
		if len(rec) > maxBytes {
			return nil, line, fmt.Errorf("line %d: record of %d bytes is over the limit of %d bytes", line, len(rec), maxBytes)
		}
		return rec, line, nil
	}
	if c.NArg() > 0 {
		if c.IsSet("file") {
			return nil, nil, UsageError{Err: fmt.Errorf("produce: give values as arguments or --file, not both")}
		}
		args, i := c.Args().Slice(), 0
		return func() ([]byte, int, error) {
			if i == len(args) {
				return nil, 0, io.EOF
			}
			i++
			return check([]byte(args[i-1]), i)
		}, func() {}, nil
	}
	var r io.Reader = c.App.Reader
	closeInput = func() {}
	if f := c.String("file"); f != "" && f != "-" {
		file, err := os.Open(f)
		if err != nil {
			return nil, nil, fmt.Errorf("produce: %w", err)
		}
		r, closeInput = file, func() { file.Close() }
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxBytes+1)
	line := 0
	return func() ([]byte, int, error) {
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
	}, closeInput, nil
}
