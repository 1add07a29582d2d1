package node_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node"
)

// scrape reads addr's /metrics: each series ("name{labels}") and its value.
func scrape(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	code, body := get(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// get fetches path from addr over plain HTTP.
func get(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func withMetrics(c *node.Config) { c.MetricsAddr = "127.0.0.1:0" }

// TestMetrics scrapes a live leader: the families are there, and the
// counters and the log's gauges move when records are produced and consumed.
func TestMetrics(t *testing.T) {
	p := newPKI(t)
	nodes := startCluster(t, p, 3, withMetrics)
	l := leader(t, nodes)
	addr := l.MetricsAddr()
	if addr == "" {
		t.Fatal("MetricsAddr is empty with Config.MetricsAddr set")
	}
	before := scrape(t, addr)
	for _, name := range []string{
		`proglog_raft_state{state="Leader"}`, `proglog_raft_term`, `proglog_raft_commit_index`, `proglog_raft_applied_index`,
		`proglog_raft_last_contact_seconds`, `proglog_log_bytes`, `proglog_log_segments`, `proglog_log_lowest_offset`,
		`proglog_log_next_offset`, `proglog_log_segments_dropped_total`, `proglog_raft_snapshots_total`,
		`proglog_raft_snapshot_seconds_total`, `proglog_raft_snapshot_last_bytes`, `proglog_raft_snapshot_restores_total`,
		`proglog_consume_streams`, `proglog_produced_records_total`, `proglog_consumed_bytes_total`, `proglog_ready`,
		`proglog_log_fsync_seconds_count`, `go_goroutines`, `process_open_fds`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ProduceBatch",grpc_service="log.v1.Log",grpc_type="unary"}`,
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("no %s in the leader's metrics", name)
		}
	}
	checkDashboard(t, before)
	if before[`proglog_raft_state{state="Leader"}`] != 1 || before[`proglog_raft_state{state="Follower"}`] != 0 || before[`proglog_ready`] != 1 {
		t.Errorf("leader's state metrics: Leader %v, Follower %v, ready %v", before[`proglog_raft_state{state="Leader"}`],
			before[`proglog_raft_state{state="Follower"}`], before[`proglog_ready`])
	}
	for _, n := range nodes {
		if n == l {
			continue
		}
		id := nodeID(slicesIndex(nodes, n))
		waitFor(t, 10*time.Second, "the leader to report "+id+" up with no lag", func() bool {
			m := scrape(t, addr)
			return m[`proglog_raft_follower_up{follower="`+id+`"}`] == 1 && m[`proglog_raft_follower_lag_entries{follower="`+id+`"}`] == 0
		})
	}

	client := p.client(t, l.Addr(), certs.RootSubject)
	ctx := testCtx(t)
	var recs []*logv1.Record
	for i := range 10 {
		recs = append(recs, &logv1.Record{Value: fmt.Appendf(nil, "record-%d", i)}) // 8 bytes each
	}
	res, err := client.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	for off := res.FirstOffset; off < res.FirstOffset+3; off++ {
		if _, err := client.Consume(ctx, &logv1.ConsumeRequest{Offset: off}); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := client.ConsumeBatchStream(ctx, &logv1.ConsumeBatchRequest{Offset: res.FirstOffset})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got += len(msg.Records)
	}

	after := scrape(t, addr)
	moved := func(name string, by float64) {
		t.Helper()
		if d := after[name] - before[name]; d != by {
			t.Errorf("%s moved by %v (from %v to %v), want %v", name, d, before[name], after[name], by)
		}
	}
	moved(`proglog_produced_records_total`, 10)
	moved(`proglog_produced_bytes_total`, 80)
	moved(`proglog_consumed_records_total`, float64(3+got))
	moved(`proglog_consumed_bytes_total`, float64(8*(3+got)))
	moved(`proglog_log_next_offset`, 10)
	moved(`grpc_server_handled_total{grpc_code="OK",grpc_method="ProduceBatch",grpc_service="log.v1.Log",grpc_type="unary"}`, 1)
	moved(`grpc_server_handled_total{grpc_code="OK",grpc_method="Consume",grpc_service="log.v1.Log",grpc_type="unary"}`, 3)
	// A stream is reported as a call, its messages in records only.
	moved(`grpc_server_started_total{grpc_method="ConsumeBatchStream",grpc_service="log.v1.Log",grpc_type="server_stream"}`, 1)
	moved(`grpc_server_handled_total{grpc_code="OK",grpc_method="ConsumeBatchStream",grpc_service="log.v1.Log",grpc_type="server_stream"}`, 1)
	moved(`grpc_server_msg_sent_total{grpc_method="ConsumeBatchStream",grpc_service="log.v1.Log",grpc_type="server_stream"}`, 0)
	for _, name := range []string{`proglog_raft_commit_index`, `proglog_raft_applied_index`, `proglog_log_bytes`,
		`grpc_server_handling_seconds_count{grpc_method="ProduceBatch",grpc_service="log.v1.Log",grpc_type="unary"}`} {
		if after[name] <= before[name] {
			t.Errorf("%s did not grow: %v, then %v", name, before[name], after[name])
		}
	}

	// A refused call is counted with its code.
	nobody := p.client(t, l.Addr(), certs.NobodySubject)
	if _, err := nobody.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); err == nil {
		t.Fatal("nobody produced")
	}
	if m := scrape(t, addr); m[`grpc_server_handled_total{grpc_code="PermissionDenied",grpc_method="Produce",grpc_service="log.v1.Log",grpc_type="unary"}`] != 1 {
		t.Error("a refused Produce was not counted as PermissionDenied")
	}

	// An open consume stream is counted while it lasts.
	sctx, cancel := context.WithCancel(ctx)
	follow, err := client.ConsumeBatchStream(sctx, &logv1.ConsumeBatchRequest{Offset: res.FirstOffset, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := follow.Recv(); err != nil {
		t.Fatal(err)
	}
	if m := scrape(t, addr); m[`proglog_consume_streams`] != 1 {
		t.Errorf("proglog_consume_streams = %v with one stream open", m[`proglog_consume_streams`])
	}
	cancel()
	waitFor(t, 10*time.Second, "proglog_consume_streams to drop to 0", func() bool {
		return scrape(t, addr)[`proglog_consume_streams`] == 0
	})
}

func slicesIndex(nodes []*node.Node, n *node.Node) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// TestReadyzAgreesWithGRPCHealth: /healthz says the process is alive, and
// /readyz says what the gRPC health service says, ready or not.
func TestReadyzAgreesWithGRPCHealth(t *testing.T) {
	p := newPKI(t)
	nodes := startCluster(t, p, 3, withMetrics)
	f := follower(t, nodes)
	health := healthpb.NewHealthClient(dial(t, f.Addr(), clientTLS(t, p.dir, p.dir, certs.RootSubject)))
	serving := func() bool {
		res, err := health.Check(testCtx(t), &healthpb.HealthCheckRequest{})
		return err == nil && res.Status == healthpb.HealthCheckResponse_SERVING
	}
	waitFor(t, 10*time.Second, "the follower to serve", serving)
	if code, body := get(t, f.MetricsAddr(), "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz of a serving follower: %d %q", code, body)
	}
	if code, body := get(t, f.MetricsAddr(), "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	// Without a quorum the follower knows no leader: not ready, both ways.
	for _, n := range nodes {
		if n != f {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Closing the leader hands leadership over first, perhaps to f, which
	// then leads until its lease runs out; and f may still be a candidate
	// whose vote from the closing leader is on its way, so one poll that
	// finds it not ready is not yet the end state. Wait until every signal
	// says not ready in the same poll: they agree once f has settled.
	waitFor(t, 20*time.Second, "gRPC health, Ready, /readyz and the metrics of the follower all to say not ready, no leader", func() bool {
		if serving() {
			return false
		}
		if ready, _ := f.Ready(); ready {
			return false
		}
		code, body := get(t, f.MetricsAddr(), "/readyz")
		m := scrape(t, f.MetricsAddr())
		return code == http.StatusServiceUnavailable && body == "not ready: no leader is known\n" &&
			m[`proglog_ready`] == 0 && m[`proglog_raft_state{state="Leader"}`] == 0
	})
	if code, _ := get(t, f.MetricsAddr(), "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz of a live node without a leader: %d", code)
	}
}

// checkDashboard checks that every metric docs/grafana-dashboard.json uses
// is among the scraped series (Serf's, which this cluster runs without,
// are checked by TestSerfMembersMetric).
func checkDashboard(t *testing.T, scraped map[string]float64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\b(?:proglog|grpc_server|go|process)_[a-z_]+\b`).FindAllString(string(b), -1)
	if len(names) < 20 {
		t.Fatalf("the dashboard uses %d metrics", len(names))
	}
	for _, name := range names {
		if name == "proglog_serf_members" {
			continue
		}
		found := false
		for series := range scraped {
			if series == name || strings.HasPrefix(series, name+"{") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the dashboard uses %s, which the node does not export", name)
		}
	}
}

// TestSerfMembersMetric: the members Serf knows are counted by status.
func TestSerfMembersMetric(t *testing.T) {
	p := newPKI(t)
	nodes, _ := startGossipCluster(t, p, func(_ int, c *node.Config) { withMetrics(c) })
	waitFor(t, 20*time.Second, "node-0 to count 3 alive Serf members", func() bool {
		m := scrape(t, nodes[0].MetricsAddr())
		return m[`proglog_serf_members{status="alive"}`] == 3 && m[`proglog_serf_members{status="failed"}`] == 0
	})
}
