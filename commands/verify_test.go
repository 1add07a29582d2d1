package commands

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verifyJSON runs verify -o json with args and decodes its report.
func verifyJSON(t *testing.T, wantCode int, args ...string) verifyReport {
	t.Helper()
	out, errOut, err := run(t, append([]string{"verify", "-o", "json", "--timeout", "5s"}, args...)...)
	if got := ExitCode(err); got != wantCode {
		t.Fatalf("verify %v: exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", args, got, err, wantCode, out, errOut)
	}
	var r verifyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("verify -o json: %v\n%s", err, out)
	}
	return r
}

func server(t *testing.T, r verifyReport, id string) verifyNode {
	t.Helper()
	for _, s := range r.Servers {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no server %s in %+v", id, r.Servers)
	return verifyNode{}
}

func TestVerify_healthy(t *testing.T) {
	c := startDev(t, 3)
	mustRun(t, "", "produce", "a", "b", "c")
	r := verifyJSON(t, ExitOK)
	if r.Batch == nil || r.Batch.Count != 10 || r.Batch.FirstOffset != 3 || len(r.Servers) != 3 || r.Result != "ok" {
		t.Fatalf("report %+v", r)
	}
	if r.Range == nil || r.Range.From != 0 || r.Range.To != 13 {
		t.Fatalf("range %+v, want offsets 0 to 13", r.Range)
	}
	leaders := 0
	for _, s := range r.Servers {
		if s.Batch != verifyOK || s.RangeSHA256 == "" || s.RangeSHA256 != r.Servers[0].RangeSHA256 || s.NextOffset == nil || *s.NextOffset != 13 || s.Lag == nil || *s.Lag != 0 || s.Status != verifyOK {
			t.Errorf("server %+v", s)
		}
		if s.IsLeader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders", leaders)
	}
	// The marked batch is in the log, as the output says.
	out := mustRun(t, "", "verify", "--range", "5", "--count", "2", "--max-lag", "0")
	if !strings.HasPrefix(out, "wrote 2 records at offsets 13 to 14 (proglogctl-verify ") || !strings.Contains(out, "range: offsets 10 to 14 (5 records) compared with dev-") || !strings.HasSuffix(out, "result: ok\n") {
		t.Fatalf("text output:\n%s", out)
	}
	got := mustRun(t, "", "consume", "--from", "3", "--count", "1", "-o", "raw")
	if !strings.HasPrefix(got, "proglogctl-verify ") || !strings.HasSuffix(got, " 0\n") {
		t.Fatalf("offset 3 holds %q, want the first record of the marked batch", got)
	}
	if r := verifyJSON(t, ExitOK, "--no-write"); r.Batch != nil || r.Range.To != 15 {
		t.Fatalf("--no-write: %+v", r)
	}
	_ = c
}

func TestVerify_unreachable(t *testing.T) {
	startDev(t, 3)
	var rows []serverRow
	if err := json.Unmarshal([]byte(mustRun(t, "", "servers", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	var follower serverRow
	for _, r := range rows {
		if !r.IsLeader {
			follower = r
		}
	}
	// Connections to the follower go to a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	r := verifyJSON(t, ExitUnavailable, "--connect-to", follower.RPCAddr+"="+closed)
	if r.Result != "unreachable" {
		t.Fatalf("result %q", r.Result)
	}
	for _, s := range r.Servers {
		want := verifyOK
		if s.ID == follower.ID {
			want = verifyUnreachable
		}
		if s.Status != want {
			t.Errorf("server %s: %s %v, want %s", s.ID, s.Status, s.Problems, want)
		}
	}
}

// TestVerify_disagreement changes a record on one node while the cluster is
// stopped, keeping its checksum valid (fsck cannot see it), and expects
// verify to name that node and offset.
func TestVerify_disagreement(t *testing.T) {
	isolateConfig(t)
	data := t.TempDir()
	c := serveDev(t, 3, 0, data)
	var values []string
	for i := range 20 {
		values = append(values, fmt.Sprintf("rec-%02d", i))
	}
	mustRun(t, "", append([]string{"produce"}, values...)...)
	c.waitInSync(t)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	rewriteRecord(t, filepath.Join(data, "dev", "dev-2", "log"), []byte("rec-07"), []byte("REC-07"))
	fsckOut(t, filepath.Join(data, "dev", "dev-2"), ExitOK) // a valid frame
	serveDev(t, 3, 0, data)

	r := verifyJSON(t, ExitError, "--no-write")
	if r.Result != "disagreement" || r.Range == nil || r.Range.From != 0 || r.Range.To != 20 {
		t.Fatalf("report %+v", r)
	}
	for _, s := range r.Servers {
		if s.ID == "dev-2" {
			if s.Status != verifyDiffers || !strings.Contains(strings.Join(s.Problems, ";"), "differ from dev-") || !strings.Contains(strings.Join(s.Problems, ";"), "at offset 7") {
				t.Errorf("dev-2: %s %v, want records differing at offset 7", s.Status, s.Problems)
			}
		} else if s.Status != verifyOK {
			t.Errorf("server %s: %s %v", s.ID, s.Status, s.Problems)
		}
	}
	// With a batch written, the batch agrees and the range still does not.
	r = verifyJSON(t, ExitError)
	if s := server(t, r, "dev-2"); s.Batch != verifyOK || s.Status != verifyDiffers {
		t.Fatalf("dev-2: %+v", s)
	}
}

// rewriteRecord replaces the payload from with to (of the same length) in
// the store files of the log in dir, with a checksum that matches.
func rewriteRecord(t *testing.T, dir string, from, to []byte) {
	t.Helper()
	stores, _ := filepath.Glob(filepath.Join(dir, "*.store"))
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, path := range stores {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Frames after the 16-byte header: len u32 | crc u32 | body, the
		// body offset u64 | flags u8 | [time i64] | [metaLen u16 | meta] |
		// payload (flags: 8 time, 2 metadata).
		for pos := 16; pos+8 <= len(b); {
			n := int(binary.BigEndian.Uint32(b[pos:]))
			body := b[pos+8 : pos+8+n]
			payload := body[9:]
			if body[8]&8 != 0 {
				payload = payload[8:]
			}
			if body[8]&2 != 0 {
				payload = payload[2+int(binary.BigEndian.Uint16(payload)):]
			}
			if bytes.Equal(payload, from) {
				copy(payload, to)
				binary.BigEndian.PutUint32(b[pos+4:], crc32.Checksum(body, castagnoli))
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			pos += 8 + n
		}
	}
	t.Fatalf("no record %q in %s", from, dir)
}

// TestVerify_output renders a report with every kind of server.
func TestVerify_output(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	sum := strings.Repeat("ab", 32)
	r := &verifyReport{
		Batch:     &verifyBatch{ID: "0123456789abcdef", FirstOffset: 90, Count: 10},
		Range:     &verifyRange{From: 0, To: 100},
		Reference: "n1",
		Servers: []verifyNode{
			{serverPosition: serverPosition{ID: "n1", RPCAddr: "10.0.0.1:8400", IsLeader: true, State: "Leader", LowestOffset: u(0), NextOffset: u(100), Lag: u(0)}, Batch: "ok", RangeSHA256: sum, Status: verifyOK},
			{serverPosition: serverPosition{ID: "n2", RPCAddr: "10.0.0.2:8400", State: "Follower", LowestOffset: u(0), NextOffset: u(100), Lag: u(0)}, Batch: "ok", RangeSHA256: strings.Repeat("cd", 32), Status: verifyDiffers,
				Problems: []string{"records differ from n1's at offset 42"}},
			{serverPosition: serverPosition{ID: "n3", RPCAddr: "10.0.0.3:8400"}, Status: verifyUnreachable, Problems: []string{"Unavailable: connection error: desc = \"transport: Error while dialing: dial tcp 10.0.0.3:8400: connect: connection refused\""}},
		},
		Result: "disagreement", ExitCode: ExitError,
	}
	var text, js bytes.Buffer
	if err := r.writeText(&text, false); err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(&js)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	golden(t, "verify_plain", text.String())
	golden(t, "verify_json", js.String())
}

func TestVerify_lag(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	nodes := func() []*verifyNode {
		return []*verifyNode{
			{serverPosition: serverPosition{ID: "a", NextOffset: u(100)}, Status: verifyOK},
			{serverPosition: serverPosition{ID: "b", NextOffset: u(120), IsLeader: true}, Status: verifyOK},
			{serverPosition: serverPosition{ID: "c", NextOffset: u(130)}, Status: verifyOK}, // ahead of what the leader said a moment before
			{serverPosition: serverPosition{ID: "d"}, Status: verifyUnreachable},
		}
	}
	tests := []struct {
		name   string
		maxLag int64
		want   []string // statuses of a, b, c, d
	}{
		{"reported only", -1, []string{verifyLagging, verifyOK, verifyOK, verifyUnreachable}},
		{"within max", 20, []string{verifyLagging, verifyOK, verifyOK, verifyUnreachable}},
		{"over max", 19, []string{verifyDiffers, verifyOK, verifyOK, verifyUnreachable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := nodes()
			ref := referenceNext(ns)
			if ref != 120 {
				t.Fatalf("reference next offset %d, want the leader's 120", ref)
			}
			judgeLag(ns, ref, tt.maxLag, time.Second)
			for i, n := range ns {
				if n.Status != tt.want[i] {
					t.Errorf("%s: %s %v, want %s", n.ID, n.Status, n.Problems, tt.want[i])
				}
			}
			if *ns[0].Lag != 20 || *ns[2].Lag != 0 || ns[3].Lag != nil {
				t.Errorf("lags %d, %d, %v", *ns[0].Lag, *ns[2].Lag, ns[3].Lag)
			}
		})
	}
	// No leader answers: the most advanced server is the reference.
	ns := nodes()
	ns[1].IsLeader = false
	if ref := referenceNext(ns); ref != 130 {
		t.Fatalf("without a leader: reference %d, want 130", ref)
	}
}
