package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// Chaos tests: a workload of concurrent producers and consumers against a
// 3-node cluster of real `proglogctl serve` processes while a nemesis kills,
// pauses, restarts, partitions and fills the disks of nodes; after the faults
// are healed, checkers prove that no acknowledged record was lost and that
// the history is that of one linearizable log. `go test` runs one short run;
// `make chaos` many long ones; `make soak` one long run that also watches
// memory, open files and disk.

var (
	chaosRuns     = flag.Int("chaos.runs", 0, "chaos runs (0: one short run)")
	chaosDuration = flag.Duration("chaos.duration", 60*time.Second, "workload duration of each chaos run")
	chaosInterval = flag.Duration("chaos.interval", 10*time.Second, "time between faults")
	chaosSeed     = flag.Uint64("chaos.seed", 0, "seed of the fault schedule and workload (0: from the clock)")
	chaosFaults   = flag.String("chaos.faults", "", "comma-separated fault kinds (default all: "+strings.Join(allFaults, ",")+")")
	chaosSoak     = flag.Duration("chaos.soak", 0, "run the soak test for this long (0: skip it)")
	chaosServe    = flag.String("chaos.serve", "", "more flags for every serve of TestChaos, separated by spaces")
)

// Checker names, in report order.
var checkerNames = []string{"lost", "unique", "convergence", "linearizable", "liveness", "faults", "shutdown", "no-exit"}

// runResult is what one chaos run found.
type runResult struct {
	seed              uint64
	counts            historyCounts
	faults            []faultRecord
	fired, effective  int
	verdicts          map[string][]string // checker → problems (none: passed)
	porcupine         porcupine.CheckResult
	runTime, checkDur time.Duration
}

func (r runResult) passed() bool {
	for _, p := range r.verdicts {
		if len(p) > 0 {
			return false
		}
	}
	return true
}

type runConfig struct {
	duration, interval time.Duration
	seed               uint64
	kinds              []string
	sample             func(nm *nemesis) // started beside the workload (soak); nil: none
	serve              []string          // more flags for every serve
}

// chaosCluster starts 3 nodes in network namespaces on tmpfs data dirs when
// it can, else on loopback, and returns the cluster, a connection per node,
// the network and the disks (nil when not available).
func chaosCluster(t *testing.T, serve []string) (*cluster, []*grpc.ClientConn, *chaosNet, *chaosDisks) {
	t.Helper()
	const n = 3
	opts := clusterOptions{serve: append([]string{"--leave-on-shutdown=false"}, serve...), metrics: true}
	cn, err := setupChaosNet(t, n)
	if err != nil {
		t.Logf("partition faults disabled: no network namespaces (%v); nodes run on loopback", err)
		cn = nil
	} else {
		opts.host = func(i int) string { return cn.ips[i] }
		opts.wrap = func(i int) []string { return []string{"ip", "netns", "exec", cn.ns[i]} }
		if !cn.iptables {
			t.Logf("iptables does not work in the namespaces: split faults isolate the node's link instead")
		}
	}
	disks, err := setupChaosDisks(t, n, 512<<20)
	if err != nil {
		t.Logf("disk-full faults disabled: no tmpfs data directories (%v)", err)
		disks = nil
	} else {
		opts.dataDir = func(i int) string { return disks.dirs[i] }
	}
	c := startClusterWith(t, n, opts)
	conns := make([]*grpc.ClientConn, n)
	for i, p := range c.procs {
		conns[i] = c.dial(p.rpcAddr)
	}
	return c, conns, cn, disks
}

// chaosRunMargin bounds the time a chaos run takes beyond its workload's
// duration.
const chaosRunMargin = 4 * time.Minute

// chaosRun runs one workload under a nemesis, heals, checks and stops the
// cluster; failed checkers fail t.
func chaosRun(t *testing.T, rc runConfig) runResult {
	// Setting up, healing, checking and stopping take well under the
	// margin; a run stuck past it fails with a dump of its goroutines.
	nodetest.Deadline(t, rc.duration+chaosRunMargin)
	began := time.Now()
	res := runResult{seed: rc.seed, verdicts: map[string][]string{}}
	c, conns, cn, disks := chaosCluster(t, rc.serve)
	nm := newNemesis(t, c, conns, cn, disks, rc.interval, rc.seed)
	kinds := nm.kinds(rc.kinds)
	t.Logf("seed %d; %v workload, a fault every %v among %v", rc.seed, rc.duration, rc.interval, kinds)

	w := startWorkload(defaultWorkload(rc.duration), conns, rc.seed)
	nm.origin = w.start
	var sampler sync.WaitGroup
	if rc.sample != nil {
		sampler.Go(func() { rc.sample(nm) })
	}
	nm.run(kinds, rc.duration)
	hist := w.stop()
	nm.heal()
	healed := time.Now()
	sampler.Wait()
	res.counts = countHistory(hist)
	res.faults = nm.faults
	names := make([]string, len(c.procs))
	for i, p := range c.procs {
		names[i] = p.name
	}

	// Liveness: every node reaches the leader's next offset.
	var samples []offsetsSample
	waitUntil(15*time.Second, func() bool {
		s := offsetsSample{At: time.Since(healed), Leader: -1}
		for i := range c.procs {
			n := int64(-1)
			if self := nm.self(i); self != nil {
				n = int64(self.NextOffset)
				if self.State == "Leader" {
					s.Leader = i
				}
			}
			s.Next = append(s.Next, n)
		}
		samples = append(samples, s)
		return len(checkLiveness(samples[len(samples)-1:], names, 15*time.Second)) == 0
	})
	res.verdicts["liveness"] = checkLiveness(samples, names, 15*time.Second)

	// Convergence: the nodes' logs are identical within 15 s of the heal.
	var final finalLogs
	waitUntil(15*time.Second-time.Since(healed), func() bool {
		final = readFinalLogs(conns, names)
		return len(checkConvergence(final)) == 0
	})
	checkStart := time.Now()
	res.verdicts["convergence"] = checkConvergence(final)
	res.verdicts["lost"] = checkLost(hist, final)
	res.verdicts["unique"] = checkUnique(hist, final)
	res.porcupine, res.verdicts["linearizable"] = checkLinearizable(hist, final, 2*time.Minute)
	res.verdicts["faults"] = checkFaults(nm.faults, 1)
	res.checkDur = time.Since(checkStart)
	for _, f := range nm.faults {
		if f.Fired {
			res.fired++
			if f.Effective {
				res.effective++
			}
		}
	}

	// Every node stops within the bound on SIGTERM.
	nm.reap()
	exitedBefore := len(nm.exitedAlone)
	nm.stopAll(syscall.SIGTERM)
	res.verdicts["shutdown"] = nm.shutdowns
	res.verdicts["no-exit"] = nm.exitedAlone[:exitedBefore]
	res.runTime = time.Since(began)

	cnt := res.counts
	t.Logf("history: %d ops: %d produces (%d acknowledged, %d of them after retries, %d answered as duplicates; %d unknown), %d consumes (%d ok, %d out of range, %d dropped by retention, %d failed); final offsets %v",
		cnt.ops, cnt.produces, cnt.acked, cnt.retried, cnt.duplicates, cnt.unknownProduces, cnt.reads, cnt.readOK, cnt.readOOR, cnt.readDropped, cnt.readFailed, finalRanges(final))
	if errs := topErrors(hist, 5); len(errs) > 0 {
		t.Logf("most frequent failures:\n\t%s", strings.Join(errs, "\n\t"))
	}
	t.Logf("faults: %d injected, %d fired, %d effective; porcupine %v; checks took %v; run took %v",
		len(nm.faults), res.fired, res.effective, porcupineVerdict(res.porcupine), res.checkDur.Round(time.Millisecond), res.runTime.Round(time.Second))
	for _, name := range checkerNames {
		if p := res.verdicts[name]; len(p) > 0 {
			t.Errorf("checker %s FAILED:\n\t%s", name, strings.Join(p, "\n\t"))
		} else {
			t.Logf("checker %s: pass", name)
		}
	}
	return res
}

func porcupineVerdict(r porcupine.CheckResult) string {
	switch r {
	case porcupine.Ok:
		return "ok"
	case porcupine.Illegal:
		return "illegal"
	default:
		return "unknown"
	}
}

// finalRanges shows every node's retained range of offsets.
func finalRanges(f finalLogs) []string {
	var r []string
	for i := range f.logs {
		r = append(r, fmt.Sprintf("[%d, %d)", f.base[i], f.next(i)))
	}
	return r
}

// readFinalLogs reads every node's whole retained log.
func readFinalLogs(conns []*grpc.ClientConn, names []string) finalLogs {
	f := finalLogs{names: names, base: make([]uint64, len(conns)), logs: make([][]string, len(conns)), errs: make([]error, len(conns))}
	for i, conn := range conns {
		f.base[i], f.logs[i], f.errs[i] = readLog(conn)
	}
	return f
}

// readLog reads a node's log from its lowest retained offset (base) on.
func readLog(conn *grpc.ClientConn) (base uint64, log []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := logv1.NewLogClient(conn)
	offs, err := cl.GetOffsets(ctx, &logv1.GetOffsetsRequest{})
	if err != nil {
		return 0, nil, err
	}
	base, log = offs.LowestOffset, []string{}
	if offs.NextOffset <= base {
		return base, log, nil
	}
	stream, err := cl.ConsumeBatchStream(ctx, &logv1.ConsumeBatchRequest{Offset: base, EndOffset: offs.NextOffset})
	if err != nil {
		return 0, nil, err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, nil, err
		}
		for _, r := range resp.Records {
			if want := base + uint64(len(log)); r.Offset != want {
				return 0, nil, fmt.Errorf("record at offset %d where %d was due", r.Offset, want)
			}
			log = append(log, string(r.Value))
		}
	}
	if next := base + uint64(len(log)); next != offs.NextOffset {
		return 0, nil, fmt.Errorf("read up to offset %d, next offset %d", next, offs.NextOffset)
	}
	return base, log, nil
}

func chaosKinds(t *testing.T) []string {
	if *chaosFaults == "" {
		return allFaults
	}
	var ks []string
	for k := range strings.SplitSeq(*chaosFaults, ",") {
		if !strings.Contains(strings.Join(allFaults, ","), k) {
			t.Fatalf("-chaos.faults: unknown kind %q (kinds: %v)", k, allFaults)
		}
		ks = append(ks, k)
	}
	return ks
}

func chaosSeedFor(run int) uint64 {
	if *chaosSeed != 0 {
		return *chaosSeed + uint64(run)
	}
	return uint64(time.Now().UnixNano())
}

// TestChaos runs the chaos workload: one short run (25 s, a fault every 8 s)
// by default, or -chaos.runs runs of -chaos.duration each (make chaos), with
// the -chaos.serve flags for every node, and prints a summary table of the
// runs.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary under faults")
	}
	runs, d, iv := 1, 25*time.Second, 8*time.Second
	if *chaosRuns > 0 {
		runs, d, iv = *chaosRuns, *chaosDuration, *chaosInterval
	}
	kinds := chaosKinds(t)
	var results []runResult
	for i := range runs {
		t.Run(fmt.Sprintf("run-%02d", i+1), func(t *testing.T) {
			results = append(results, chaosRun(t, runConfig{duration: d, interval: iv, seed: chaosSeedFor(i), kinds: kinds, serve: strings.Fields(*chaosServe)}))
		})
	}
	t.Log("summary:\n" + summaryTable(results))
}

func summaryTable(results []runResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %-20s %6s %6s %7s %5s %5s %5s", "run", "seed", "ops", "acked", "unknown", "fault", "fired", "effec")
	for _, n := range checkerNames {
		fmt.Fprintf(&b, " %-12s", n)
	}
	fmt.Fprintf(&b, " %s\n", "time")
	failed := map[string]int{}
	for i, r := range results {
		fmt.Fprintf(&b, "%-4d %-20d %6d %6d %7d %5d %5d %5d", i+1, r.seed, r.counts.ops, r.counts.acked, r.counts.unknownProduces, len(r.faults), r.fired, r.effective)
		for _, n := range checkerNames {
			v := "pass"
			if p := r.verdicts[n]; len(p) > 0 {
				v = fmt.Sprintf("FAIL(%d)", len(p))
				failed[n]++
			}
			fmt.Fprintf(&b, " %-12s", v)
		}
		fmt.Fprintf(&b, " %v\n", r.runTime.Round(time.Second))
	}
	fmt.Fprintf(&b, "%d runs;", len(results))
	for _, n := range checkerNames {
		fmt.Fprintf(&b, " %s failed %d,", n, failed[n])
	}
	return strings.TrimSuffix(b.String(), ",")
}

// Soak: the workload for -chaos.soak with a fault every 30 s (or
// -chaos.interval when set below that), sampling every node's RSS, open files
// and disk use each second. It passes when every checker passes and RSS and
// disk overhead are flat: their last value within 20 % of their value at
// minute 2. The log's own files grow with the records and are left out of
// the disk figure (data dir minus log/, with hard links counted once), which
// is Raft's store, snapshots and scratch space.

type soakSample struct {
	at  time.Duration
	rss []int64 // bytes, -1: not running
	fds []int
	// goroutines is go_goroutines from the node's /metrics (-1: no answer).
	goroutines []int64
	disk       []int64 // bytes outside log/
	raftStore  []int64 // of disk, bytes of Raft's log and stable store (raft/)
	log        []int64 // bytes in log/
	nodes      int
}

func TestChaosSoak(t *testing.T) {
	if testing.Short() || *chaosSoak == 0 {
		t.Skip("soak runs only with -chaos.soak DURATION (make soak)")
	}
	iv := 30 * time.Second
	if *chaosInterval < iv && *chaosInterval > 0 && *chaosRuns == 0 && isFlagSet("chaos.interval") {
		iv = *chaosInterval
	}
	var (
		mu      sync.Mutex
		samples []soakSample
		dirs    []string
	)
	sample := func(nm *nemesis) {
		for _, p := range nm.c.procs {
			dirs = append(dirs, argAfter(p.args, "--data-dir"))
		}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			at := time.Since(nm.origin)
			if at > *chaosSoak {
				return
			}
			s := soakSample{at: at}
			for i, pid := range nm.pids() {
				s.rss = append(s.rss, rssBytes(pid))
				s.goroutines = append(s.goroutines, goroutines(nm.c.procs[i].metricsAddr))
				s.fds = append(s.fds, openFiles(pid))
				d, l, db := diskUse(dirs[i])
				s.disk, s.log, s.raftStore = append(s.disk, d), append(s.log, l), append(s.raftStore, db)
			}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			<-tick.C
		}
	}
	// Retention on, and Raft compacting its own log often, so that the disk
	// a node uses must stay flat however long the soak runs. The workload
	// writes about 5 KiB a second: 256 KiB are retained within the first
	// minute, so minute 2, where flatness is measured from, is past the
	// growth to the retention bound. Small segments keep the sawtooth of
	// dropping whole segments to a quarter of that bound. Raft compacts
	// often, into small segments of its own, so that the files of the
	// segments it removes are reused all along and must not pile up.
	retention := []string{"--segment-bytes", "65536", "--retention-bytes", "262144", "--raft-segment-bytes", "65536",
		"--raft-snapshot-interval", "2s", "--raft-snapshot-threshold", "256", "--raft-trailing-logs", "256"}
	res := chaosRun(t, runConfig{duration: *chaosSoak, interval: iv, seed: chaosSeedFor(0), kinds: chaosKinds(t), sample: sample, serve: retention})
	mu.Lock()
	defer mu.Unlock()
	for _, s := range samples {
		if s.at.Truncate(time.Second)%(30*time.Second) == 0 {
			t.Logf("soak %v: rss MiB %v, goroutines %v, fds %v, disk (outside log/) KiB %v (raft/ %v), log KiB %v", s.at.Round(time.Second), mib(s.rss), s.goroutines, s.fds, kib(s.disk), kib(s.raftStore), kib(s.log))
		}
	}
	probs, ratios := soakProblems(samples, 2*time.Minute, 0.2)
	t.Logf("flatness, minute 2 → last minute (medians):\n\t%s", strings.Join(ratios, "\n\t"))
	for _, p := range probs {
		t.Errorf("soak: %s", p)
	}
	t.Log("summary:\n" + summaryTable([]runResult{res}))
}

// soakProblems checks that RSS, goroutines and disk use (log/ and the rest)
// of every node do not grow by more than frac between minute `from` and the
// end. Each end is the median of a minute of samples (from `from` on, and
// the last minute), leaving out the seconds a node was down, so that one
// sample taken during a fault or a restart decides nothing. Only growth
// fails: a node restarted near the end holds less, which is no leak. It also
// returns the ratios measured, one line per metric.
func soakProblems(samples []soakSample, from time.Duration, frac float64) (probs, ratios []string) {
	if len(samples) == 0 || samples[len(samples)-1].at < from+2*time.Minute {
		return []string{fmt.Sprintf("soak too short: flatness is measured from the minute after %v to the last minute, at least a minute later", from)}, nil
	}
	end := samples[len(samples)-1].at
	median := func(lo, hi time.Duration, get func(soakSample) []int64, i int) int64 {
		var vs []int64
		for _, s := range samples {
			if v := get(s)[i]; s.at >= lo && s.at <= hi && v > 0 {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			return -1
		}
		slices.Sort(vs)
		return vs[len(vs)/2]
	}
	for _, m := range []struct {
		name string
		get  func(soakSample) []int64 // one value per node, or one for the cluster
	}{
		{"RSS", func(s soakSample) []int64 { return s.rss }},
		// The leader runs more goroutines than a follower (replication,
		// forwarded writes), and leadership moves with the faults: the
		// cluster's total is what must stay flat.
		{"goroutines", func(s soakSample) []int64 {
			total := int64(0)
			for _, g := range s.goroutines {
				if g <= 0 {
					total = -1
					break
				}
				total += g
			}
			return []int64{total}
		}},
		{"disk", func(s soakSample) []int64 {
			total := make([]int64, len(s.disk))
			for i := range total {
				total[i] = s.disk[i] + s.log[i]
			}
			return total
		}},
	} {
		show := func(v int64) string { return fmt.Sprintf("%d KiB", v>>10) }
		if m.name == "goroutines" {
			show = func(v int64) string { return fmt.Sprint(v) }
		}
		line := m.name + ":"
		for i := range m.get(samples[0]) {
			who := fmt.Sprintf("node-%d", i)
			if len(m.get(samples[0])) != len(samples[0].rss) {
				who = "cluster"
			}
			a, b := median(from, from+time.Minute, m.get, i), median(end-time.Minute, end, m.get, i)
			if a <= 0 || b <= 0 {
				probs = append(probs, fmt.Sprintf("%s %s not measured in the minute from %v or in the last one", who, m.name, from))
				continue
			}
			line += fmt.Sprintf(" %s %s → %s (×%.2f)", who, show(a), show(b), float64(b)/float64(a))
			if float64(b) > float64(a)*(1+frac) {
				probs = append(probs, fmt.Sprintf("%s %s grew from %s (median of the minute from %v) to %s (median of the last minute, to %v): more than %.0f %%",
					who, m.name, show(a), from, show(b), end.Round(time.Second), frac*100))
			}
		}
		ratios = append(ratios, line)
	}
	return probs, ratios
}

func isFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func argAfter(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func rssBytes(pid int) int64 {
	if pid == 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	return -1
}

func openFiles(pid int) int {
	if pid == 0 {
		return -1
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// diskUse returns the bytes allocated under dir outside log/ and inside it,
// each inode counted once, and the bytes of Raft's store (raft/, also in other).
func diskUse(dir string) (other, log, raftStore int64) {
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(path, &st) != nil || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		rel, _ := filepath.Rel(dir, path)
		switch {
		case strings.HasPrefix(rel, "log"+string(filepath.Separator)):
			log += st.Blocks * 512
		case strings.HasPrefix(rel, "raft"+string(filepath.Separator)):
			raftStore += st.Blocks * 512
			other += st.Blocks * 512
		default:
			other += st.Blocks * 512
		}
		return nil
	})
	return other, log, raftStore
}

func mib(v []int64) []int64 {
	var o []int64
	for _, x := range v {
		o = append(o, x>>20)
	}
	return o
}

func kib(v []int64) []int64 {
	var o []int64
	for _, x := range v {
		o = append(o, x>>10)
	}
	return o
}

// topErrors counts the failed operations of hist by kind and error and
// returns the n most frequent as "count kind error" lines.
func topErrors(hist []chaosOp, n int) []string {
	counts := map[string]int{}
	for _, op := range hist {
		if op.Err != "" {
			kind := "consume"
			if op.Kind == opProduce {
				kind = "produce"
			}
			counts[kind+" "+op.Err]++
		}
	}
	keys := slices.Collect(maps.Keys(counts))
	slices.SortFunc(keys, func(a, b string) int { return counts[b] - counts[a] })
	var lines []string
	for _, k := range keys[:min(n, len(keys))] {
		lines = append(lines, fmt.Sprintf("%6d %s", counts[k], k))
	}
	return lines
}

// goroutines scrapes go_goroutines from the /metrics at addr (-1: none).
func goroutines(addr string) int64 {
	if addr == "" {
		return -1
	}
	client := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			var n float64
			if _, err := fmt.Sscanf(rest, "%g", &n); err == nil {
				return int64(n)
			}
		}
	}
	return -1
}
