package raftfsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// testCluster is a cluster of replicas in one process on raft's in-memory
// transport, which can partition and restart its members.
type testCluster struct {
	t     testing.TB
	dirs  []string
	nodes []*Log
	trans []*raft.InmemTransport
	conf  func(i int) Config
	// logger is every node's Identity.Logger.
	logger *slog.Logger
	// cut[i][j] says the link from i to j is down.
	mu  sync.Mutex
	cut map[[2]int]bool
}

func nodeID(i int) string { return fmt.Sprintf("node-%d", i) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testIdentity is replica i's identity in dir on tr, logging to t.Log.
func testIdentity(t testing.TB, dir string, i int, tr raft.Transport, bootstrap bool) replica.Identity {
	return replica.Identity{Dir: dir, NodeID: nodeID(i), Bootstrap: bootstrap, Transport: tr, Logger: testLogger(t)}
}

// testConfig is a configuration with fast timeouts and small segments.
func testConfig() Config {
	c := DefaultConfig()
	c.HeartbeatTimeout = 500 * time.Millisecond
	c.ElectionTimeout = 500 * time.Millisecond
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotInterval = time.Hour // tests snapshot explicitly
	c.SnapshotBytes = 0
	c.RaftSegmentBytes = 16 << 10
	c.SnapshotThreshold = 1 << 40
	c.TrailingLogs = 64
	c.Store.MaxStoreBytes = 64 << 10
	c.Store.MaxRecordBytes = 8 << 10
	c.MaxEntryBytes = 32 << 10
	c.ShutdownTransferTimeout = 2 * time.Second
	return c
}

func newTestCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith is newTestCluster with tune, when set, adjusting each
// node's configuration; dir is the node's data directory.
func newTestClusterWith(t testing.TB, n int, tune func(i int, dir string, c *Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, cut: map[[2]int]bool{}}
	tc.conf = func(i int) Config {
		c := testConfig()
		if tune != nil {
			tune(i, tc.dirs[i], &c)
		}
		return c
	}
	for i := 0; i < n; i++ {
		tc.dirs = append(tc.dirs, filepath.Join(t.TempDir(), nodeID(i)))
		tc.nodes = append(tc.nodes, nil)
		tc.trans = append(tc.trans, nil)
	}
	for i := 0; i < n; i++ {
		tc.start(i, i == 0)
	}
	t.Cleanup(tc.close)
	joined := []int{0}
	for i := 1; i < n; i++ {
		// A slow new member can cost the leader its leadership: join again
		// through whichever joined node leads.
		for tries := 0; ; tries++ {
			err := tc.leader(joined...).Join(nodeID(i), string(tc.trans[i].LocalAddr()))
			if err == nil {
				break
			}
			if !errors.Is(err, replica.ErrNotLeader) || tries == 20 {
				t.Fatalf("Join(%s): %v", nodeID(i), err)
			}
		}
		joined = append(joined, i)
	}
	// Every node knows every member before a test cuts any off: a follower
	// that missed a member's joining refuses that member's votes ("not in
	// configuration"), so two such nodes without the third never elect.
	waitFor(t, 20*time.Second, fmt.Sprintf("every node to know all %d members", n), func() bool {
		for _, l := range tc.nodes {
			if s, err := l.Servers(); err != nil || len(s) != n {
				return false
			}
		}
		return true
	})
	return tc
}

// start (re)starts node i on a fresh in-memory transport at its address.
func (tc *testCluster) start(i int, bootstrap bool) {
	tc.t.Helper()
	_, tr := raft.NewInmemTransport(raft.ServerAddress("mem-" + nodeID(i)))
	tc.trans[i] = tr
	l, err := New(tc.identity(i, tr, bootstrap), tc.conf(i))
	if err != nil {
		tc.t.Fatalf("New(%s): %v", nodeID(i), err)
	}
	tc.mu.Lock()
	tc.nodes[i] = l
	tc.mu.Unlock()
	tc.relink()
}

// identity is node i's identity on tr.
func (tc *testCluster) identity(i int, tr raft.Transport, bootstrap bool) replica.Identity {
	if tc.logger == nil {
		tc.logger = testLogger(tc.t)
	}
	return replica.Identity{Dir: tc.dirs[i], NodeID: nodeID(i), Bootstrap: bootstrap, Transport: tr, Logger: tc.logger}
}

// relink connects every pair of running nodes whose link is not cut.
func (tc *testCluster) relink() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for i, a := range tc.trans {
		if tc.nodes[i] == nil {
			continue
		}
		a.DisconnectAll()
		for j, b := range tc.trans {
			if i != j && tc.nodes[j] != nil && !tc.cut[[2]int{i, j}] {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
}

// leaveBehind stops node lagger once it holds the first have values, appends
// more values through the two others, and has both snapshot and compact past
// everything the lagger has, so that whichever leads must send it a
// snapshot when it starts again. Compaction keeps TrailingLogs (64)
// entries, far fewer than the lagger misses.
func (tc *testCluster) leaveBehind(lagger int, have, more uint64) {
	tc.t.Helper()
	tc.waitApplied(lagger, have)
	laggerLast := tc.nodes[lagger].raft.LastIndex()
	tc.stop(lagger)
	others := []int{(lagger + 1) % 3, (lagger + 2) % 3}
	tc.appendValues(have, more, others...)
	for _, i := range others {
		tc.waitApplied(i, have+more)
		if err := tc.nodes[i].raft.Snapshot().Error(); err != nil {
			tc.t.Fatalf("Snapshot on %s: %v", nodeID(i), err)
		}
		if first, err := tc.nodes[i].stores.FirstIndex(); err != nil || first <= laggerLast+1 {
			tc.t.Fatalf("%s's log was not compacted past the lagger's last index %d: first index %d, %v", nodeID(i), laggerLast, first, err)
		}
	}
}

// partition cuts every link between the nodes in group and the others.
func (tc *testCluster) partition(group ...int) {
	in := map[int]bool{}
	for _, g := range group {
		in[g] = true
	}
	tc.mu.Lock()
	for i := range tc.nodes {
		for j := range tc.nodes {
			if in[i] != in[j] {
				tc.cut[[2]int{i, j}] = true
			}
		}
	}
	tc.mu.Unlock()
	tc.relink()
}

func (tc *testCluster) heal() {
	tc.mu.Lock()
	tc.cut = map[[2]int]bool{}
	tc.mu.Unlock()
	tc.relink()
}

func (tc *testCluster) stop(i int) {
	tc.t.Helper()
	tc.mu.Lock()
	n := tc.nodes[i]
	tc.nodes[i] = nil
	tc.mu.Unlock()
	if err := n.Close(); err != nil {
		tc.t.Errorf("Close(%s): %v", nodeID(i), err)
	}
	tc.relink()
}

func (tc *testCluster) close() {
	for i, n := range tc.nodes {
		if n != nil {
			n.Close()
			tc.nodes[i] = nil
		}
	}
}

// leader waits for the running nodes in among (all when empty) to agree on a
// leader among them, and returns it.
func (tc *testCluster) leader(among ...int) *Log {
	tc.t.Helper()
	if len(among) == 0 {
		for i, n := range tc.nodes {
			if n != nil {
				among = append(among, i)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var changed []<-chan struct{}
		ids := map[string]bool{}
		for _, i := range among {
			id, _, ch := tc.nodes[i].Leader()
			ids[id] = true
			changed = append(changed, ch)
		}
		if len(ids) == 1 && !ids[""] {
			for _, i := range among {
				if tc.nodes[i].IsLeader() {
					return tc.nodes[i]
				}
			}
		}
		// Wait for any member's view of the leader to change.
		done := make(chan struct{})
		var once sync.Once
		for _, ch := range changed {
			go func() {
				select {
				case <-ch:
					once.Do(func() { close(done) })
				case <-ctx.Done():
				}
			}()
		}
		select {
		case <-done:
		case <-ctx.Done():
			tc.t.Fatalf("nodes %v did not agree on a leader within 10s (views: %v)", among, ids)
		}
	}
}

// leaderIndex waits for a leader among the running nodes and returns its index.
func (tc *testCluster) leaderIndex() int {
	tc.t.Helper()
	l := tc.leader()
	for i, n := range tc.nodes {
		if n == l {
			return i
		}
	}
	tc.t.Fatal("the leader is not a member of the cluster")
	return -1
}

// waitApplied waits until node i has applied offsets below next.
func (tc *testCluster) waitApplied(i int, next uint64) {
	tc.t.Helper()
	if next == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tc.nodes[i].Wait(ctx, next-1); err != nil {
		tc.t.Fatalf("%s did not apply offset %d (next offset %d): %v", nodeID(i), next-1, tc.nodes[i].NextOffset(), err)
	}
}

func value(i uint64) []byte { return fmt.Appendf(nil, "value-%d", i) }

// checkLog verifies node i holds exactly value(0..next-1) at their offsets.
func (tc *testCluster) checkLog(i int, next uint64) {
	tc.t.Helper()
	tc.waitApplied(i, next)
	n := tc.nodes[i]
	if got := n.NextOffset(); got != next {
		tc.t.Fatalf("%s NextOffset = %d, want %d", nodeID(i), got, next)
	}
	for off := n.LowestOffset(); off < next; {
		recs, err := n.ReadBatch(off, 64<<10)
		if err != nil {
			tc.t.Fatalf("%s ReadBatch(%d): %v", nodeID(i), off, err)
		}
		for _, r := range recs {
			if !bytes.Equal(r, value(off)) {
				tc.t.Fatalf("%s offset %d = %q, want %q", nodeID(i), off, r, value(off))
			}
			off++
		}
	}
}

// appendValues appends value(from..from+n-1) through l in batches of up to 25,
// checking each batch lands at its offsets.
func appendValues(t testing.TB, l *Log, from, n uint64) {
	t.Helper()
	for i := from; i < from+n; {
		batch := values(i, from+n)
		off, err := l.Append(context.Background(), batch...)
		if err != nil {
			t.Fatalf("Append(%d..%d): %v", i, i+uint64(len(batch))-1, err)
		}
		if off != i {
			t.Fatalf("Append(%d..) got offset %d", i, off)
		}
		i += uint64(len(batch))
	}
}

// values returns value(i..) up to 25 values and below end.
func values(i, end uint64) [][]byte {
	var batch [][]byte
	for j := i; j < end && len(batch) < 25; j++ {
		batch = append(batch, value(j))
	}
	return batch
}

// appendValues appends value(from..from+n-1) in batches of up to 25 through
// whichever of the nodes among (all running ones when empty) leads, checking
// each batch lands at its offsets. Leadership may move meanwhile: a batch a
// follower refused is sent again to the leader, and one whose outcome a lost
// leadership left unknown is first looked up in the new leader's log.
func (tc *testCluster) appendValues(from, n uint64, among ...int) {
	tc.t.Helper()
	for i, failed := from, 0; i < from+n; {
		if failed > 100 {
			tc.t.Fatalf("gave up appending at offset %d after %d failed tries", i, failed)
		}
		batch := values(i, from+n)
		l := tc.leader(among...)
		off, err := l.Append(context.Background(), batch...)
		if err != nil {
			failed++
		}
		switch {
		case err == nil:
			if off != i {
				tc.t.Fatalf("Append(%d..) got offset %d", i, off)
			}
			i += uint64(len(batch))
		case errors.Is(err, replica.ErrNotLeader):
		case errors.Is(err, replica.ErrLeadershipLost):
			l = tc.leader(among...)
			if err := l.raft.Barrier(10 * time.Second).Error(); err != nil {
				continue // leadership moved again; look again
			}
			if next := l.NextOffset(); next > i {
				if got, err := l.Read(i); err != nil || !bytes.Equal(got, value(i)) {
					tc.t.Fatalf("after a lost leadership offset %d holds %q, %v; want %q", i, got, err, value(i))
				}
				i += uint64(len(batch))
			}
		default:
			tc.t.Fatalf("Append(%d..): %v", i, err)
		}
	}
}

func TestReplicatesToAll(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.appendValues(0, 300)
	leader := tc.leader()
	for i := range tc.nodes {
		tc.checkLog(i, 300)
	}
	servers, err := leader.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("Servers() = %v, %v", servers, err)
	}
}

func TestAppendOnFollower(t *testing.T) {
	tc := newTestCluster(t, 3)
	leader := tc.leader()
	for _, n := range tc.nodes {
		if n == leader {
			continue
		}
		_, err := n.Append(context.Background(), []byte("x"))
		var nl *replica.NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderAddr == "" {
			t.Fatalf("Append on a follower: %v, want replica.NotLeaderError naming the leader", err)
		}
	}
	// Bad input never reaches Raft.
	if off, err := leader.Append(context.Background()); err != nil || off != 0 {
		t.Fatalf("empty Append = %d, %v", off, err)
	}
	if _, err := leader.Append(context.Background(), make([]byte, 8<<10+1)); err == nil {
		t.Fatal("oversize record accepted")
	}
	if got := leader.NextOffset(); got != 0 {
		t.Fatalf("bad appends moved NextOffset to %d", got)
	}
}

func TestAppendAfterClose(t *testing.T) {
	tc := newTestCluster(t, 1)
	l := tc.nodes[0]
	tc.stop(0)
	if _, err := l.Append(context.Background(), []byte("x")); !errors.Is(err, replica.ErrClosed) {
		t.Fatalf("Append after Close = %v, want replica.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConcurrentAppendsGetDenseOffsets(t *testing.T) {
	tc := newTestCluster(t, 3)
	const writers, per = 16, 50
	// Each attempt appends values of its own, so a value seen twice can only
	// be an entry applied twice. An attempt whose outcome a lost leadership
	// left unknown is retried under new values, and may be in the log too.
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < per; k++ {
				for attempt := 0; ; attempt++ {
					if attempt == 50 {
						t.Errorf("writer %d gave up on batch %d", w, k)
						return
					}
					batch := [][]byte{fmt.Appendf(nil, "w%d-%d.%d-a", w, k, attempt), fmt.Appendf(nil, "w%d-%d.%d-b", w, k, attempt)}
					var leader *Log
					for _, n := range tc.nodes {
						if n.IsLeader() {
							leader = n
						}
					}
					if leader == nil {
						_, _, changed := tc.nodes[0].Leader()
						<-changed
						continue
					}
					off, err := leader.Append(context.Background(), batch...)
					if errors.Is(err, replica.ErrNotLeader) || errors.Is(err, replica.ErrLeadershipLost) {
						continue
					}
					if err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					mu.Lock()
					acked[off], acked[off+1] = string(batch[0]), string(batch[1])
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	leader := tc.leader()
	if err := leader.raft.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	next := leader.NextOffset()
	if len(acked) != writers*per*2 || next < uint64(len(acked)) {
		t.Fatalf("%d acknowledged offsets for %d records; log holds %d", len(acked), writers*per*2, next)
	}
	for i := range tc.nodes {
		tc.waitApplied(i, next)
		seen := map[string]bool{}
		for off := uint64(0); off < next; off++ {
			got, err := tc.nodes[i].Read(off)
			if err != nil {
				t.Fatalf("%s Read(%d): %v", nodeID(i), off, err)
			}
			if want, ok := acked[off]; ok && string(got) != want {
				t.Fatalf("%s offset %d = %q, acknowledged as %q", nodeID(i), off, got, want)
			}
			if seen[string(got)] {
				t.Fatalf("%s holds %q twice", nodeID(i), got)
			}
			seen[string(got)] = true
		}
	}
}

func TestLargeBatchIsSplitButContiguous(t *testing.T) {
	tc := newTestCluster(t, 1)
	leader := tc.leader()
	recs := make([][]byte, 500) // ~2 MB over 32 KiB entries
	for i := range recs {
		recs[i] = append(value(uint64(i)), bytes.Repeat([]byte{'.'}, 4000)...)
	}
	off, err := leader.Append(context.Background(), recs...)
	if err != nil || off != 0 {
		t.Fatalf("Append = %d, %v", off, err)
	}
	for i := range recs {
		got, err := leader.Read(uint64(i))
		if err != nil || !bytes.Equal(got, recs[i]) {
			t.Fatalf("offset %d: %v", i, err)
		}
	}
	if idx := leader.raft.LastIndex(); idx < 50 {
		t.Fatalf("Raft last index %d: a 2 MB batch should span many 32 KiB entries", idx)
	}
}

func TestLeaderFailover(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.appendValues(0, 100)
	oldIdx := tc.leaderIndex()
	tc.stop(oldIdx)
	tc.appendValues(100, 100)
	tc.start(oldIdx, false)
	for i := range tc.nodes {
		tc.checkLog(i, 200)
	}
}

func TestMinorityCannotCommit(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.appendValues(0, 10)
	li := tc.leaderIndex()
	leader := tc.nodes[li]
	tc.partition(li)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := leader.Append(ctx, []byte("lost")); err == nil {
		t.Fatal("a leader cut off from the majority committed a record")
	}
	var majority []int
	for i := range tc.nodes {
		if i != li {
			majority = append(majority, i)
		}
	}
	tc.appendValues(10, 10, majority...)
	tc.heal()
	for i := range tc.nodes {
		tc.checkLog(i, 20)
	}
}

func TestFollowerCatchesUpThroughSnapshot(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.appendValues(0, 50)
	var lagger int
	for i, n := range tc.nodes {
		if !n.IsLeader() {
			lagger = i
		}
	}
	tc.leaveBehind(lagger, 50, 2000)
	tc.start(lagger, false)
	tc.checkLog(lagger, 2050)
	// The snapshot store holds what the leader sent before it is restored.
	snaps, _ := filepath.Glob(filepath.Join(tc.dirs[lagger], "snapshots", "*", snapshotMetaFile))
	if len(snaps) == 0 {
		t.Fatal("the lagging follower caught up without receiving a snapshot")
	}
	tc.appendValues(2050, 10)
	for i := range tc.nodes {
		tc.checkLog(i, 2060)
	}
}

func TestRestartEveryNodeUnderLoad(t *testing.T) {
	tc := newTestCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Each attempt appends a value of its own, so a value found twice can only
	// be an entry applied twice; a retried attempt after an ambiguous error may
	// legitimately be in the log too, under its own value.
	type ack struct {
		off uint64
		val string
	}
	acked := make(chan ack, 1<<16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3000 && ctx.Err() == nil; i++ {
			for attempt := 0; ctx.Err() == nil; attempt++ {
				var l, any *Log
				for _, n := range tc.snapshotNodes() {
					if n != nil {
						any = n
						if n.IsLeader() {
							l = n
						}
					}
				}
				if l == nil {
					// No leader now: wait for a change, or retry soon since
					// the node watched may itself be stopping.
					var changed <-chan struct{}
					if any != nil {
						_, _, changed = any.Leader()
					}
					select {
					case <-changed:
					case <-time.After(20 * time.Millisecond):
					case <-ctx.Done():
					}
					continue
				}
				val := fmt.Sprintf("v%d.%d", i, attempt)
				off, err := l.Append(ctx, []byte(val))
				if err == nil {
					acked <- ack{off, val}
					break
				}
			}
		}
	}()
	for round := 0; round < 3; round++ {
		for i := range tc.nodes {
			tc.stop(i)
			// node-0 restarts with Bootstrap set, as its command line would
			// have it: a server with state must not bootstrap again.
			tc.start(i, i == 0)
			tc.leader()
		}
	}
	cancel()
	wg.Wait()
	close(acked)
	// Every node ends with the same log: each acknowledged record exactly once,
	// offsets dense, no record appended twice by replays.
	leader := tc.leader()
	for {
		// Once it has applied everything committed, the leader's log is final.
		if err := leader.raft.Barrier(10 * time.Second).Error(); err == nil {
			break
		}
		leader = tc.leader()
	}
	next := leader.NextOffset()
	var want [][]byte
	for off := uint64(0); off < next; off++ {
		r, err := leader.Read(off)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	seen := map[string]bool{}
	for _, r := range want {
		if seen[string(r)] {
			t.Fatalf("record %q appears twice", r)
		}
		seen[string(r)] = true
	}
	n := 0
	for a := range acked {
		if a.off >= next || string(want[a.off]) != a.val {
			t.Fatalf("acknowledged %q at offset %d, but the log (next offset %d) does not hold it there", a.val, a.off, next)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no append was acknowledged during the restarts")
	}
	for i := range tc.nodes {
		tc.waitApplied(i, next)
		for off := uint64(0); off < next; off++ {
			got, err := tc.nodes[i].Read(off)
			if err != nil || !bytes.Equal(got, want[off]) {
				t.Fatalf("%s offset %d = %q, %v; leader has %q", nodeID(i), off, got, err, want[off])
			}
		}
	}
	t.Logf("%d records, %d acknowledged during 9 restarts, all present exactly once", next, n)
}

func (tc *testCluster) snapshotNodes() []*Log {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]*Log(nil), tc.nodes...)
}

func TestJoinLeaveAreIdempotent(t *testing.T) {
	tc := newTestCluster(t, 3)
	voters := func() map[string]string {
		t.Helper()
		for tries := 0; ; tries++ {
			servers, err := tc.leader().Servers()
			if err == nil {
				m := map[string]string{}
				for _, s := range servers {
					if s.IsVoter {
						m[s.ID] = s.Address
					}
				}
				return m
			}
			if tries == 20 {
				t.Fatal(err)
			}
		}
	}
	// retry runs a membership change on the leader, again if leadership moves.
	retry := func(f func(l *Log) error) {
		t.Helper()
		for tries := 0; ; tries++ {
			err := f(tc.leader())
			if err == nil {
				return
			}
			if !errors.Is(err, replica.ErrNotLeader) || tries == 20 {
				t.Fatal(err)
			}
		}
	}
	addr2 := string(tc.trans[2].LocalAddr())
	retry(func(l *Log) error { return l.Join(nodeID(2), addr2) })
	if v := voters(); len(v) != 3 {
		t.Fatalf("voters after joining a member twice: %v", v)
	}
	retry(func(l *Log) error { return l.Leave(nodeID(2)) })
	retry(func(l *Log) error { return l.Leave(nodeID(2)) })
	if v := voters(); len(v) != 2 || v[nodeID(2)] != "" {
		t.Fatalf("voters after Leave: %v", v)
	}
	// Joining under a new address replaces the member's address.
	retry(func(l *Log) error { return l.Join(nodeID(2), "mem-elsewhere") })
	if v := voters(); v[nodeID(2)] != "mem-elsewhere" || len(v) != 3 {
		t.Fatalf("voters after an address change: %v", v)
	}
}

func TestSecondOpenOfADataDirFails(t *testing.T) {
	tc := newTestCluster(t, 1)
	_, tr := raft.NewInmemTransport("")
	if l, err := New(tc.identity(0, tr, false), tc.conf(0)); err == nil {
		l.Close()
		t.Fatal("a second replica opened a data directory in use")
	} else {
		t.Logf("second open: %v", err)
	}
}
