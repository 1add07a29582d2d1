package node

import "github.com/proglogctl/proglogctl/discovery"

// GossipMembers returns the Serf members as this node sees them (nil without
// Serf).
func (n *Node) GossipMembers() []discovery.Member {
	if n.members == nil {
		return nil
	}
	return n.members.Members()
}
