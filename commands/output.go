package commands

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/urfave/cli/v2"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// outputFlags are -o/--output and its alias --json, which every client
// command takes; outputFormat reads them.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FORMAT`: text, json, raw, or table where it fits (see the command's help)", EnvVars: []string{"PROGLOG_OUTPUT"}},
		&cli.BoolFlag{Name: "json", Usage: "same as -o json", EnvVars: []string{"PROGLOG_JSON"}},
	}
}

// outputFormat returns the format -o (or --json) chose, def when neither was
// given, or a usage error when it is not one of formats.
func outputFormat(c *cli.Context, def string, formats ...string) (string, error) {
	f := c.String("output")
	if c.Bool("json") {
		if f != "" && f != "json" && c.IsSet("output") {
			return "", UsageError{Err: fmt.Errorf("%s: --json and -o %s: choose one", c.Command.Name, f)}
		}
		f = "json"
	}
	if f == "" {
		return def, nil
	}
	if !slices.Contains(formats, f) {
		return "", UsageError{Err: fmt.Errorf("%s: -o %q: want %s", c.Command.Name, f, orList(formats))}
	}
	return f, nil
}

// orList is "a, b or c".
func orList(ss []string) string {
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}

// recordWriter returns the printer of one output format of consume and tail.
// text is "offset<TAB>value" a line; on a terminal (escape) the value's
// control characters and invalid UTF-8 are escaped (\x1b, \n, \xff) so a
// record cannot drive the terminal. raw is each value followed by delim,
// byte for byte; json one object a line, base64 for values that are not
// UTF-8.
func recordWriter(format string, delim []byte, escape bool) (func(io.Writer, *logv1.Record) error, error) {
	switch format {
	case "text":
		return func(w io.Writer, r *logv1.Record) error {
			v := r.Value
			if escape {
				v = escapeControl(v)
			}
			_, err := fmt.Fprintf(w, "%d\t%s\n", r.Offset, v)
			return err
		}, nil
	case "raw":
		return func(w io.Writer, r *logv1.Record) error {
			if _, err := w.Write(r.Value); err != nil {
				return err
			}
			_, err := w.Write(delim)
			return err
		}, nil
	case "json":
		return func(w io.Writer, r *logv1.Record) error {
			rec := struct {
				Offset   uint64 `json:"offset"`
				Time     string `json:"time,omitempty"` // RFC 3339 in UTC; none for a record without time
				Value    string `json:"value"`
				Encoding string `json:"encoding,omitempty"`
			}{Offset: r.Offset}
			if r.Timestamp != 0 {
				rec.Time = time.Unix(0, r.Timestamp).UTC().Format(time.RFC3339Nano)
			}
			if utf8.Valid(r.Value) {
				rec.Value = string(r.Value)
			} else {
				rec.Value, rec.Encoding = base64.StdEncoding.EncodeToString(r.Value), "base64"
			}
			return json.NewEncoder(w).Encode(rec)
		}, nil
	}
	return nil, UsageError{Err: fmt.Errorf("-o %q: want text, json or raw", format)}
}

// escapeControl returns v with control characters and invalid UTF-8 written
// as Go escapes (\t, \n, \x1b, \u0085, \xff) and backslashes doubled, so
// that what a terminal shows is exactly the bytes; v itself when there is
// nothing to escape.
func escapeControl(v []byte) []byte {
	clean := true
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && n <= 1 || unicode.IsControl(r) || r == '\\' {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return v
	}
	var b bytes.Buffer
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRune(v[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, v[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r) // '\x1b', '\n', '\u0085'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.Write(v[i : i+n])
		}
		i += n
	}
	return b.Bytes()
}

// parseDelimiter interprets --delimiter: Go escapes (\n, \t, \r\n, \0 or
// \x00, \x1e) are allowed; the result is not empty.
func parseDelimiter(c *cli.Context) ([]byte, error) {
	if c.Bool("null") {
		if c.IsSet("delimiter") {
			return nil, UsageError{Err: fmt.Errorf("%s: -0 and --delimiter: choose one", c.Command.Name)}
		}
		return []byte{0}, nil
	}
	d := c.String("delimiter")
	s, err := strconv.Unquote(`"` + strings.ReplaceAll(strings.ReplaceAll(d, `"`, `\"`), `\0`, `\x00`) + `"`)
	if err != nil || s == "" {
		return nil, UsageError{Err: fmt.Errorf("%s: --delimiter %q: want one or more bytes, Go escapes allowed (\\n, \\t, \\r\\n, \\0, \\x1e)", c.Command.Name, d)}
	}
	return []byte(s), nil
}

// delimiterFlags are --delimiter and -0.
func delimiterFlags(usage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "delimiter", Aliases: []string{"D"}, Usage: usage + " (Go escapes: \\n, \\t, \\r\\n, \\0, \\x1e)", Value: `\n`, EnvVars: []string{"PROGLOG_DELIMITER"}},
		&cli.BoolFlag{Name: "null", Aliases: []string{"0"}, Usage: "same as --delimiter '\\0': records separated by NUL bytes"},
	}
}

// writeReport writes r to w as indented JSON, or else with writeText (told
// whether w is a terminal).
func writeReport(w io.Writer, asJSON bool, r any, writeText func(io.Writer, bool) error) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return writeText(w, isTerminal(w))
}

// Colours renderTable marks rows with (ANSI colour numbers).
const (
	colourGood = "10" // green: the leader
	colourBad  = "9"  // red: a row that failed a check
)

// renderTable draws rows under headers with lipgloss, as the commands do on a
// terminal. mark, when set, names the colour a row is drawn in, bold ("" for
// none): servers' leader, fsck's and verify's failed rows.
func renderTable(headers []string, rows [][]string, mark func(row int) string) string {
	header := lipgloss.NewStyle().Bold(true).Padding(0, 1)
	cell := lipgloss.NewStyle().Padding(0, 1)
	t := table.New().
		Border(lipgloss.RoundedBorder()).
		Headers(headers...).
		StyleFunc(func(row, _ int) lipgloss.Style {
			if row == table.HeaderRow {
				return header
			}
			if mark != nil && row >= 0 && row < len(rows) {
				if c := mark(row); c != "" {
					return cell.Foreground(lipgloss.Color(c)).Bold(true)
				}
			}
			return cell
		})
	for _, r := range rows {
		t.Row(r...)
	}
	return t.Render()
}

// writeRows writes rows to b as a table on a terminal (renderTable), else as
// tab-separated lines without a header, which scripts read.
func writeRows(b *strings.Builder, terminal bool, headers []string, rows [][]string, mark func(row int) string) {
	if terminal {
		b.WriteString(renderTable(headers, rows, mark) + "\n")
		return
	}
	for _, r := range rows {
		b.WriteString(strings.Join(r, "\t") + "\n")
	}
}

// suggest returns the candidate closest to s when it is close enough to be
// a typo of it (at most 1 edit for up to 4 characters, 2 for more), else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := editDistance(s, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 1
	if len(s) > 4 {
		limit = 2
	}
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment) between a and b: prodcue is one edit from produce.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
