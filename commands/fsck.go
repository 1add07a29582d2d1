package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/proglogctl/proglogctl/logstore"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// Exit codes of fsck, beyond ExitOK (clean), ExitError (the check could not
// run: a node holds the directory, it is not a data directory, an I/O
// error) and ExitUsage.
const (
	ExitFsckCorrupt    = 3 // corrupt data, or Raft state the log disagrees with, left as it was
	ExitFsckRepaired   = 4 // problems were found and every one was repaired
	ExitFsckRepairable = 5 // problems --repair fixes were found; nothing was changed
)

// fsckBoltTimeout bounds the wait for Raft's store, which a running node
// holds.
const fsckBoltTimeout = time.Second

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:      "fsck",
		Usage:     "check a stopped node's data directory (or its log/ directory): every frame, index entry and the Raft state",
		ArgsUsage: "DATA_DIR",
		Description: `Verifies every record frame's checksum and every index entry of every segment, and, in a node's
data directory, Raft's store (opened read-only), its snapshots, and the log's applied Raft index against
them. It refuses a directory a running node holds. Without --repair it writes nothing.

--repair does what a node does when it opens its log after a crash: it truncates a torn tail of the
active segment to its last whole batch and rebuilds index files from the store. Corrupt data (a record
that fails its checksum with good records after it, as in a sealed segment) is reported with its file
and position and left alone; --truncate-corrupt, with --repair, cuts that segment to its good prefix
and moves the segments after it into log/fsck-<time>/, deleting nothing. For a replicated log the
better cure of corrupt data is usually to empty the node's data directory and let it rejoin.

Exit codes: 0 clean; 1 the check could not run (a node is running on the directory, not a data
directory, an I/O error); 2 usage; 3 corrupt data or inconsistent Raft state left as it was;
4 problems found and all repaired; 5 problems found that --repair fixes (nothing changed).`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "repair", Usage: "truncate a torn tail of the active segment and rebuild index files", EnvVars: []string{"PROGLOG_FSCK_REPAIR"}},
			&cli.BoolFlag{Name: "truncate-corrupt", Usage: "with --repair: cut the first corrupt segment to its good prefix and move later segments aside", EnvVars: []string{"PROGLOG_FSCK_TRUNCATE_CORRUPT"}},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "text (a table on a terminal, tab-separated lines otherwise) or json", Value: "text", EnvVars: []string{"PROGLOG_OUTPUT"}},
		},
		Action: runFsck,
	}
}

func runFsck(c *cli.Context) error {
	if c.NArg() != 1 {
		return UsageError{Err: errors.New("fsck: want one argument, the data directory (serve --data-dir) or its log/ directory")}
	}
	dir := c.Args().First()
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	o := logstore.CheckOptions{Repair: c.Bool("repair"), TruncateCorrupt: c.Bool("truncate-corrupt")}
	if o.TruncateCorrupt && !o.Repair {
		return UsageError{Err: errors.New("fsck: --truncate-corrupt needs --repair")}
	}
	r, err := fsck(dir, o)
	if err != nil {
		switch {
		case errors.Is(err, logstore.ErrLocked), errors.Is(err, raftfsm.ErrInUse):
			return fmt.Errorf("fsck: %s is in use: a node (or another fsck) is running on it; stop it first (%w)", dir, err)
		}
		return fmt.Errorf("fsck: %w", err)
	}
	code := r.exitCode()
	r.Result, r.ExitCode = fsckResults[code], code
	if err := writeReport(c.App.Writer, asJSON, r, r.writeText); err != nil {
		return err
	}
	if code != ExitOK {
		return CodedError{code, errors.New(fsckMessages[code])}
	}
	return nil
}

var (
	fsckResults = map[int]string{
		ExitOK: "clean", ExitFsckCorrupt: "corrupt", ExitFsckRepaired: "repaired", ExitFsckRepairable: "repairable",
	}
	fsckMessages = map[int]string{
		ExitFsckCorrupt:    "fsck: corrupt data or inconsistent Raft state (see above); nothing of it was changed",
		ExitFsckRepaired:   "fsck: repaired",
		ExitFsckRepairable: "fsck: problems found; run again with --repair to fix them",
	}
)

// jsonOutput reads --output: false for text, true for json.
func jsonOutput(c *cli.Context) (bool, error) {
	switch o := c.String("output"); o {
	case "text":
		return false, nil
	case "json":
		return true, nil
	default:
		return false, UsageError{Err: fmt.Errorf("%s: --output %q: want text or json", c.Command.Name, o)}
	}
}

// fsckReport is what fsck prints, as JSON or text.
type fsckReport struct {
	Dir           string        `json:"dir"`
	LogDir        string        `json:"log_dir"`
	LowestOffset  uint64        `json:"lowest_offset"`
	NextOffset    uint64        `json:"next_offset"`
	Segments      []fsckSegment `json:"segments"`
	OrphanIndexes []string      `json:"orphan_indexes,omitempty"`
	MovedTo       string        `json:"moved_to,omitempty"`
	Raft          *fsckRaft     `json:"raft,omitempty"`
	Problems      []string      `json:"problems,omitempty"`
	Notes         []string      `json:"notes,omitempty"`
	Result        string        `json:"result"`
	ExitCode      int           `json:"exit_code"`

	log *logstore.Report
}

type fsckSegment struct {
	BaseOffset   uint64 `json:"base_offset"`
	StoreFile    string `json:"store_file"`
	Sealed       bool   `json:"sealed"`
	Records      uint64 `json:"records"`
	Bytes        int64  `json:"bytes"`
	GoodBytes    int64  `json:"good_bytes"`
	IndexEntries int64  `json:"index_entries"`
	Status       string `json:"status"`
	Problem      string `json:"problem,omitempty"`
	BadFile      string `json:"bad_file,omitempty"`
	BadPos       *int64 `json:"bad_pos,omitempty"`
	IndexProblem string `json:"index_problem,omitempty"`
	Repair       string `json:"repair,omitempty"`
	DroppedBytes int64  `json:"dropped_bytes,omitempty"`
}

type fsckRaft struct {
	FirstIndex          uint64                `json:"first_index"`
	LastIndex           uint64                `json:"last_index"`
	CurrentTerm         uint64                `json:"current_term"`
	AppliedIndex        uint64                `json:"applied_index"`
	Snapshot            *raftfsm.SnapshotInfo `json:"snapshot,omitempty"`
	Snapshots           int                   `json:"snapshots"`
	UnfinishedSnapshots int                   `json:"unfinished_snapshots,omitempty"`
}

// fsck checks dir, a node's data directory or a log directory.
func fsck(dir string, o logstore.CheckOptions) (*fsckReport, error) {
	r := &fsckReport{Dir: dir}
	switch {
	case raftfsm.IsReplicaDir(dir):
		cr, err := raftfsm.Check(dir, o, fsckBoltTimeout)
		if err != nil {
			return nil, err
		}
		r.log, r.Problems, r.Notes = cr.Log, cr.Problems, cr.Notes
		rs := cr.Raft
		r.Raft = &fsckRaft{FirstIndex: rs.FirstIndex, LastIndex: rs.LastIndex, CurrentTerm: rs.CurrentTerm, AppliedIndex: cr.Applied,
			Snapshot: rs.Snapshot, Snapshots: rs.Snapshots, UnfinishedSnapshots: rs.Unfinished}
	case isLogDir(dir):
		lr, err := logstore.Check(dir, o)
		if err != nil {
			return nil, err
		}
		r.log = lr
	default:
		return nil, fmt.Errorf("%s is neither a node's data directory (raft/ and log/) nor a log directory (segment files)", dir)
	}
	lr := r.log
	r.LogDir, r.LowestOffset, r.NextOffset, r.OrphanIndexes, r.MovedTo = lr.Dir, lr.LowestOffset, lr.NextOffset, lr.OrphanIndexes, lr.MovedTo
	for _, s := range lr.Segments {
		fs := fsckSegment{BaseOffset: s.Base, StoreFile: s.StoreFile, Sealed: s.Sealed, Records: s.Records, Bytes: s.Bytes, GoodBytes: s.GoodBytes,
			IndexEntries: s.IndexEntries, Status: s.Status, Problem: s.Problem, BadFile: s.BadFile, IndexProblem: s.IndexProblem,
			Repair: s.Repair, DroppedBytes: s.DroppedBytes}
		if s.Problem != "" {
			pos := s.BadPos
			fs.BadPos = &pos
		}
		r.Segments = append(r.Segments, fs)
	}
	return r, nil
}

// isLogDir reports whether dir holds a log's LOCK or segment files.
func isLogDir(dir string) bool {
	des, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, de := range des {
		if n := de.Name(); n == "LOCK" || strings.HasSuffix(n, ".store") || strings.HasSuffix(n, ".index") {
			return true
		}
	}
	return false
}

func (r *fsckReport) exitCode() int {
	switch {
	case r.log.Corrupt() || len(r.Problems) > 0:
		return ExitFsckCorrupt
	case r.log.Repairable():
		return ExitFsckRepairable
	case r.log.Repaired():
		return ExitFsckRepaired
	}
	return ExitOK
}

var fsckColumns = []string{"BASE OFFSET", "STORE FILE", "SEGMENT", "RECORDS", "BYTES", "STATUS", "PROBLEM", "REPAIR"}

func (s fsckSegment) cells() []string {
	kind := "active"
	if s.Sealed {
		kind = "sealed"
	}
	var problem []string
	if s.Problem != "" {
		problem = append(problem, fmt.Sprintf("%s byte %d: %s", s.BadFile, *s.BadPos, s.Problem))
	}
	if s.IndexProblem != "" {
		problem = append(problem, "index: "+s.IndexProblem)
	}
	return []string{strconv.FormatUint(s.BaseOffset, 10), s.StoreFile, kind, strconv.FormatUint(s.Records, 10),
		strconv.FormatInt(s.Bytes, 10), s.Status, orDash(strings.Join(problem, "; ")), orDash(s.Repair)}
}

// writeText prints the segments as a table (terminal) or tab-separated
// lines without a header, then a summary of the log and Raft's state.
func (r *fsckReport) writeText(w io.Writer, terminal bool) error {
	var b strings.Builder
	rows := make([][]string, len(r.Segments))
	for i, sg := range r.Segments {
		rows[i] = sg.cells()
	}
	writeRows(&b, terminal, fsckColumns, rows, func(row int) string {
		if r.Segments[row].Status != logstore.SegmentOK {
			return colourBad
		}
		return ""
	})
	fmt.Fprintf(&b, "log %s: offsets [%d, %d) verify, segments: %d\n", r.LogDir, r.LowestOffset, r.NextOffset, len(r.Segments))
	for _, name := range r.OrphanIndexes {
		fmt.Fprintf(&b, "index file without a store: %s\n", name)
	}
	if r.MovedTo != "" {
		fmt.Fprintf(&b, "segments after the corrupt one moved to %s\n", r.MovedTo)
	}
	if rs := r.Raft; rs != nil {
		snap := "no snapshot"
		if rs.Snapshot != nil {
			snap = fmt.Sprintf("snapshot at index %d (term %d, %d kept)", rs.Snapshot.Index, rs.Snapshot.Term, rs.Snapshots)
		}
		fmt.Fprintf(&b, "raft: log entries %d to %d, term %d, %s; the log has applied index %d\n",
			rs.FirstIndex, rs.LastIndex, rs.CurrentTerm, snap, rs.AppliedIndex)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	fmt.Fprintf(&b, "result: %s\n", r.Result)
	_, err := io.WriteString(w, b.String())
	return err
}
