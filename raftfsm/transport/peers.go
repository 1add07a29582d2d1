package transport

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// peers follows, on the leader's side of the transport, how each follower
// answers Raft's AppendEntries and InstallSnapshot RPCs: the last index it is
// known to hold (for its replication lag) and when it last answered. It also
// logs a follower going down and coming back, once each, in place of Raft's
// error line for every failed heartbeat (which the hclog adapter turns down to
// debug): "peer unreachable" at the first failure, "peer unreachable still"
// at most once per peerReminder while it lasts, and "peer reachable again"
// with how long it was down and how many RPCs failed.
//
// mu guards peers; the transport's RPCs call it from Raft's replication
// goroutines, Stats from any goroutine.
type peers struct {
	logger *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	peers map[raft.ServerID]*peerState
}

// peerReminder is how often a peer that stays down is mentioned again.
const peerReminder = time.Minute

type peerState struct {
	addr        raft.ServerAddress
	match       uint64    // last Raft index the follower is known to hold
	lastContact time.Time // last successful RPC; zero if none
	down        bool
	downSince   time.Time
	reminded    time.Time
	failures    int // failed RPCs since it went down
}

func newPeers(logger *slog.Logger) *peers {
	return &peers{logger: logger, now: time.Now, peers: map[raft.ServerID]*peerState{}}
}

func (p *peers) stateLocked(id raft.ServerID, addr raft.ServerAddress) *peerState {
	s := p.peers[id]
	if s == nil {
		s = &peerState{}
		p.peers[id] = s
	}
	s.addr = addr
	return s
}

// ok records a successful RPC to id, which holds the log up to index match.
func (p *peers) ok(id raft.ServerID, addr raft.ServerAddress, match uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stateLocked(id, addr)
	now := p.now()
	s.match, s.lastContact = match, now
	if s.down {
		p.logger.Info("peer reachable again", "peer", id, "peer_addr", addr,
			"down_for", now.Sub(s.downSince).Round(time.Millisecond).String(), "failed_rpcs", s.failures)
		s.down, s.failures = false, 0
	}
}

// failed records a failed RPC to id.
func (p *peers) failed(id raft.ServerID, addr raft.ServerAddress, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stateLocked(id, addr)
	now := p.now()
	s.failures++
	switch {
	case !s.down:
		s.down, s.downSince, s.reminded, s.failures = true, now, now, 1
		p.logger.Warn("peer unreachable", "peer", id, "peer_addr", addr, "err", err)
	case now.Sub(s.reminded) >= peerReminder:
		s.reminded = now
		p.logger.Warn("peer unreachable still", "peer", id, "peer_addr", addr,
			"down_for", now.Sub(s.downSince).Round(time.Second).String(), "failed_rpcs", s.failures, "err", err)
	}
}

// appendResult records the outcome of an AppendEntries RPC.
func (p *peers) appendResult(id raft.ServerID, addr raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, err error) {
	switch {
	case err != nil:
		p.failed(id, addr, err)
	case resp.Success:
		// LastLog is the follower's last index before this request; a
		// successful append ends at the request's last entry.
		p.ok(id, addr, max(resp.LastLog, req.PrevLogEntry+uint64(len(req.Entries))))
	default:
		// Refused (an older term, or a log to rewind): it answered.
		p.ok(id, addr, min(resp.LastLog, p.match(id)))
	}
}

func (p *peers) match(id raft.ServerID) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.peers[id]; s != nil {
		return s.match
	}
	return 0
}

// FollowerStats is the replication state of one follower as the leader sees
// it.
type FollowerStats struct {
	ID string
	// Match is the last Raft index the follower is known to hold.
	Match uint64
	// LagEntries is how many Raft entries the follower trails the leader's
	// last index by.
	LagEntries uint64
	// LastContact is when it last answered an RPC; zero if never.
	LastContact time.Time
	// Down says the last RPC to it failed.
	Down bool
}

// FollowerStats returns the state of each follower in ids, as of the
// leader's lastIndex, as the RPCs sent through t have found them.
func (t *Transport) FollowerStats(ids []string, lastIndex uint64) []FollowerStats {
	return t.peers.stats(ids, lastIndex)
}

// stats returns the state of each follower in ids, as of lastIndex.
func (p *peers) stats(ids []string, lastIndex uint64) []FollowerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]FollowerStats, 0, len(ids))
	for _, id := range ids {
		fs := FollowerStats{ID: id, LagEntries: lastIndex}
		if s := p.peers[raft.ServerID(id)]; s != nil {
			fs.Match, fs.LastContact, fs.Down = s.match, s.lastContact, s.down
			fs.LagEntries = lastIndex - min(lastIndex, s.match)
		}
		out = append(out, fs)
	}
	return out
}

// AppendEntries implements raft.Transport, recording the outcome.
func (t *Transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	t.peers.appendResult(id, target, args, resp, err)
	return err
}

// InstallSnapshot implements raft.Transport, recording the outcome.
func (t *Transport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	switch {
	case err != nil:
		t.peers.failed(id, target, err)
	case resp.Success:
		t.peers.ok(id, target, args.LastLogIndex)
	default:
		t.peers.ok(id, target, t.peers.match(id))
	}
	return err
}

// pipelineResult records the outcome of a pipelined AppendEntries.
func (t *Transport) pipelineResult(id raft.ServerID, target raft.ServerAddress) func(raft.AppendFuture) {
	return func(f raft.AppendFuture) {
		err := f.Error()
		if err != nil {
			err = fmt.Errorf("pipelined appendEntries: %w", err)
		}
		t.peers.appendResult(id, target, f.Request(), f.Response(), err)
	}
}
