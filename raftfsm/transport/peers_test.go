package transport

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestPeerDownAndBackIsLoggedOnce: a follower that fails many heartbeats is
// logged going down once, reminded of once a minute, and logged coming back
// with how long it was down and how many RPCs failed; the leader's view of its
// replication follows the answers.
func TestPeerDownAndBackIsLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	p := newPeers(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1_000_000, 0)
	p.now = func() time.Time { return now }
	const id, addr = raft.ServerID("node-1"), raft.ServerAddress("127.0.0.1:9")

	p.appendResult(id, addr, &raft.AppendEntriesRequest{PrevLogEntry: 10, Entries: make([]*raft.Log, 5)},
		&raft.AppendEntriesResponse{Success: true, LastLog: 10}, nil)
	if st := p.stats([]string{"node-1", "node-2"}, 20); st[0].Match != 15 || st[0].LagEntries != 5 || st[0].Down ||
		!st[0].LastContact.Equal(now) || st[1].LagEntries != 20 || !st[1].LastContact.IsZero() {
		t.Fatalf("stats after one append = %+v", st)
	}
	refused := errors.New("connection refused")
	for range 150 { // 90 s of heartbeats every 0.6 s
		now = now.Add(600 * time.Millisecond)
		p.appendResult(id, addr, &raft.AppendEntriesRequest{}, &raft.AppendEntriesResponse{}, refused)
	}
	if st := p.stats([]string{"node-1"}, 20); !st[0].Down || st[0].LagEntries != 5 {
		t.Fatalf("stats while down = %+v", st)
	}
	now = now.Add(600 * time.Millisecond)
	p.appendResult(id, addr, &raft.AppendEntriesRequest{}, &raft.AppendEntriesResponse{Success: true, LastLog: 20}, nil)
	if st := p.stats([]string{"node-1"}, 20); st[0].Down || st[0].LagEntries != 0 {
		t.Fatalf("stats after coming back = %+v", st)
	}

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("logged %d lines, want 3 (down, still down, back):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		`level=WARN msg="peer unreachable" peer=node-1 peer_addr=127.0.0.1:9 err="connection refused"`,
		`level=WARN msg="peer unreachable still" peer=node-1 peer_addr=127.0.0.1:9 down_for=1m0s failed_rpcs=101`,
		`level=INFO msg="peer reachable again" peer=node-1 peer_addr=127.0.0.1:9 down_for=1m30s failed_rpcs=150`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %s\nwant it to contain %s", i, lines[i], want)
		}
	}
}

// TestRaftPeerFailureLinesAreDebug: Raft's error line for every failed
// heartbeat goes to debug, its other errors stay errors.
func TestRaftPeerFailureLinesAreDebug(t *testing.T) {
	var buf bytes.Buffer
	l := NewHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft")
	l.Error("failed to heartbeat to", "peer", "127.0.0.1:9", "backoff time", time.Second, "error", "refused")
	l.Error("failed to appendEntries to", "peer", raft.Server{ID: "node-1"}, "error", "refused")
	l.Error("failed to get log", "index", 3, "error", "boom")
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="failed to heartbeat to"`,
		`level=DEBUG msg="failed to appendEntries to"`,
		`level=ERROR msg="failed to get log"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
