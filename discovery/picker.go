package discovery

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
)

// balancerName is the name of the load-balancing policy Dial selects.
const balancerName = "proglog"

// serviceConfig selects the policy for a Client's ClientConn.
const serviceConfig = `{"loadBalancingConfig":[{"` + balancerName + `":{}}]}`

// The policy is registered once per process, as gRPC requires; it is
// stateless: every ClientConn gets its own balancer and pickers.
func init() {
	balancer.Register(base.NewBalancerBuilder(balancerName, pickerBuilder{}, base.Config{}))
}

// requireLeaderKey is a context key: a read carrying it waits for the leader's
// connection to be ready instead of going to a follower.
type requireLeaderKey struct{}

func requireLeader(ctx context.Context) context.Context {
	return context.WithValue(ctx, requireLeaderKey{}, true)
}

// avoidKey is a context key: a read carrying it goes to a server whose address
// is not in the []string value when one is ready. Read uses it to move away
// from a server that stopped sending.
type avoidKey struct{}

func avoiding(ctx context.Context, addrs []string) context.Context {
	if len(addrs) == 0 {
		return ctx
	}
	return context.WithValue(ctx, avoidKey{}, addrs)
}

// pickedKey is a context key: Pick stores the address of the connection it
// chose for a call carrying it in the *atomic.Pointer[string] value, so a
// write in flight knows which server it went to (watchLeader).
type pickedKey struct{}

func noticingPick(ctx context.Context, addr *atomic.Pointer[string]) context.Context {
	return context.WithValue(ctx, pickedKey{}, addr)
}

// pickerBuilder builds a picker over the ready connections each time they or
// the resolver's addresses change.
type pickerBuilder struct{}

var _ base.PickerBuilder = pickerBuilder{}

// Build sorts the ready connections into the leader and the followers.
func (pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	p := &picker{addrs: map[balancer.SubConn]string{}}
	for sc, sci := range info.ReadySCs {
		p.all = append(p.all, sc)
		p.addrs[sc] = sci.Address.Addr
		if isLeader(sci.Address) {
			p.leader = sc
		} else {
			p.followers = append(p.followers, sc)
		}
	}
	return p
}

// picker routes writes to the leader, reads round-robin over the followers
// (the leader when no follower is ready; servers a read avoids only when
// nothing else is ready) and GetServers to any server. It is
// immutable but for the round-robin counter, so gRPC may call Pick from many
// goroutines.
type picker struct {
	leader    balancer.SubConn // nil when no leader is known or ready
	followers []balancer.SubConn
	all       []balancer.SubConn
	addrs     map[balancer.SubConn]string
	next      atomic.Uint32
}

var _ balancer.Picker = (*picker)(nil)

// Pick chooses the connection for one call. Without a suitable connection
// it returns balancer.ErrNoSubConnAvailable: the call waits for the next
// picker (calls are made with WaitForReady).
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	method := info.FullMethodName[strings.LastIndexByte(info.FullMethodName, '/')+1:]
	var sc balancer.SubConn
	switch method {
	case "Produce", "ProduceBatch", "ProduceStream", "ProduceBatchStream":
		sc = p.leader
	case "GetServers":
		sc = p.roundRobin(p.all)
	default: // Consume, ConsumeStream, ConsumeBatchStream, GetOffsets, GetOffsetForTime
		if v, _ := info.Ctx.Value(requireLeaderKey{}).(bool); v {
			sc = p.leader
			break
		}
		avoid, _ := info.Ctx.Value(avoidKey{}).([]string)
		sc = p.roundRobin(p.without(p.followers, avoid))
		if sc == nil && p.leader != nil && !slices.Contains(avoid, p.addrs[p.leader]) {
			sc = p.leader
		}
		if sc == nil { // every ready server is avoided: better one of them than none
			sc = p.roundRobin(p.followers)
		}
		if sc == nil {
			sc = p.leader
		}
	}
	if sc == nil {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	if picked, _ := info.Ctx.Value(pickedKey{}).(*atomic.Pointer[string]); picked != nil {
		addr := p.addrs[sc]
		picked.Store(&addr)
	}
	return balancer.PickResult{SubConn: sc}, nil
}

// without returns scs but those at an address in avoid.
func (p *picker) without(scs []balancer.SubConn, avoid []string) []balancer.SubConn {
	if len(avoid) == 0 {
		return scs
	}
	var out []balancer.SubConn
	for _, sc := range scs {
		if !slices.Contains(avoid, p.addrs[sc]) {
			out = append(out, sc)
		}
	}
	return out
}

func (p *picker) roundRobin(scs []balancer.SubConn) balancer.SubConn {
	if len(scs) == 0 {
		return nil
	}
	return scs[int(p.next.Add(1)-1)%len(scs)]
}
