package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// The nemesis of the chaos tests: faults injected into a 3-node cluster of
// real processes on a schedule, each healed before the next, and the network
// and disks they need.

// chaosNet is a network the test builds for its nodes: one network namespace
// per node, each with a veth to a bridge that lives in a namespace of its
// own (so the host's firewall never sees the traffic between nodes), and a
// veth from the test's namespace to the bridge, so the test reaches every
// node at its address. Everything is removed when the test ends.
type chaosNet struct {
	hub      string   // the bridge's namespace
	ns       []string // node i's namespace
	ips      []string // node i's address
	hubLinks []string // node i's veth end on the bridge: down isolates node i
	iptables bool     // iptables works inside the node namespaces
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// setupChaosNet builds a chaosNet for n nodes, or says why it cannot.
func setupChaosNet(t *testing.T, n int) (*chaosNet, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, err
	}
	routes, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("ip route: %v", err)
	}
	var prefix string
	for range 50 {
		p := fmt.Sprintf("10.%d.%d.", 100+rand.IntN(150), rand.IntN(256))
		if !bytes.Contains(routes, []byte(p)) {
			prefix = p
			break
		}
	}
	if prefix == "" {
		return nil, fmt.Errorf("no free 10.x.y.0/24 subnet")
	}
	id := fmt.Sprintf("plc%04x", rand.IntN(1<<16))
	cn := &chaosNet{hub: id + "h"}
	rootLink := id + "r"
	t.Cleanup(func() {
		for _, ns := range append(slices.Clone(cn.ns), cn.hub) {
			exec.Command("ip", "netns", "del", ns).Run()
		}
		exec.Command("ip", "link", "del", rootLink).Run()
	})
	steps := [][]string{
		{"netns", "add", cn.hub},
		{"-n", cn.hub, "link", "set", "lo", "up"},
		{"-n", cn.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", cn.hub, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return nil, err
		}
	}
	for i := range n {
		ns, link, hubLink, ip := fmt.Sprintf("%sn%d", id, i), fmt.Sprintf("%sv%d", id, i), fmt.Sprintf("b%d", i), prefix+strconv.Itoa(10+i)
		cn.ns = append(cn.ns, ns)
		for _, s := range [][]string{
			{"netns", "add", ns},
			{"-n", ns, "link", "set", "lo", "up"},
			{"link", "add", link, "netns", ns, "type", "veth", "peer", "name", hubLink, "netns", cn.hub},
			{"-n", ns, "addr", "add", ip + "/24", "dev", link},
			{"-n", ns, "link", "set", link, "up"},
			{"-n", cn.hub, "link", "set", hubLink, "master", "br0", "up"},
		} {
			if err := ipCmd(s...); err != nil {
				return nil, err
			}
		}
		cn.ips = append(cn.ips, ip)
		cn.hubLinks = append(cn.hubLinks, hubLink)
	}
	for _, s := range [][]string{
		{"link", "add", rootLink, "type", "veth", "peer", "name", "up0", "netns", cn.hub},
		{"addr", "add", prefix + "1/24", "dev", rootLink},
		{"link", "set", rootLink, "up"},
		{"-n", cn.hub, "link", "set", "up0", "master", "br0", "up"},
	} {
		if err := ipCmd(s...); err != nil {
			return nil, err
		}
	}
	cn.iptables = exec.Command("ip", "netns", "exec", cn.ns[0], "iptables", "-L", "-n").Run() == nil
	return cn, nil
}

// chaosDisks mounts a tmpfs as every node's data directory, so a fault can
// shrink one until it is full and grow it again.
type chaosDisks struct {
	dirs []string
	size int64 // bytes of a healthy disk
}

func setupChaosDisks(t *testing.T, n int, size int64) (*chaosDisks, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root")
	}
	d := &chaosDisks{size: size}
	base := t.TempDir() // removed after the unmounts below (cleanups run last first)
	for i := range n {
		dir := filepath.Join(base, fmt.Sprintf("node-%d", i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, err
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mount tmpfs: %v: %s", err, bytes.TrimSpace(out))
		}
		t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		d.dirs = append(d.dirs, dir)
	}
	return d, nil
}

// resize sets disk i's size; it cannot go below what the disk holds.
func (d *chaosDisks) resize(i int, size int64) error {
	out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), d.dirs[i]).CombinedOutput()
	if err != nil {
		return fmt.Errorf("remount %s size=%d: %v: %s", d.dirs[i], size, err, bytes.TrimSpace(out))
	}
	return nil
}

// usage returns the bytes used and free on disk i.
func (d *chaosDisks) usage(i int) (used, free int64) {
	var st unix.Statfs_t
	if unix.Statfs(d.dirs[i], &st) != nil {
		return -1, -1
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize, int64(st.Bavail) * st.Bsize
}

// Fault kinds.
const (
	faultKillLeader     = "kill-leader"
	faultKillFollower   = "kill-follower"
	faultKillAll        = "kill-all"
	faultPause          = "pause"
	faultRollingRestart = "rolling-restart"
	faultIsolateLeader  = "isolate-leader"
	faultSplit          = "split"
	faultDiskFull       = "disk-full"
)

var allFaults = []string{faultKillLeader, faultKillFollower, faultKillAll, faultPause, faultRollingRestart, faultIsolateLeader, faultSplit, faultDiskFull}

// shutdownBound is how long a node may take to stop after SIGTERM before it
// is killed; one that needs killing fails the "every shutdown ends within
// 10 s" criterion.
const shutdownBound = 10 * time.Second

// nemesis injects faults into a cluster and heals them. Only the test's
// goroutine calls its methods, except pids.
type nemesis struct {
	t        *testing.T
	c        *cluster
	conns    []*grpc.ClientConn
	net      *chaosNet   // nil: no partitions
	disks    *chaosDisks // nil: no disk faults
	interval time.Duration
	rng      *rand.Rand
	origin   time.Time // the workload's start, for fault times

	paused      []bool
	isolated    []bool
	split       []bool
	shrunk      []bool
	faults      []faultRecord
	shutdowns   []string // shutdowns that needed SIGKILL or failed
	exitedAlone []string // nodes that exited without being told to

	mu      sync.Mutex // guards pidList
	pidList []int      // node i's process id, 0 when it is not running
}

func newNemesis(t *testing.T, c *cluster, conns []*grpc.ClientConn, cn *chaosNet, disks *chaosDisks, interval time.Duration, seed uint64) *nemesis {
	n := len(c.procs)
	nm := &nemesis{t: t, c: c, conns: conns, net: cn, disks: disks, interval: interval, rng: rand.New(rand.NewPCG(seed, 0x6e656d)),
		paused: make([]bool, n), isolated: make([]bool, n), split: make([]bool, n), shrunk: make([]bool, n), pidList: make([]int, n)}
	nm.notePids()
	return nm
}

func (nm *nemesis) notePids() {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	for i, p := range nm.c.procs {
		nm.pidList[i] = 0
		if p.cmd != nil {
			nm.pidList[i] = p.cmd.Process.Pid
		}
	}
}

// pids returns every node's process id (0: not running); any goroutine may
// call it.
func (nm *nemesis) pids() []int {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	return slices.Clone(nm.pidList)
}

// kinds returns the fault kinds this cluster supports, logging those it
// cannot inject.
func (nm *nemesis) kinds(want []string) []string {
	var ks []string
	for _, k := range want {
		switch {
		case (k == faultIsolateLeader || k == faultSplit) && nm.net == nil:
			nm.t.Logf("skipping %s faults: no network namespaces", k)
		case k == faultDiskFull && nm.disks == nil:
			nm.t.Logf("skipping %s faults: no tmpfs data directories", k)
		default:
			ks = append(ks, k)
		}
	}
	return ks
}

// self asks node i how it sees itself (nil: no answer).
func (nm *nemesis) self(i int) *logv1.Server {
	if nm.c.procs[i].cmd == nil || nm.paused[i] {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	resp, err := logv1.NewLogClient(nm.conns[i]).GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil || resp.Self == nil {
		return nil
	}
	return resp.Self
}

// leader returns the node that says it leads, among those not excluded
// (-1: none).
func (nm *nemesis) leader(exclude ...int) int {
	for i := range nm.c.procs {
		if slices.Contains(exclude, i) {
			continue
		}
		if s := nm.self(i); s != nil && s.State == "Leader" {
			return i
		}
	}
	return -1
}

// maxNext returns the highest next offset among the nodes not excluded that
// answer (-1: none).
func (nm *nemesis) maxNext(exclude ...int) int64 {
	m := int64(-1)
	for i := range nm.c.procs {
		if slices.Contains(exclude, i) {
			continue
		}
		if s := nm.self(i); s != nil {
			m = max(m, int64(s.NextOffset))
		}
	}
	return m
}

// hold waits out a fault's duration (a schedule, not a wait for state).
func hold(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}

// waitUntil polls cond until it holds or timeout passes, and reports which.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		hold(100 * time.Millisecond)
	}
	return true
}

// exited reports whether node i's process has ended (a zombie not reaped yet).
func (nm *nemesis) exited(i int) bool {
	p := nm.c.procs[i]
	if p.cmd == nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// reap notes and collects nodes that exited by themselves.
func (nm *nemesis) reap() {
	for i, p := range nm.c.procs {
		if nm.exited(i) {
			err := p.cmd.Wait()
			p.cmd = nil
			out := p.out.String()
			if len(out) > 2000 {
				out = out[len(out)-2000:]
			}
			nm.exitedAlone = append(nm.exitedAlone, fmt.Sprintf("%s exited by itself (%v); its output ends:\n%s", p.name, err, out))
		}
	}
	nm.notePids()
}

// kill sends SIGKILL to node i and reports whether it was running.
func (nm *nemesis) kill(i int) bool {
	p := nm.c.procs[i]
	if p.cmd == nil || nm.exited(i) {
		nm.reap()
		return false
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
	nm.paused[i] = false
	nm.notePids()
	return true
}

// stop sends sig to node i and waits for it to exit, at most shutdownBound,
// then kills it; a stop that needed the kill, or ended with an error, is
// recorded. It reports whether the node was running.
func (nm *nemesis) stop(i int, sig syscall.Signal) bool {
	p := nm.c.procs[i]
	if p.cmd == nil || nm.exited(i) {
		nm.reap()
		return false
	}
	if nm.paused[i] {
		p.cmd.Process.Signal(syscall.SIGCONT)
		nm.paused[i] = false
	}
	if msg := stopMessage(p.name, p.cmd, sig); msg != "" {
		nm.shutdowns = append(nm.shutdowns, msg)
	}
	p.cmd = nil
	nm.notePids()
	return true
}

// stopMessage sends sig to the node name runs as cmd and waits for it to
// exit, at most shutdownBound, then kills it; it says how the stop failed
// ("" when the node exited 0 in time).
func stopMessage(name string, cmd *exec.Cmd, sig syscall.Signal) string {
	began := time.Now()
	killed, err := stopProcess(cmd, sig, shutdownBound)
	switch {
	case killed:
		return fmt.Sprintf("%s did not exit within %v of %v (killed after %v)", name, shutdownBound, sig, time.Since(began).Round(time.Millisecond))
	case err != nil:
		return fmt.Sprintf("%s after %v: %v", name, sig, err)
	}
	return ""
}

// stopAll sends sig to every running node at once and waits for them to
// exit, each at most shutdownBound before it is killed; as stop, it records
// the stops that needed the kill or failed.
func (nm *nemesis) stopAll(sig syscall.Signal) {
	nm.reap()
	results := make([]string, len(nm.c.procs))
	var wg sync.WaitGroup
	for i, p := range nm.c.procs {
		if p.cmd == nil {
			continue
		}
		if nm.paused[i] {
			p.cmd.Process.Signal(syscall.SIGCONT)
			nm.paused[i] = false
		}
		cmd, name := p.cmd, p.name
		wg.Go(func() { results[i] = stopMessage(name, cmd, sig) })
	}
	wg.Wait()
	for i, p := range nm.c.procs {
		p.cmd = nil
		if results[i] != "" {
			nm.shutdowns = append(nm.shutdowns, results[i])
		}
	}
	nm.notePids()
}

// startNodes starts the given nodes that are not running; node 0 (every
// other node's join address) goes first and is let reach its port first.
func (nm *nemesis) startNodes(which ...int) {
	nm.reap()
	slices.Sort(which)
	for _, i := range which {
		p := nm.c.procs[i]
		if p.cmd != nil {
			continue
		}
		nm.c.start(p)
		if i == 0 && len(which) > 1 {
			// The others join through node 0's gossip port: wait until it
			// and the RPC port listen, so a joiner does not depend on how
			// it copes with a seed that is not up yet.
			gossip := argAfter(p.args, "--bind-addr")
			if !waitUntil(10*time.Second, func() bool { return listening(p.rpcAddr) && listening(gossip) }) {
				nm.t.Logf("%s not listening 10 s after its restart", p.name)
			}
		}
	}
	nm.notePids()
}

func listening(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		conn.Close()
	}
	return err == nil
}

func (nm *nemesis) all() []int {
	var all []int
	for i := range nm.c.procs {
		all = append(all, i)
	}
	return all
}

// setLink brings node i's link to the bridge up or down.
func (nm *nemesis) setLink(i int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ipCmd("-n", nm.net.hub, "link", "set", nm.net.hubLinks[i], state)
}

// cut drops all traffic between node i and the other nodes (the test still
// reaches it), with iptables in node i's namespace.
func (nm *nemesis) cut(i int) error {
	for j, ip := range nm.net.ips {
		if j == i {
			continue
		}
		for _, rule := range [][]string{{"INPUT", "-s", ip}, {"OUTPUT", "-d", ip}} {
			args := slices.Concat([]string{"netns", "exec", nm.net.ns[i], "iptables", "-A"}, rule, []string{"-j", "DROP"})
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("iptables in %s: %v: %s", nm.net.ns[i], err, out)
			}
		}
	}
	return nil
}

func (nm *nemesis) uncut(i int) error {
	if out, err := exec.Command("ip", "netns", "exec", nm.net.ns[i], "iptables", "-F").CombinedOutput(); err != nil {
		return fmt.Errorf("iptables -F in %s: %v: %s", nm.net.ns[i], err, out)
	}
	return nil
}

// heal undoes every fault: paused nodes continue, links come up, iptables
// rules go, disks grow back, and stopped or exited nodes start again.
func (nm *nemesis) heal() {
	for i, p := range nm.c.procs {
		if nm.paused[i] && p.cmd != nil {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
		nm.paused[i] = false
		if nm.isolated[i] {
			if err := nm.setLink(i, true); err != nil {
				nm.t.Errorf("heal: %v", err)
			}
			nm.isolated[i] = false
		}
		if nm.split[i] {
			if err := nm.uncut(i); err != nil {
				nm.t.Errorf("heal: %v", err)
			}
			nm.split[i] = false
		}
		if nm.shrunk[i] {
			if err := nm.disks.resize(i, nm.disks.size); err != nil {
				nm.t.Errorf("heal: %v", err)
			}
			nm.shrunk[i] = false
		}
	}
	nm.startNodes(nm.all()...)
}

// follower picks a node other than the leader (any node when there is none).
func (nm *nemesis) follower(leader int) int {
	for {
		if f := nm.rng.IntN(len(nm.c.procs)); f != leader {
			return f
		}
	}
}

// inject injects one fault of kind, holds it, heals it and records it.
// Effective means: a killed, paused or isolated leader was replaced by
// another; a killed, paused, isolated or full follower missed commits the
// others made meanwhile; a kill of every node killed three running ones; a
// rolling restart stopped every node within the bound and each served again.
func (nm *nemesis) inject(kind string) faultRecord {
	rec := faultRecord{Kind: kind, At: time.Since(nm.origin).Round(time.Millisecond)}
	holdFor := nm.interval / 2
	names := func(is ...int) string {
		var s []string
		for _, i := range is {
			s = append(s, nm.c.procs[i].name)
		}
		return strings.Join(s, ",")
	}
	defer nm.heal()
	switch kind {
	case faultKillLeader, faultIsolateLeader:
		l := nm.leader()
		if l < 0 {
			rec.Note = "no leader"
			return rec
		}
		rec.Target = names(l)
		before := nm.maxNext(l)
		if kind == faultKillLeader {
			rec.Fired = nm.kill(l)
		} else {
			rec.Fired = nm.setLink(l, false) == nil
			nm.isolated[l] = rec.Fired
		}
		hold(holdFor)
		nl, after := nm.leader(l), nm.maxNext(l)
		rec.Effective = rec.Fired && nl >= 0
		rec.Note = fmt.Sprintf("new leader %s; others' next offset %d → %d", nameOr(nm, nl), before, after)
	case faultKillFollower, faultPause, faultDiskFull, faultSplit:
		l := nm.leader()
		target := nm.follower(l)
		if kind == faultPause && nm.rng.IntN(2) == 0 && l >= 0 {
			target = l // a paused leader, for longer than the election timeout
		}
		rec.Target = names(target)
		before := nm.maxNext(target)
		var targetNext int64 = -1
		if s := nm.self(target); s != nil {
			targetNext = int64(s.NextOffset)
		}
		switch kind {
		case faultKillFollower:
			rec.Fired = nm.kill(target)
		case faultPause:
			if p := nm.c.procs[target]; p.cmd != nil && !nm.exited(target) {
				rec.Fired = p.cmd.Process.Signal(syscall.SIGSTOP) == nil
				nm.paused[target] = rec.Fired
			}
			holdFor = max(holdFor, 3*time.Second)
		case faultDiskFull:
			used, _ := nm.disks.usage(target)
			err := nm.disks.resize(target, used+64<<10)
			rec.Fired = err == nil
			nm.shrunk[target] = rec.Fired
			if err != nil {
				rec.Note = err.Error()
			}
		case faultSplit:
			if nm.net.iptables {
				err := nm.cut(target)
				rec.Fired = err == nil
				nm.split[target] = true
				if err != nil {
					rec.Note = err.Error()
				}
			} else {
				rec.Fired = nm.setLink(target, false) == nil
				nm.isolated[target] = rec.Fired
			}
		}
		hold(holdFor)
		after := nm.maxNext(target)
		if s := nm.self(target); s != nil && kind != faultPause {
			targetNext = int64(s.NextOffset)
		}
		missed := after > before && (targetNext < 0 || after > targetNext)
		rec.Effective = rec.Fired && missed
		if target == l {
			nl := nm.leader(target)
			rec.Effective = rec.Fired && nl >= 0
			rec.Note = fmt.Sprintf("leader paused; new leader %s; ", nameOr(nm, nl))
		}
		rec.Note += fmt.Sprintf("others' next offset %d → %d, %s's %d", before, after, nm.c.procs[target].name, targetNext)
		if kind == faultDiskFull {
			used, free := nm.disks.usage(target)
			rec.Note += fmt.Sprintf("; disk used %d KiB, free %d KiB", used>>10, free>>10)
		}
	case faultKillAll:
		rec.Target = names(nm.all()...)
		killed := 0
		for i := range nm.c.procs {
			if nm.kill(i) {
				killed++
			}
		}
		rec.Fired = killed > 0
		rec.Effective = killed == len(nm.c.procs)
		rec.Note = fmt.Sprintf("%d running nodes killed", killed)
		hold(holdFor / 2)
	case faultRollingRestart:
		rec.Target = names(nm.all()...)
		before := len(nm.shutdowns)
		served := 0
		for i, p := range nm.c.procs {
			if nm.stop(i, syscall.SIGTERM) {
				rec.Fired = true
			}
			nm.startNodes(i)
			if waitUntil(20*time.Second, func() bool { return nm.c.serving(p) }) {
				served++
			}
		}
		rec.Effective = rec.Fired && served == len(nm.c.procs) && len(nm.shutdowns) == before
		rec.Note = fmt.Sprintf("%d of %d nodes served again within 20 s; %d shutdowns over the bound or failed", served, len(nm.c.procs), len(nm.shutdowns)-before)
	}
	return rec
}

func nameOr(nm *nemesis, i int) string {
	if i < 0 {
		return "none"
	}
	return nm.c.procs[i].name
}

// run injects a fault every interval until d has passed since the origin,
// cycling through kinds in an order shuffled once per cycle.
func (nm *nemesis) run(kinds []string, d time.Duration) {
	var order []string
	for next := nm.interval; next+nm.interval/2 <= d; next += nm.interval {
		if wait := time.Until(nm.origin.Add(next)); wait > 0 {
			hold(wait)
		}
		if len(order) == 0 {
			order = slices.Clone(kinds)
			nm.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		kind := order[0]
		order = order[1:]
		rec := nm.inject(kind)
		nm.faults = append(nm.faults, rec)
		nm.t.Logf("fault %s on %s at %v: fired %v, effective %v (%s)", rec.Kind, rec.Target, rec.At, rec.Fired, rec.Effective, rec.Note)
	}
}
