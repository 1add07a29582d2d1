package node

import (
	"errors"
	"fmt"

	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// membership turns Serf's events into Raft membership changes. Every member
// sees every event, but only the leader can change the configuration: on the
// others the not-leader error is marked ignorable.
type membership struct{ n *Node }

var _ discovery.Handler = membership{}

func (m membership) Join(name, addr string) error { return ignorable(m.n.log.Join(name, addr)) }
func (m membership) Leave(name string) error      { return ignorable(m.n.log.Leave(name)) }

func ignorable(err error) error {
	if errors.Is(err, replica.ErrNotLeader) {
		return fmt.Errorf("%w: %w", discovery.ErrIgnorable, err)
	}
	return err
}

// reconcile applies Serf's current view when this node becomes leader:
// events that arrived while there was no leader were ignored by everyone, and
// a leader that left Serf before handing over leadership is removed here.
func (n *Node) reconcile() {
	if n.members == nil {
		return
	}
	for _, m := range n.members.Members() {
		if m.Name == n.conf.NodeID {
			continue
		}
		var err error
		switch m.Status {
		case discovery.StatusAlive:
			err = n.log.Join(m.Name, m.RPCAddr)
		case discovery.StatusLeft:
			err = n.log.Leave(m.Name)
		}
		if err != nil && !errors.Is(err, replica.ErrNotLeader) {
			n.logger.Warn("reconciling membership with Serf", "member", m.Name, "status", m.Status, "err", err)
		}
	}
}

// GossipAddr returns the host:port Serf listens on ("" without Serf), which
// other nodes give as --start-join-addrs.
func (n *Node) GossipAddr() string {
	if n.members == nil {
		return ""
	}
	for _, m := range n.members.Members() {
		if m.Name == n.conf.NodeID {
			return m.GossipAddr
		}
	}
	return ""
}
