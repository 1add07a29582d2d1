package commands

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

func outputFlag() cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "text (offset and value), json (one object per record) or raw (values only)", Value: "text", EnvVars: []string{"PROGLOG_OUTPUT"}}
}

func consumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "consume",
		Usage: "print a range of records and exit",
		Flags: append(clientFlags(),
			&cli.Int64Flag{Name: "from", Usage: "first offset; negative counts back from the end (-10: the last ten)", Value: 0, EnvVars: []string{"PROGLOG_FROM"}},
			&cli.Uint64Flag{Name: "count", Aliases: []string{"n"}, Usage: "print at most this many records (0: no limit)", EnvVars: []string{"PROGLOG_COUNT"}},
			&cli.Uint64Flag{Name: "to", Usage: "stop before this offset (0: at the end of the log)", EnvVars: []string{"PROGLOG_TO"}},
			outputFlag(),
		),
		Action: func(c *cli.Context) error { return runRead(c, false) },
	}
}

func tailCommand() *cli.Command {
	return &cli.Command{
		Name:  "tail",
		Usage: "print the last records, then every new one as it commits, until interrupted",
		Flags: append(clientFlags(),
			&cli.Uint64Flag{Name: "lines", Aliases: []string{"n"}, Usage: "records of the past to print first", Value: 10, EnvVars: []string{"PROGLOG_TAIL_LINES"}},
			outputFlag(),
		),
		Action: func(c *cli.Context) error { return runRead(c, true) },
	}
}

func runRead(c *cli.Context, follow bool) error {
	if err := noArgs(c); err != nil {
		return err
	}
	write, err := recordWriter(c.String("output"))
	if err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := callCtx(c)
	lowest, next, err := cl.Offsets(ctx)
	cancel()
	if err != nil {
		return callError(c, err)
	}
	var from, to uint64
	if follow {
		from = max(lowest, next-min(next, c.Uint64("lines")))
	} else {
		from, to = resolveFrom(c.Int64("from"), lowest, next), c.Uint64("to")
		if !c.IsSet("from") {
			from = lowest // everything still retained
		}
		switch {
		case from > next:
			return CodedError{ExitOutOfRange, fmt.Errorf("offset %d is past the end of the log (next offset %d)", from, next)}
		case from < lowest:
			return CodedError{ExitOutOfRange, fmt.Errorf("offset %d is below the lowest retained offset %d", from, lowest)}
		}
		if to == 0 {
			to = next
		}
		if from >= to {
			return nil
		}
		if n := c.Uint64("count"); n > 0 && n < to-from {
			to = from + n
		}
	}
	out := bufio.NewWriter(c.App.Writer)
	err = cl.Read(c.Context, from, to, follow, func(r *logv1.Record) error {
		if err := write(out, r); err != nil {
			return err
		}
		if follow {
			return out.Flush() // each record as it commits
		}
		return nil
	})
	if follow && errors.Is(err, context.Canceled) {
		err = nil // interrupted: the normal end of tail
	}
	if err != nil {
		out.Flush()
		return callError(c, err)
	}
	return out.Flush()
}

// resolveFrom turns --from into an offset: negative counts back from next,
// clamped to the retained range.
func resolveFrom(from int64, lowest, next uint64) uint64 {
	if from >= 0 {
		return uint64(from)
	}
	back := uint64(-from)
	if back > next-lowest {
		return lowest
	}
	return next - back
}

// recordWriter returns the printer of one --output format.
func recordWriter(format string) (func(io.Writer, *logv1.Record) error, error) {
	switch format {
	case "text":
		return func(w io.Writer, r *logv1.Record) error {
			_, err := fmt.Fprintf(w, "%d\t%s\n", r.Offset, r.Value)
			return err
		}, nil
	case "raw":
		return func(w io.Writer, r *logv1.Record) error {
			if _, err := w.Write(r.Value); err != nil {
				return err
			}
			_, err := w.Write([]byte{'\n'})
			return err
		}, nil
	case "json":
		return func(w io.Writer, r *logv1.Record) error {
			rec := struct {
				Offset   uint64 `json:"offset"`
				Value    string `json:"value"`
				Encoding string `json:"encoding,omitempty"`
			}{Offset: r.Offset}
			if utf8.Valid(r.Value) {
				rec.Value = string(r.Value)
			} else {
				rec.Value, rec.Encoding = base64.StdEncoding.EncodeToString(r.Value), "base64"
			}
			return json.NewEncoder(w).Encode(rec)
		}, nil
	}
	return nil, UsageError{Err: fmt.Errorf("--output %q: want text, json or raw", format)}
}
