package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

func readFlags() []cli.Flag {
	return append(outputFlags(), delimiterFlags("with -o raw, the bytes written after each value")...)
}

func consumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "consume",
		Usage: "print a range of records and exit, or follow the log with --follow",
		Description: `Output (-o): text "offset<TAB>value" a line (on a terminal, control characters
in values are escaped), json one object a line, raw the values byte for byte, each
followed by --delimiter (default a newline; -0: NUL).

Where to start: every retained record by default; --from OFFSET; --since
DURATION, the first record the leader appended in the last DURATION (--since 10m:
from ten minutes ago on); or --from-time TIME, the first record appended at or
after TIME (RFC 3339: 2026-12-02T13:00:00Z). Choose one. Records are timed by
the leader's clock when it appends them; records written before times were
stored count as older than any time. In -o json each record has its time
("time", RFC 3339 in UTC) when it has one.

With --follow, consume waits for new records after the end until interrupted,
and prints on stderr the offset to resume from: "consume --from N --follow" picks
up exactly where it stopped.`,
		Flags: append(append(clientFlags(),
			&cli.StringFlag{Name: "from", Usage: "first `OFFSET`; negative counts back from the end (-10: the last ten)", EnvVars: []string{"PROGLOG_FROM"}},
			sinceFlag(),
			&cli.StringFlag{Name: "from-time", Usage: "start at the first record appended at or after `TIME` (RFC 3339: 2026-12-02T13:00:00Z)", EnvVars: []string{"PROGLOG_FROM_TIME"}},
			&cli.Uint64Flag{Name: "count", Aliases: []string{"n"}, Usage: "print at most this many records (0: no limit)", EnvVars: []string{"PROGLOG_COUNT"}},
			&cli.Uint64Flag{Name: "to", Usage: "stop before this offset (0: at the end of the log, or never with --follow)", EnvVars: []string{"PROGLOG_TO"}},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "after the end, wait for new records until interrupted", EnvVars: []string{"PROGLOG_FOLLOW"}},
		), readFlags()...),
		Action: func(c *cli.Context) error {
			if err := choose(c, "from", "since", "from-time"); err != nil {
				return err
			}
			start, err := readStartOf(c, c.String("from"), !c.IsSet("from"))
			if err != nil {
				return err
			}
			return runRead(c, c.Bool("follow"), start)
		},
	}
}

func tailCommand() *cli.Command {
	return &cli.Command{
		Name:  "tail",
		Usage: "print the last records (or from --from on), then every new one as it commits, until interrupted",
		Description: `tail is consume --follow starting at the last --lines records, at --from, or
at --since (the first record the leader appended in the last DURATION). On exit
it prints on stderr the offset to resume from (tail --from N).`,
		Flags: append(append(clientFlags(),
			&cli.Uint64Flag{Name: "lines", Aliases: []string{"n"}, Usage: "records of the past to print first", Value: 10, EnvVars: []string{"PROGLOG_TAIL_LINES"}},
			&cli.StringFlag{Name: "from", Usage: "start at `OFFSET` instead (negative counts back from the end)", EnvVars: []string{"PROGLOG_FROM"}},
			sinceFlag(),
		), readFlags()...),
		Action: func(c *cli.Context) error {
			if err := choose(c, "from", "lines", "since"); err != nil {
				return err
			}
			from := c.String("from")
			if !c.IsSet("from") {
				from = "-" + strconv.FormatUint(c.Uint64("lines"), 10)
			}
			start, err := readStartOf(c, from, false)
			if err != nil {
				return err
			}
			return runRead(c, true, start)
		},
	}
}

func sinceFlag() cli.Flag {
	return &cli.DurationFlag{Name: "since", Usage: "start at the first record appended in the last `DURATION` (10m: from ten minutes ago on)", EnvVars: []string{"PROGLOG_SINCE"}}
}

// choose is the usage error for more than one of the flags names set.
func choose(c *cli.Context, names ...string) error {
	var set []string
	for _, n := range names {
		if c.IsSet(n) {
			set = append(set, "--"+n)
		}
	}
	if len(set) < 2 {
		return nil
	}
	return UsageError{Err: fmt.Errorf("%s: %s and %s: choose one", c.Command.Name, strings.Join(set[:len(set)-1], ", "), set[len(set)-1])}
}

// readStart is where a read starts: at a time (timed), at every retained
// record (all), or at an offset (negative: counting back from the end).
type readStart struct {
	off   int64
	all   bool
	timed bool
	at    time.Time
}

// nowKey is the app's Metadata key of Main.now.
const nowKey = "now"

// now is the time by Main.now, or the clock's.
func now(c *cli.Context) time.Time {
	if f, ok := c.App.Metadata[nowKey].(func() time.Time); ok {
		return f()
	}
	return time.Now()
}

// readStartOf parses where a read starts: --since or --from-time when set,
// else fromArg (an offset, negative counting back from the end; every
// retained record when fromAll).
func readStartOf(c *cli.Context, fromArg string, fromAll bool) (readStart, error) {
	name := c.Command.Name
	switch {
	case c.IsSet("since"):
		d := c.Duration("since")
		if d <= 0 {
			return readStart{}, UsageError{Err: fmt.Errorf("%s: --since %v: want a positive duration (10m: the last ten minutes)", name, d)}
		}
		return readStart{timed: true, at: now(c).Add(-d)}, nil
	case c.IsSet("from-time"):
		v := c.String("from-time")
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return readStart{}, UsageError{Err: fmt.Errorf("%s: --from-time %q: want an RFC 3339 time such as 2026-12-02T13:00:00Z", name, v)}
		}
		return readStart{timed: true, at: at}, nil
	case fromAll:
		return readStart{all: true}, nil
	}
	off, err := strconv.ParseInt(fromArg, 10, 64)
	if err != nil {
		return readStart{}, UsageError{Err: fmt.Errorf("%s: --from %q: want an offset (negative: counting back from the end)", name, fromArg)}
	}
	return readStart{off: off}, nil
}

// runRead reads from start to --to or the end, or on with follow.
func runRead(c *cli.Context, follow bool, start readStart) error {
	if err := noArgs(c); err != nil {
		return err
	}
	from64 := start.off
	to := uint64(0)
	if c.Command.Name == "consume" {
		to = c.Uint64("to")
		if c.IsSet("to") && !start.all && !start.timed && from64 >= 0 && to <= uint64(from64) {
			return UsageError{Err: fmt.Errorf("consume: --to %d is not above --from %d: the range is empty", to, from64)}
		}
	}
	format, err := outputFormat(c, "text", "text", "json", "raw")
	if err != nil {
		return err
	}
	delim, err := parseDelimiter(c)
	if err != nil {
		return err
	}
	if (c.IsSet("delimiter") || c.Bool("null")) && format != "raw" {
		return UsageError{Err: fmt.Errorf("%s: --delimiter and -0 apply to -o raw only", c.Command.Name)}
	}
	write, err := recordWriter(format, delim, isTerminal(c.App.Writer))
	if err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	// At a time, the offset comes first: the end of the log asked after it
	// is at or past it.
	var atOff uint64
	if start.timed {
		ctx, cancel := callCtx(c)
		atOff, err = cl.OffsetForTime(ctx, start.at)
		cancel()
		if err != nil {
			return callError(c, err)
		}
	}
	ctx, cancel := callCtx(c)
	lowest, next, err := cl.Offsets(ctx)
	cancel()
	if err != nil {
		return callError(c, err)
	}
	from := lowest
	switch {
	case start.timed:
		// Retention may have dropped it since.
		from = max(atOff, lowest)
	case !start.all:
		from = resolveFrom(from64, lowest, next)
		switch {
		case from > next && !follow:
			return CodedError{ExitOutOfRange, fmt.Errorf("offset %d is past the end of the log (next offset %d)", from, next)}
		case from64 < 0 && uint64(-from64) > next-lowest:
			fmt.Fprintf(c.App.ErrWriter, "%s: the log holds %d records (offsets %d to %d): starting at %d\n", c.Command.Name, next-lowest, lowest, int64(next)-1, from)
		case from64 >= 0 && uint64(from64) < lowest:
			fmt.Fprintf(c.App.ErrWriter, "%s: offset %d is below the lowest retained offset %d (older records were deleted): starting at %d\n", c.Command.Name, from64, lowest, from)
		}
	}
	if !follow {
		if to == 0 {
			to = next
		}
		if from >= to {
			return nil
		}
	}
	if n := c.Uint64("count"); c.Command.Name == "consume" && n > 0 && (to == 0 || n < to-from) {
		to = from + n
	}
	// Output is written when the buffer fills and, following, after each
	// batch the server sends: a record that commits is printed at once,
	// a backlog in a few large writes.
	out := bufio.NewWriterSize(c.App.Writer, outputBufferBytes)
	buffered := from // the offset after the last record given to out
	resume := from   // the offset after the last record written to stdout
	err = cl.ReadBatches(c.Context, from, to, follow, func(recs []*logv1.Record) error {
		for _, r := range recs {
			if err := write(out, r); err != nil {
				return err
			}
			buffered = r.Offset + 1
		}
		if follow {
			if err := out.Flush(); err != nil {
				return err
			}
			resume = buffered
		}
		return nil
	})
	if follow && errors.Is(err, context.Canceled) {
		err = nil // interrupted: the normal end of following
	}
	ferr := out.Flush()
	if ferr == nil {
		resume = buffered
	}
	if follow {
		// Where the next run picks up: every record before it was written.
		fmt.Fprintf(c.App.ErrWriter, "%s: next offset %d (resume with --from %d)\n", c.Command.Name, resume, resume)
	}
	if err != nil {
		return callError(c, err)
	}
	return ferr
}

// outputBufferBytes is the size of consume's and tail's output buffer:
// a few hundred write calls for 256 MB of records instead of 64,000 with
// bufio's default of 4 KiB.
const outputBufferBytes = 1 << 20

// resolveFrom turns --from into an offset: negative counts back from next,
// clamped to the retained range; an absolute offset below the range starts
// at its lowest.
func resolveFrom(from int64, lowest, next uint64) uint64 {
	if from >= 0 {
		return max(uint64(from), lowest)
	}
	back := uint64(-from)
	if back > next-lowest {
		return lowest
	}
	return next - back
}
