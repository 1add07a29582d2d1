package commands

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/discovery"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// verifyMark starts the value of every record verify writes.
const verifyMark = "proglogctl-verify"

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check that every server holds the same log: write a marked batch, read it back from each server, compare offsets and a checksum of recent records",
		Description: `Asks the cluster for its servers, then each server directly. Unless --no-write, it first writes a
batch of --count records ("proglogctl-verify ID I", which needs produce permission) and reads it back
from every server at the same offsets, expecting the same bytes. Each server's lowest and next offset
are compared with the leader's: a server behind the leader is reported with its lag, and is an error
only when the lag is over --max-lag after waiting up to --timeout for it to catch up. Then the last
--range records below the smallest next offset are read from every server and their SHA-256 compared
with the sum most servers share (the leader's among equals); where one differs, the first offset that
differs is named. Output: a table on a terminal, tab-separated lines otherwise, or -o json.

Exit codes: 0 every server agrees; 1 a server disagrees (batch, records or a lag over --max-lag; this
wins over 3), or another error; 2 usage; 3 a server is unreachable (or no server is); 4 not
authenticated or not allowed.`,
		Flags: append(clientFlags(),
			&cli.IntFlag{Name: "count", Usage: "records in the marked batch", Value: 10, EnvVars: []string{"PROGLOG_VERIFY_COUNT"}},
			&cli.BoolFlag{Name: "no-write", Usage: "write no batch: only compare offsets and recent records", EnvVars: []string{"PROGLOG_VERIFY_NO_WRITE"}},
			&cli.Uint64Flag{Name: "range", Usage: "compare a checksum of this many records below the smallest next offset (0: none)", Value: 1000, EnvVars: []string{"PROGLOG_VERIFY_RANGE"}},
			&cli.Int64Flag{Name: "max-lag", Usage: "a server more records behind the leader than this, after waiting up to --timeout, is a failure (-1: lag is only reported)", Value: -1, EnvVars: []string{"PROGLOG_VERIFY_MAX_LAG"}},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "text (a table on a terminal, tab-separated lines otherwise) or json", Value: "text", EnvVars: []string{"PROGLOG_OUTPUT"}},
		),
		Action: runVerify,
	}
}

// verifyReport is what verify prints, as JSON or text.
type verifyReport struct {
	Batch     *verifyBatch `json:"batch,omitempty"`
	Range     *verifyRange `json:"range,omitempty"`
	Reference string       `json:"reference,omitempty"` // the server the others are compared with
	Servers   []verifyNode `json:"servers"`
	Result    string       `json:"result"` // ok, disagreement or unreachable
	ExitCode  int          `json:"exit_code"`
}

type verifyBatch struct {
	ID          string `json:"id"`
	FirstOffset uint64 `json:"first_offset"`
	Count       int    `json:"count"`
}

type verifyRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// verifyNode is one server as verify found it. Pointers are nil when
// unknown.
type verifyNode struct {
	serverPosition
	Batch       string   `json:"batch,omitempty"` // ok, or what differs
	RangeSHA256 string   `json:"range_sha256,omitempty"`
	Status      string   `json:"status"` // ok, lagging, differs, unreachable
	Problems    []string `json:"problems,omitempty"`

	sc   *discovery.ServerClient
	crcs []uint32 // crc32c of each record of the range
}

// Server states in verify's report.
const (
	verifyOK          = "ok"
	verifyLagging     = "lagging" // behind the leader, within --max-lag
	verifyDiffers     = "differs"
	verifyUnreachable = "unreachable"
)

func (n *verifyNode) fail(status, format string, args ...any) {
	if n.Status != verifyUnreachable && n.Status != verifyDiffers || status == verifyUnreachable {
		n.Status = status
	}
	n.Problems = append(n.Problems, fmt.Sprintf(format, args...))
}

func (n *verifyNode) reachable() bool { return n.Status != verifyUnreachable }

func runVerify(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	count, maxLag := c.Int("count"), c.Int64("max-lag")
	if count < 1 || maxLag < -1 {
		return UsageError{Err: errors.New("verify: --count must be positive and --max-lag at least -1")}
	}
	cl, servers, err := dialServers(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	r := &verifyReport{}
	var want [][]byte
	if !c.Bool("no-write") {
		id := make([]byte, 8)
		rand.Read(id)
		b := &verifyBatch{ID: hex.EncodeToString(id), Count: count}
		for i := range count {
			want = append(want, fmt.Appendf(nil, "%s %s %d", verifyMark, b.ID, i))
		}
		ctx, cancel := callCtx(c)
		b.FirstOffset, err = cl.ProduceBatch(ctx, want)
		cancel()
		if err != nil {
			return fmt.Errorf("verify: writing the marked batch: %w", callError(c, err))
		}
		r.Batch = b
	}

	nodes := make([]*verifyNode, len(servers))
	for i, s := range servers {
		nodes[i] = &verifyNode{serverPosition: serverPosition{ID: s.Id, RPCAddr: s.RpcAddr}, Status: verifyOK}
	}
	defer func() {
		for _, n := range nodes {
			if n.sc != nil {
				n.sc.Close()
			}
		}
	}()
	each := func(fn func(n *verifyNode)) {
		var wg sync.WaitGroup
		for _, n := range nodes {
			if n.reachable() {
				wg.Go(func() { fn(n) })
			}
		}
		wg.Wait()
	}
	each(func(n *verifyNode) { n.inspect(c, cl, r.Batch, want) })

	// Lag behind the leader (or the most advanced server when none leads).
	refNext := referenceNext(nodes)
	if maxLag >= 0 {
		each(func(n *verifyNode) {
			if n.NextOffset != nil && refNext > *n.NextOffset+uint64(maxLag) {
				n.catchUp(c, refNext-uint64(maxLag))
			}
		})
	}
	judgeLag(nodes, refNext, maxLag, c.Duration("timeout"))

	// A checksum of the same recent records on every server.
	if span := c.Uint64("range"); span > 0 {
		r.Range = verifyRangeOf(nodes, span)
		if r.Range != nil && r.Range.To > r.Range.From {
			each(func(n *verifyNode) { n.checksum(c, r.Range.From, r.Range.To) })
			r.Reference = compareRanges(nodes, r.Range.From)
		}
	}

	r.Result, r.ExitCode = "ok", ExitOK
	for _, n := range nodes {
		r.Servers = append(r.Servers, *n)
		switch {
		case n.Status == verifyDiffers:
			r.Result, r.ExitCode = "disagreement", ExitError
		case n.Status == verifyUnreachable && r.ExitCode == ExitOK:
			r.Result, r.ExitCode = "unreachable", ExitUnavailable
		}
	}
	if err := writeReport(c.App.Writer, asJSON, r, r.writeText); err != nil {
		return err
	}
	switch r.ExitCode {
	case ExitError:
		return CodedError{ExitError, errors.New("verify: the servers disagree (see above)")}
	case ExitUnavailable:
		return CodedError{ExitUnavailable, errors.New("verify: a server is unreachable (see above)")}
	}
	return nil
}

// referenceNext is the leader's next offset, or the largest one when no
// reachable server leads.
func referenceNext(nodes []*verifyNode) uint64 {
	var next uint64
	for _, n := range nodes {
		switch {
		case !n.reachable() || n.NextOffset == nil:
		case n.IsLeader:
			return *n.NextOffset
		default:
			next = max(next, *n.NextOffset)
		}
	}
	return next
}

// judgeLag sets each server's lag behind refNext: a failure over maxLag
// (when not -1), after waited for it to catch up.
func judgeLag(nodes []*verifyNode, refNext uint64, maxLag int64, waited time.Duration) {
	for _, n := range nodes {
		if !n.reachable() || n.NextOffset == nil {
			continue
		}
		lag := refNext - min(refNext, *n.NextOffset)
		n.Lag = &lag
		switch {
		case maxLag >= 0 && lag > uint64(maxLag):
			n.fail(verifyDiffers, "%d records behind the leader, over --max-lag %d after waiting %v", lag, maxLag, waited)
		case lag > 0 && n.Status == verifyOK:
			n.Status = verifyLagging
		}
	}
}

// inspect connects to the server, asks it for itself and its lowest offset,
// reads the marked batch back and then asks for its next offset.
func (n *verifyNode) inspect(c *cli.Context, cl *discovery.Client, b *verifyBatch, want [][]byte) {
	var err error
	if n.sc, err = cl.DialServer(n.RPCAddr); err != nil {
		n.fail(verifyUnreachable, "%v", err)
		return
	}
	if !n.askSelf(c) {
		return
	}
	ctx, cancel := callCtx(c)
	if res, err := n.sc.GetOffsets(ctx, &logv1.GetOffsetsRequest{}); err == nil {
		lowest := res.LowestOffset
		n.LowestOffset = &lowest
	} else {
		n.Problems = append(n.Problems, fmt.Sprintf("lowest offset unknown: %v", callError(c, err)))
	}
	cancel()
	if b != nil {
		n.Batch = verifyOK
		i := 0
		err := n.read(c, b.FirstOffset, b.FirstOffset+uint64(len(want)), func(rec *logv1.Record) {
			if !bytes.Equal(rec.Value, want[i]) && n.Batch == verifyOK {
				n.Batch = fmt.Sprintf("offset %d differs", rec.Offset)
				n.fail(verifyDiffers, "offset %d of the marked batch holds %q, want %q", rec.Offset, clip(rec.Value), want[i])
			}
			i++
		})
		if err != nil {
			n.Batch = "not read"
			n.fail(verifyDiffers, "reading the marked batch: %v", err)
		}
		n.askSelf(c) // its next offset now
	}
}

// askSelf asks the server for itself: its id, role and next offset.
func (n *verifyNode) askSelf(c *cli.Context) bool {
	ctx, cancel := callCtx(c)
	defer cancel()
	res, err := n.sc.GetServers(ctx, &logv1.GetServersRequest{})
	switch {
	case err != nil:
		n.fail(verifyUnreachable, "%s: %s", status.Code(err), status.Convert(err).Message())
		return false
	case res.Self.GetId() != n.ID:
		n.fail(verifyUnreachable, "%s answers at %s", orDash(res.Self.GetId()), n.RPCAddr)
		return false
	}
	n.IsLeader, n.State = res.Self.IsLeader, res.Self.State
	next := res.Self.NextOffset
	n.NextOffset = &next
	return true
}

// catchUp waits, up to --timeout, until the server has applied the records
// below target, then asks it for its next offset again.
func (n *verifyNode) catchUp(c *cli.Context, target uint64) {
	if err := n.read(c, target-1, target, func(*logv1.Record) {}); err != nil {
		n.Problems = append(n.Problems, fmt.Sprintf("waiting for offset %d: %v", target-1, err))
	}
	n.askSelf(c)
}

// checksum reads [from, to) from the server: a SHA-256 of the range and a
// crc32c of each record.
func (n *verifyNode) checksum(c *cli.Context, from, to uint64) {
	h := sha256.New()
	n.crcs = make([]uint32, 0, to-from)
	err := n.read(c, from, to, func(rec *logv1.Record) {
		writeRecordHash(h, rec)
		n.crcs = append(n.crcs, crc32.Checksum(rec.Value, castagnoli))
	})
	if err != nil {
		n.fail(verifyDiffers, "reading offsets %d to %d: %v", from, to-1, err)
		n.crcs = nil
		return
	}
	n.RangeSHA256 = hex.EncodeToString(h.Sum(nil))
}

// writeRecordHash adds a record to h as offset | length | value, so that
// records moved across a boundary change the sum.
func writeRecordHash(h hash.Hash, rec *logv1.Record) {
	var hdr [12]byte
	binary.BigEndian.PutUint64(hdr[:], rec.Offset)
	binary.BigEndian.PutUint32(hdr[8:], uint32(len(rec.Value)))
	h.Write(hdr[:])
	h.Write(rec.Value)
}

// read streams [from, to) from this server alone, waiting (up to --timeout)
// for records it has not applied yet, and fails unless every offset arrives
// in order.
func (n *verifyNode) read(c *cli.Context, from, to uint64, fn func(*logv1.Record)) error {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	off := from
	fail := func(err error) error {
		if ctx.Err() != nil && c.Context.Err() == nil {
			return fmt.Errorf("offset %d did not arrive within --timeout %v", off, c.Duration("timeout"))
		}
		return fmt.Errorf("%s: %s", status.Code(err), status.Convert(err).Message())
	}
	s, err := n.sc.ConsumeBatchStream(ctx, &logv1.ConsumeBatchRequest{Offset: from, EndOffset: to, Follow: true})
	if err != nil {
		return fail(err)
	}
	for off < to {
		res, err := s.Recv()
		if err == io.EOF {
			return fmt.Errorf("the stream ended at offset %d", off)
		}
		if err != nil {
			return fail(err)
		}
		for _, rec := range res.Records {
			if rec.Offset != off {
				return fmt.Errorf("record %d arrived where %d was expected", rec.Offset, off)
			}
			fn(rec)
			off++
		}
	}
	return nil
}

// verifyRangeOf is the last span records below the smallest next offset of
// the reachable servers, above every lowest offset.
func verifyRangeOf(nodes []*verifyNode, span uint64) *verifyRange {
	var r *verifyRange
	for _, n := range nodes {
		if !n.reachable() || n.NextOffset == nil {
			continue
		}
		if r == nil {
			r = &verifyRange{To: *n.NextOffset}
		}
		r.To = min(r.To, *n.NextOffset)
		if n.LowestOffset != nil {
			r.From = max(r.From, *n.LowestOffset)
		}
	}
	if r != nil {
		r.From = max(r.From, r.To-min(r.To, span))
		r.From = min(r.From, r.To)
	}
	return r
}

// compareRanges compares every server's range with the sum most servers
// share (the leader's, among sums shared by as many), and returns the id of
// the server it took that sum from.
func compareRanges(nodes []*verifyNode, from uint64) string {
	votes := map[string]int{}
	for _, n := range nodes {
		if n.RangeSHA256 != "" {
			votes[n.RangeSHA256]++
		}
	}
	var ref *verifyNode
	for _, n := range nodes {
		if n.RangeSHA256 == "" {
			continue
		}
		if ref == nil || votes[n.RangeSHA256] > votes[ref.RangeSHA256] ||
			votes[n.RangeSHA256] == votes[ref.RangeSHA256] && n.IsLeader && !ref.IsLeader {
			ref = n
		}
	}
	if ref == nil {
		return ""
	}
	for _, n := range nodes {
		if n == ref || n.RangeSHA256 == "" || n.RangeSHA256 == ref.RangeSHA256 {
			continue
		}
		at := "an offset the per-record checksums do not show"
		for i := range min(len(n.crcs), len(ref.crcs)) {
			if n.crcs[i] != ref.crcs[i] {
				at = "offset " + strconv.FormatUint(from+uint64(i), 10)
				break
			}
		}
		n.fail(verifyDiffers, "records differ from %s's at %s", ref.ID, at)
	}
	return ref.ID
}

// clip shortens a value for a message.
func clip(v []byte) string {
	if len(v) > 64 {
		return string(v[:64]) + "…"
	}
	return string(v)
}

var verifyColumns = []string{"ID", "RPC ADDRESS", "ROLE", "LOWEST", "NEXT", "LAG", "BATCH", "RANGE SHA256", "STATUS"}

func (n verifyNode) cells() []string {
	role := "follower"
	if n.IsLeader {
		role = "leader"
	}
	if !n.reachable() {
		role = "-"
	}
	num := func(v *uint64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatUint(*v, 10)
	}
	sum := n.RangeSHA256
	if len(sum) > 16 {
		sum = sum[:16]
	}
	status := n.Status
	if len(n.Problems) > 0 {
		status += ": " + strings.Join(n.Problems, "; ")
	}
	return []string{n.ID, n.RPCAddr, role, num(n.LowestOffset), num(n.NextOffset), num(n.Lag), orDash(n.Batch), orDash(sum), status}
}

// writeText prints what was written, the servers as a table (terminal) or
// tab-separated lines without a header, and the result.
func (r *verifyReport) writeText(w io.Writer, terminal bool) error {
	var b strings.Builder
	if r.Batch != nil {
		fmt.Fprintf(&b, "wrote %d records at offsets %d to %d (%s %s)\n", r.Batch.Count, r.Batch.FirstOffset,
			r.Batch.FirstOffset+uint64(r.Batch.Count)-1, verifyMark, r.Batch.ID)
	} else {
		b.WriteString("wrote nothing (--no-write)\n")
	}
	rows := make([][]string, len(r.Servers))
	for i, n := range r.Servers {
		rows[i] = n.cells()
	}
	writeRows(&b, terminal, verifyColumns, rows, func(row int) string {
		if st := r.Servers[row].Status; st != verifyOK && st != verifyLagging {
			return colourBad
		}
		return ""
	})
	switch {
	case r.Range == nil || r.Range.To == r.Range.From:
		b.WriteString("range: no records to compare\n")
	default:
		fmt.Fprintf(&b, "range: offsets %d to %d (%d records) compared with %s\n", r.Range.From, r.Range.To-1, r.Range.To-r.Range.From, orDash(r.Reference))
	}
	fmt.Fprintf(&b, "result: %s\n", r.Result)
	_, err := io.WriteString(w, b.String())
	return err
}
