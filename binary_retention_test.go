package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// dirBytes is the size of the regular files under dir, a file with several
// links (a snapshot hard-links the log's segments) counted once.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// metricValue reads one unlabelled series from the /metrics at addr.
func metricValue(t *testing.T, addr, name string) (float64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestBinaryRetention runs three serve processes with small segments and a
// retention of four of them, produces ten times the retention, and checks
// that every node's log stays within the retention, that every node retains
// the same records, that servers and the metrics report the lowest offset,
// and that a read below it is OUT_OF_RANGE naming the bounds.
func TestBinaryRetention(t *testing.T) {
	const (
		segment   = 64 << 10
		retention = 4 * segment
		lineBytes = 100
		lines     = 10 * retention / lineBytes
	)
	dirs := make([]string, 3)
	c := newClusterWith(t, 3, clusterOptions{
		dataDir: func(i int) string {
			dirs[i] = filepath.Join(t.TempDir(), fmt.Sprintf("node-%d", i))
			return dirs[i]
		},
		// Raft snapshots and compacts its own log often too: that log holds
		// every record until then.
		serve: []string{"--segment-bytes", strconv.Itoa(segment), "--retention-bytes", strconv.Itoa(retention),
			"--raft-snapshot-interval", "500ms", "--raft-snapshot-threshold", "16", "--raft-trailing-logs", "16", "--raft-segment-bytes", "1048576"},
	})
	metrics := make([]string, len(c.procs))
	for i, p := range c.procs {
		metrics[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		p.args = append(p.args, "--metrics-addr", metrics[i])
		c.start(p)
		waitFor(t, 30*time.Second, p.name+" serving", func() bool { return c.serving(p) })
	}
	waitFor(t, 30*time.Second, "3 voters", func() bool { return c.voters(c.procs[0].rpcAddr) == 3 })

	// Ten times the retention, in five rounds; after each, every node takes
	// a snapshot, so Raft compacts its own log.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type row struct {
		ID           string  `json:"id"`
		NextOffset   *uint64 `json:"next_offset"`
		LowestOffset *uint64 `json:"lowest_offset"`
	}
	var rows []row
	const rounds = 5
	for round := range rounds {
		var in strings.Builder
		for i := round * lines / rounds; i < (round+1)*lines/rounds; i++ {
			fmt.Fprintf(&in, "%0*d\n", lineBytes-1, i)
		}
		file := filepath.Join(t.TempDir(), "lines")
		if err := os.WriteFile(file, []byte(in.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		snaps := make([]float64, len(metrics))
		for i, m := range metrics {
			snaps[i], _ = metricValue(t, m, "proglog_raft_snapshots_total")
		}
		// Entries are at most half a segment: batches of 200 lines fit.
		if out, errOut, code := c.runClient(ctx, "produce", "--file", file, "--batch", "200", "--quiet"); code != 0 {
			t.Fatalf("produce: exit %d\n%s%s", code, out, errOut)
		}
		end := uint64((round + 1) * lines / rounds)
		waitFor(t, 30*time.Second, fmt.Sprintf("every node at offset %d", end), func() bool {
			out, _, code := c.runClient(ctx, "servers", "--json")
			rows = nil
			if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 3 {
				return false
			}
			for _, r := range rows {
				if r.NextOffset == nil || *r.NextOffset != end {
					return false
				}
			}
			return true
		})
		for i, m := range metrics {
			waitFor(t, 30*time.Second, fmt.Sprintf("a snapshot on node-%d", i), func() bool {
				v, ok := metricValue(t, m, "proglog_raft_snapshots_total")
				return ok && v > snaps[i]
			})
		}
		for i, dir := range dirs {
			t.Logf("round %d, node-%d: log/ %d bytes, snapshots/ %d, raft/ %d, data dir %d", round+1, i, dirBytes(t, filepath.Join(dir, "log")),
				dirBytes(t, filepath.Join(dir, "snapshots")), dirBytes(t, filepath.Join(dir, "raft")), dirBytes(t, dir))
		}
	}
	lowest := *rows[0].LowestOffset
	for _, r := range rows {
		if *r.LowestOffset != lowest {
			t.Errorf("lowest offsets differ: %s %d, %s %d", rows[0].ID, lowest, r.ID, *r.LowestOffset)
		}
	}
	if lowest == 0 {
		t.Fatal("no node dropped a segment")
	}
	// What is left is at most the retention and the segment being filled.
	if kept := lines - lowest; kept*(lineBytes+20) > retention+segment {
		t.Errorf("the nodes keep offsets %d to %d, %d records of %d bytes: more than the retention", lowest, lines-1, kept, lineBytes)
	}
	for i, dir := range dirs {
		if logBytes := dirBytes(t, filepath.Join(dir, "log")); logBytes > retention+segment+4<<10 {
			t.Errorf("node-%d's log holds %d bytes, more than the retention %d and a segment", i, logBytes, retention)
		}
		// Two snapshots are kept, each at most the log (hard links to its
		// segments while they are retained).
		if snaps := dirBytes(t, filepath.Join(dir, "snapshots")); snaps > 2*(retention+segment+4<<10) {
			t.Errorf("node-%d's snapshots hold %d bytes, more than two logs of the retention %d", i, snaps, retention)
		}
		// Raft's own store keeps 16 entries behind a snapshot and what came
		// since (a round at most, some 600 KB here) in segment files of
		// 1 MiB, which compaction deletes.
		if rb := dirBytes(t, filepath.Join(dir, "raft")); rb > 4<<20 {
			t.Errorf("node-%d's Raft store holds %d bytes", i, rb)
		}
		if v, ok := metricValue(t, metrics[i], "proglog_log_lowest_offset"); !ok || uint64(v) != lowest {
			t.Errorf("node-%d: proglog_log_lowest_offset = %v (%v), want %d", i, v, ok, lowest)
		}
	}

	// servers' plain output has the lowest offset as its eighth column.
	out, _, code := c.runClient(ctx, "servers")
	if code != 0 {
		t.Fatalf("servers: exit %d", code)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(line, "\t"); len(f) < 8 || f[7] != strconv.FormatUint(lowest, 10) {
			t.Errorf("servers line %q does not have the lowest offset %d in column 8", line, lowest)
		}
	}

	// A read below the lowest offset is OUT_OF_RANGE, naming the bounds.
	for _, p := range c.procs {
		cl := logv1.NewLogClient(c.dial(p.rpcAddr))
		_, err := cl.Consume(ctx, &logv1.ConsumeRequest{Offset: lowest - 1})
		want := fmt.Sprintf("offset %d is below the lowest retained offset %d (the log holds %d to %d)", lowest-1, lowest, lowest, lines-1)
		if status.Code(err) != codes.OutOfRange || status.Convert(err).Message() != want {
			t.Errorf("%s Consume(%d) = %v, want OUT_OF_RANGE %q", p.name, lowest-1, err, want)
		}
		if res, err := cl.Consume(ctx, &logv1.ConsumeRequest{Offset: lowest}); err != nil || string(res.Record.Value) != fmt.Sprintf("%0*d", lineBytes-1, lowest) {
			t.Errorf("%s Consume(%d) = %v, %v", p.name, lowest, res, err)
		}
	}
	// The command starts at the lowest retained offset and says so.
	out, errOut, code := c.runClient(ctx, "consume", "--from", "0", "--count", "1")
	if code != 0 || !strings.Contains(errOut, fmt.Sprintf("below the lowest retained offset %d", lowest)) || !strings.HasPrefix(out, fmt.Sprintf("%d\t", lowest)) {
		t.Errorf("consume --from 0 --count 1: exit %d, stdout %q, stderr %q; want 0, the record at %d, and a note naming it the lowest retained offset", code, out, errOut, lowest)
	}
}
