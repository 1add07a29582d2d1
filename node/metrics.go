package node

import (
	"context"
	"strings"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/discovery"
)

// metrics is a node's Prometheus instrumentation, on a registry of its own
// (several nodes run in one process under serve --dev and in tests, so
// nothing is registered globally). Counters are updated by the gRPC
// interceptors and the replica's fsync hook (replica.Identity.OnSync);
// everything else is read from the replica and Serf when scraped
// (nodeCollector).
type metrics struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics

	producedRecords, producedBytes prometheus.Counter
	consumedRecords, consumedBytes prometheus.Counter
	consumeStreams                 prometheus.Gauge
	fsync                          prometheus.Histogram
	fsyncErrors                    prometheus.Counter
}

// metricsNamespace prefixes every metric of the node's own.
const metricsNamespace = "proglog"

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}))),
		producedRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "produced_records_total",
			Help: "Records clients produced through this node (acknowledged; writes forwarded from other nodes are counted there)."}),
		producedBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "produced_bytes_total",
			Help: "Bytes of record values clients produced through this node."}),
		consumedRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "consumed_records_total",
			Help: "Records this node sent to consumers."}),
		consumedBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "consumed_bytes_total",
			Help: "Bytes of record values this node sent to consumers."}),
		consumeStreams: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "consume_streams",
			Help: "Consume streams (ConsumeStream, ConsumeBatchStream) open on this node."}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: metricsNamespace, Name: "log_fsync_seconds",
			Help:    "Time each fsync of a log segment took.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
		fsyncErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "log_fsync_errors_total",
			Help: "Fsyncs of a log segment that failed."}),
	}
	m.reg.MustRegister(m.grpc, m.producedRecords, m.producedBytes, m.consumedRecords, m.consumedBytes,
		m.consumeStreams, m.fsync, m.fsyncErrors,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeSync is the local log's OnSync hook.
func (m *metrics) observeSync(d time.Duration, err error) {
	if err != nil {
		m.fsyncErrors.Inc()
		return
	}
	m.fsync.Observe(d.Seconds())
}

// countUnary counts the records of a client's Produce, ProduceBatch or
// Consume that succeeded. It runs after authorization, so it knows whether
// the call came from a node (a forwarded write, counted where it arrived).
func (n *Node) countUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	res, err := handler(ctx, req)
	if err != nil || callerFrom(ctx).peer {
		return res, err
	}
	m := n.metrics
	switch r := req.(type) {
	case *logv1.ProduceRequest:
		m.producedRecords.Inc()
		m.producedBytes.Add(float64(len(r.GetRecord().GetValue())))
	case *logv1.ProduceBatchRequest:
		m.producedRecords.Add(float64(len(r.Records)))
		for _, rec := range r.Records {
			m.producedBytes.Add(float64(len(rec.GetValue())))
		}
	}
	if c, ok := res.(*logv1.ConsumeResponse); ok {
		m.consumedRecords.Inc()
		m.consumedBytes.Add(float64(len(c.GetRecord().GetValue())))
	}
	return res, err
}

// reportStreamCalls is grpcprom's stream interceptor reporting calls only:
// started, handled with their code, and handling time, as for unary calls,
// but not each message of a stream. Its wrapper of the stream read the clock
// twice and looked up a labelled counter for every message, about a quarter
// of the server's cost of sending one record on a ConsumeStream; the handler
// gets the stream itself instead. So grpc_server_msg_sent_total and
// grpc_server_msg_received_total count unary calls' messages; what streams
// carry is counted in records (countStream).
func (m *metrics) reportStreamCalls() grpc.StreamServerInterceptor {
	report := m.grpc.StreamServerInterceptor()
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return report(srv, ss, info, func(srv any, _ grpc.ServerStream) error { return handler(srv, ss) })
	}
}

// countStream counts the records of streams: produced as each is
// acknowledged, consumed as each is sent; and open consume streams.
func (n *Node) countStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if callerFrom(ss.Context()).peer {
		return handler(srv, ss)
	}
	if strings.HasSuffix(info.FullMethod, "/ConsumeStream") || strings.HasSuffix(info.FullMethod, "/ConsumeBatchStream") {
		n.metrics.consumeStreams.Inc()
		defer n.metrics.consumeStreams.Dec()
	}
	return handler(srv, &countingStream{ServerStream: ss, m: n.metrics})
}

// countingStream counts what a stream acknowledges and sends. RecvMsg and
// SendMsg run on different goroutines in the produce streams: mu guards
// read, the records and bytes of each request read and not yet
// acknowledged, in order.
type countingStream struct {
	grpc.ServerStream
	m *metrics

	mu   sync.Mutex
	read []produced
}

// produced is the records and bytes of one produce request.
type produced struct{ records, bytes int }

func (s *countingStream) RecvMsg(msg any) error {
	err := s.ServerStream.RecvMsg(msg)
	if err != nil {
		return err
	}
	var p produced
	switch r := msg.(type) {
	case *logv1.ProduceRequest:
		p = produced{1, len(r.GetRecord().GetValue())}
	case *logv1.ProduceBatchRequest:
		p.records = len(r.Records)
		for _, rec := range r.Records {
			p.bytes += len(rec.GetValue())
		}
	default:
		return nil
	}
	s.mu.Lock()
	s.read = append(s.read, p)
	s.mu.Unlock()
	return nil
}

func (s *countingStream) SendMsg(msg any) error {
	err := s.ServerStream.SendMsg(msg)
	if err != nil {
		return err
	}
	switch r := msg.(type) {
	case *logv1.ProduceResponse, *logv1.ProduceBatchResponse:
		s.mu.Lock()
		if len(s.read) > 0 {
			s.m.producedRecords.Add(float64(s.read[0].records))
			s.m.producedBytes.Add(float64(s.read[0].bytes))
			s.read = s.read[1:]
		}
		s.mu.Unlock()
	case *logv1.ConsumeResponse:
		s.m.consumedRecords.Inc()
		s.m.consumedBytes.Add(float64(len(r.GetRecord().GetValue())))
	case *recordBatch:
		s.m.consumedRecords.Add(float64(len(r.recs)))
		s.m.consumedBytes.Add(float64(r.valueBytes()))
	}
	return nil
}

// nodeCollector reads the replica's and Serf's state when scraped.
type nodeCollector struct{ n *Node }

var (
	descLogBytes                           = newDesc("log_bytes", "Size of the local log's segment files.")
	descLogSegments                        = newDesc("log_segments", "Segments of the local log, the active one included.")
	descLogLowest                          = newDesc("log_lowest_offset", "Offset of the oldest record the local log retains.")
	descLogNext                            = newDesc("log_next_offset", "Offset the next record appended to the local log gets.")
	descLogDropped                         = newDesc("log_segments_dropped_total", "Segments retention dropped since the node started.")
	descRaftState                          = newDesc("raft_state", "1 for the Raft state this node is in.", "state")
	descRaftTerm                           = newDesc("raft_term", "Current Raft term.")
	descRaftLast                           = newDesc("raft_last_index", "Index of the last entry in this node's Raft log.")
	descRaftCommit                         = newDesc("raft_commit_index", "Index of the last entry this node knows committed.")
	descRaftApplied                        = newDesc("raft_applied_index", "Index of the last entry this node applied to its log.")
	descRaftContact                        = newDesc("raft_last_contact_seconds", "Seconds since this node last heard from the leader (0 on the leader; -1 if never).")
	descFollowerLag                        = newDesc("raft_follower_lag_entries", "On the leader: Raft entries each follower trails its last index by.", "follower")
	descFollowerSeen                       = newDesc("raft_follower_last_contact_seconds", "On the leader: seconds since each follower last answered (-1 if never).", "follower")
	descFollowerUp                         = newDesc("raft_follower_up", "On the leader: 1 while the last RPC to the follower succeeded.", "follower")
	descSnapshots                          = newDesc("raft_snapshots_total", "Snapshots this node took.")
	descSnapshotSecs                       = newDesc("raft_snapshot_seconds_total", "Time spent taking snapshots.")
	descSnapshotBytes                      = newDesc("raft_snapshot_last_bytes", "Size of the last snapshot taken.")
	descRestores                           = newDesc("raft_snapshot_restores_total", "Snapshots installed on this node (sent by the leader).")
	descMembers                            = newDesc("serf_members", "Serf members this node knows of, by status.", "status")
	descReady                              = newDesc("ready", "1 while the node is ready to serve (/readyz, gRPC health SERVING).")
	raftStates                             = []string{"Follower", "Candidate", "Leader", "Shutdown"}
	memberStatuses                         = []discovery.Status{discovery.StatusAlive, discovery.StatusLeaving, discovery.StatusLeft, discovery.StatusFailed}
	_                 prometheus.Collector = nodeCollector{}
)

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

// Describe implements prometheus.Collector.
func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLogBytes, descLogSegments, descLogLowest, descLogNext, descLogDropped,
		descRaftState, descRaftTerm, descRaftLast, descRaftCommit, descRaftApplied, descRaftContact,
		descFollowerLag, descFollowerSeen, descFollowerUp, descSnapshots, descSnapshotSecs, descSnapshotBytes, descRestores,
		descMembers, descReady} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	s := n.log.Stats()
	gauge(descLogBytes, float64(s.Store.Bytes))
	gauge(descLogSegments, float64(s.Store.Segments))
	gauge(descLogLowest, float64(s.Store.LowestOffset))
	gauge(descLogNext, float64(s.Store.NextOffset))
	counter(descLogDropped, float64(s.Store.DroppedSegments))
	for _, st := range raftStates {
		gauge(descRaftState, b2f(s.State == st), st)
	}
	gauge(descRaftTerm, float64(s.Term))
	gauge(descRaftLast, float64(s.LastIndex))
	gauge(descRaftCommit, float64(s.CommitIndex))
	gauge(descRaftApplied, float64(s.AppliedIndex))
	gauge(descRaftContact, since(s.LastContact))
	for _, f := range s.Followers {
		gauge(descFollowerLag, float64(f.LagEntries), f.ID)
		gauge(descFollowerSeen, since(f.LastContact), f.ID)
		gauge(descFollowerUp, b2f(!f.Down && !f.LastContact.IsZero()), f.ID)
	}
	counter(descSnapshots, float64(s.Snapshots.Taken))
	counter(descSnapshotSecs, s.Snapshots.TakeDuration.Seconds())
	gauge(descSnapshotBytes, float64(s.Snapshots.LastBytes))
	counter(descRestores, float64(s.Snapshots.Restored))
	if n.members != nil {
		counts := map[discovery.Status]int{}
		for _, m := range n.members.Members() {
			counts[m.Status]++
		}
		for _, st := range memberStatuses {
			gauge(descMembers, float64(counts[st]), string(st))
		}
	}
	ready, _ := n.Ready()
	gauge(descReady, b2f(ready))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// since is the seconds from t to now, or -1 for a zero t.
func since(t time.Time) float64 {
	if t.IsZero() {
		return -1
	}
	return max(0, time.Since(t).Seconds())
}
