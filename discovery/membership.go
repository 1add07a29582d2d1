package discovery

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

var (
	// ErrIgnorable marks a Handler error that is expected and needs no
	// attention: it is logged at Debug instead of Warn. Every member sees
	// every membership event but only the Raft leader can act on it, so the
	// node wraps raftfsm's not-leader error with it:
	//
	//	fmt.Errorf("%w: %w", discovery.ErrIgnorable, err)
	ErrIgnorable = errors.New("discovery: ignorable")
	// ErrClosed is returned by Leave after Close.
	ErrClosed = errors.New("discovery: membership closed")
)

// Handler is told about the other members joining and leaving the cluster. The
// node implements it over raftfsm.Log's Join and Leave.
//
// Calls come from one goroutine, one at a time, in the order Serf reported the
// events; never for this node itself. Both methods must be idempotent: the
// same member may be reported again (a tag update is a Join, and a member that
// left is reported once more as a Leave when Serf forgets it). A call must not
// call the Membership's Leave or Close, which wait for it.
type Handler interface {
	// Join is called when member name joins, rejoins or changes its tags;
	// addr is its Tags[TagRPCAddr].
	Join(name, addr string) error
	// Leave is called when member name left gracefully, or when it had
	// failed and did not come back within the reconnect timeout (72 hours).
	// A member that merely failed is not reported.
	Leave(name string) error
}

// Status is a member's state as this node sees it.
type Status string

// Member states.
const (
	StatusAlive   Status = "alive"
	StatusLeaving Status = "leaving" // leave announced, not yet gone
	StatusLeft    Status = "left"    // left gracefully
	StatusFailed  Status = "failed"  // stopped answering; may come back
)

// Member is one member of the cluster.
type Member struct {
	Name       string
	RPCAddr    string // Tags[TagRPCAddr]
	GossipAddr string // host:port Serf gossips on
	Tags       map[string]string
	Status     Status
}

const (
	// reconnectTimeout is how long a failed member is remembered (and kept
	// as a Raft voter) before it is given up and reported to Handler.Leave.
	// It should be well above the longest outage a node is expected to
	// recover from, like Consul's default.
	reconnectTimeout = 72 * time.Hour
	// tombstoneTimeout is how long a member that left is remembered, so the
	// news reaches members that were partitioned away when it left.
	tombstoneTimeout = 24 * time.Hour
	// deadNodeReclaimTime is how long after a member failed another process
	// may take its name from a different address: a node that crashed and
	// restarted elsewhere rejoins without anyone's help.
	deadNodeReclaimTime = 30 * time.Second
	// eventBuffer is the capacity of the channel Serf delivers events on. Serf
	// forwards events to it from a goroutine that, once started on a send,
	// ignores shutdown; up to 1024 events may be queued inside Serf. A buffer
	// larger than that, emptied when the event goroutine stops, means the
	// send always completes and that goroutine exits.
	eventBuffer = 2048
)

// Membership is this node's view of the cluster: a Serf agent that gossips
// with the other members and reports their joins and departures to a Handler.
//
// Serf runs its own goroutines. The Membership owns two: the event goroutine,
// which calls the Handler, and, while joining StartJoinAddrs, the join
// goroutine. mu serializes Leave and Close, which stop all of them.
type Membership struct {
	name    string
	logger  *slog.Logger
	handler Handler
	serf    *serf.Serf

	stop chan struct{} // closed to stop the event goroutine
	wg   sync.WaitGroup

	joinStop chan struct{} // closed to stop the join goroutine
	joinWG   sync.WaitGroup

	mu    sync.Mutex
	state int // stateRunning, stateLeft or stateClosed; guarded by mu
}

const (
	stateRunning = iota
	stateLeft
	stateClosed
)

// New starts Serf for the member id on c.BindAddr and starts reporting
// membership events to h. With c.StartJoinAddrs it also starts joining them
// in the background, retrying until one answers (see Config.StartJoinAddrs):
// members that are not up yet are no error, and New does not wait for them.
func New(id Identity, c Config, h Handler) (*Membership, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("discovery: Handler is nil")
	}
	sc, events, err := c.serfConfig(id)
	if err != nil {
		return nil, err
	}
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("discovery: start serf on %s: %w", c.BindAddr, err)
	}
	m := &Membership{
		name:     id.Name,
		logger:   id.Logger,
		handler:  h,
		serf:     s,
		stop:     make(chan struct{}),
		joinStop: make(chan struct{}),
	}
	m.wg.Add(1)
	go m.run(events)
	if len(c.StartJoinAddrs) > 0 {
		m.joinWG.Add(1)
		go m.retryJoin(slices.Clone(c.StartJoinAddrs), c.RetryJoinInterval, c.RetryJoinMaxInterval)
	}
	return m, nil
}

// retryJoin joins the members at addrs, all in one attempt, and retries
// after a failed attempt until one succeeds or joinStop is closed. The wait
// starts at wait and doubles up to maxWait, each drawn at random from the
// upper half of its interval. Each failed attempt is logged once, at Warn.
func (m *Membership) retryJoin(addrs []string, wait, maxWait time.Duration) {
	defer m.joinWG.Done()
	for attempt := 1; ; attempt++ {
		n, err := m.serf.Join(addrs, true)
		if n > 0 {
			m.logger.Info("joined cluster", "contacted", n, "addrs", addrs, "attempts", attempt)
			if err != nil {
				// Gossip spreads the news of this member anyway.
				m.logger.Warn("joined cluster, but announcing the join failed", "err", err)
			}
			return
		}
		select {
		case <-m.joinStop:
			return // closing: the failure is no news
		default:
		}
		d := wait/2 + rand.N(wait/2+1)
		m.logger.Warn("joining cluster failed; retrying", "addrs", addrs, "attempt", attempt, "retry_in", d.Round(time.Millisecond), "err", oneLine(err))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-m.joinStop:
			t.Stop()
			return
		}
		wait = min(2*wait, maxWait)
	}
}

// serfConfig builds Serf's configuration for the member id and the channel it
// delivers events on.
func (c Config) serfConfig(id Identity) (*serf.Config, chan serf.Event, error) {
	host, port, err := splitAddr(c.BindAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("discovery: BindAddr: %w", err)
	}
	ip := net.IPv4zero
	if host != "" {
		a, err := net.ResolveIPAddr("ip", host)
		if err != nil {
			return nil, nil, fmt.Errorf("discovery: BindAddr: %w", err)
		}
		ip = a.IP
	}
	logger := newLogLogger(id.Logger)

	mc := memberlist.DefaultLANConfig()
	mc.BindPort = port
	mc.AdvertisePort = port // memberlist replaces both when port is 0
	if ip.IsUnspecified() {
		// memberlist advertises a private address of this host.
		mc.BindAddr = net.IPv4zero.String()
	} else {
		mc.BindAddr = ip.String()
		mc.AdvertiseAddr = ip.String()
	}
	mc.SecretKey = c.EncryptKey
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.LogOutput = nil
	mc.Logger = logger

	events := make(chan serf.Event, eventBuffer)
	sc := serf.DefaultConfig()
	sc.Init()
	sc.NodeName = id.Name
	sc.Tags = map[string]string{TagRPCAddr: id.RPCAddr}
	sc.EventCh = events
	sc.MemberlistConfig = mc
	sc.ReconnectTimeout = reconnectTimeout
	sc.TombstoneTimeout = tombstoneTimeout
	// Names are unique by configuration (they are Raft IDs). When one comes
	// back from a new address, Serf's conflict resolution would vote on it
	// and could shut down the restarted node's gossip, silently; instead the
	// old address is dropped once it is known to have failed.
	sc.EnableNameConflictResolution = false
	sc.LogOutput = nil
	sc.Logger = logger
	if c.tuneSerf != nil {
		c.tuneSerf(sc)
	}
	return sc, events, nil
}

// run reports membership events to the handler until stop is closed.
func (m *Membership) run(events <-chan serf.Event) {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			for {
				select {
				case <-events:
				default:
					return
				}
			}
		default:
		}
		select {
		case e := <-events:
			if me, ok := e.(serf.MemberEvent); ok {
				m.handle(me)
			}
		case <-m.stop:
		}
	}
}

func (m *Membership) handle(e serf.MemberEvent) {
	for _, mem := range e.Members {
		if mem.Name == m.name {
			continue
		}
		switch e.Type {
		case serf.EventMemberJoin, serf.EventMemberUpdate:
			addr := mem.Tags[TagRPCAddr]
			if addr == "" {
				m.logger.Warn("member has no RPC address; ignored", "event", e.Type.String(), "member", mem.Name, "tag", TagRPCAddr)
				continue
			}
			m.report(e.Type, mem.Name, addr, m.handler.Join(mem.Name, addr))
		case serf.EventMemberLeave, serf.EventMemberReap:
			m.report(e.Type, mem.Name, "", m.handler.Leave(mem.Name))
		case serf.EventMemberFailed:
			// A failed member may come back: it stays a member until it
			// leaves or the reconnect timeout reaps it.
			m.logger.Debug("member failed; it stays a member until it leaves or is reaped", "member", mem.Name)
		}
	}
}

func (m *Membership) report(t serf.EventType, name, addr string, err error) {
	switch {
	case err == nil:
		m.logger.Debug("member event handled", "event", t.String(), "member", name, "rpc_addr", addr)
	case errors.Is(err, ErrIgnorable):
		m.logger.Debug("member event not acted on", "event", t.String(), "member", name, "rpc_addr", addr, "err", err)
	default:
		m.logger.Warn("member event handler failed", "event", t.String(), "member", name, "rpc_addr", addr, "err", err)
	}
}

// Members returns every member this node knows of, itself included, ordered
// by name. Members that left or failed are listed until Serf forgets them.
func (m *Membership) Members() []Member {
	sm := m.serf.Members()
	out := make([]Member, 0, len(sm))
	for _, s := range sm {
		out = append(out, Member{
			Name:       s.Name,
			RPCAddr:    s.Tags[TagRPCAddr],
			GossipAddr: net.JoinHostPort(s.Addr.String(), strconv.Itoa(int(s.Port))),
			Tags:       maps.Clone(s.Tags),
			Status:     Status(s.Status.String()),
		})
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Leave leaves the cluster for good: it tells the other members, which report
// this node to their Handler.Leave, then stops like Close. It blocks while the
// news spreads: about a second, and at most about 11 s when members do not
// answer (Serf's broadcast timeout, twice, and its propagation delay). Calling
// it again returns nil; after Close it returns ErrClosed.
func (m *Membership) Leave() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case stateLeft:
		return nil
	case stateClosed:
		return ErrClosed
	}
	m.state = stateLeft
	m.stopJoinLocked()
	err := m.serf.Leave()
	if serr := m.shutdownLocked(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("discovery: leave: %w", err)
	}
	return nil
}

// Close stops gossiping without leaving: the other members see this node
// fail, and it stays a member until it comes back, leaves or is reaped. It
// stops joining StartJoinAddrs if that is still under way, and waits for a
// Handler call in progress. Close after Close or Leave returns nil.
func (m *Membership) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != stateRunning {
		return nil
	}
	m.state = stateClosed
	m.stopJoinLocked()
	if err := m.shutdownLocked(); err != nil {
		return fmt.Errorf("discovery: close: %w", err)
	}
	return nil
}

// oneLine renders the errors of a join attempt, one per address that
// failed, on one line; memberlist reports them as a multi-line list.
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	if me, ok := err.(interface{ WrappedErrors() []error }); ok && len(me.WrappedErrors()) > 0 {
		var b strings.Builder
		for i, e := range me.WrappedErrors() {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(e.Error())
		}
		return b.String()
	}
	return err.Error()
}

// stopJoinLocked stops joining StartJoinAddrs and waits for the join
// goroutine to end. A wait between attempts ends at once; an attempt in
// flight runs to its end, which each address that drops packets holds up for
// memberlist's TCP timeout (10 s); a refused connection ends it at once.
func (m *Membership) stopJoinLocked() {
	close(m.joinStop)
	m.joinWG.Wait()
}

func (m *Membership) shutdownLocked() error {
	err := m.serf.Shutdown()
	close(m.stop)
	m.wg.Wait()
	return err
}
