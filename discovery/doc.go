// Package discovery is how proglogctl servers find each other: Serf gossip
// membership, with each member's RPC address in its tags, turned into calls to
// a Handler that the node implements over the Raft configuration. It is also
// how clients find the servers: Dial returns a Client that follows the
// cluster (see Clients below).
//
// # Events
//
// Every member runs a Membership; every member sees every event. Serf's events
// about the other members map onto the Handler like this:
//
//	Serf event          Handler call                 when
//	------------------  ---------------------------  ------------------------------------
//	EventMemberJoin     Join(name, tags[rpc_addr])   a member joins or comes back
//	EventMemberUpdate   Join(name, tags[rpc_addr])   a member's tags change
//	EventMemberLeave    Leave(name)                  a member left gracefully (Leave)
//	EventMemberReap     Leave(name)                  a failed member stayed away for
//	                                                 72 h, or a departed one is forgotten
//	EventMemberFailed   —                            a member stopped answering
//
// A member that merely failed (crashed, partitioned, or stopped with Close)
// stays a Raft voter: it is expected back, and removing it would shrink the
// quorum under a restart. Only a graceful Leave, or being away for the whole
// reconnect timeout, removes it.
//
// Only the Raft leader can change the configuration, so on every other member
// the Handler fails; the node wraps that error with ErrIgnorable and it is
// logged at Debug. Other Handler errors are logged at Warn. Events are not
// retried: a leader that comes to power after a member joined reconciles from
// Members (the members and their RPC addresses) rather than from events.
//
// # Joining
//
// New starts Serf and returns without waiting for Config.StartJoinAddrs: a
// goroutine joins them, all in one attempt, and retries until an attempt
// reaches at least one (Consul's retry-join). The waits between attempts
// start at RetryJoinInterval (0.5 s) and double up to RetryJoinMaxInterval
// (30 s), each drawn from the upper half of its interval so members started
// together spread out. Each failed attempt is logged once at Warn; once an
// attempt succeeds the goroutine ends. So members can start in any order, and
// a member restarting while its join addresses are down runs alone (its Raft
// peers are in the Raft configuration, not in Serf) until one is back.
//
// # Restarts
//
// A member that restarts under the same name rejoins without help, and is
// reported to Join again with its (possibly new) RPC address as soon as the
// others see it back. At a new gossip address the others accept it at once if
// it had left gracefully, and otherwise only once they have declared the old
// address failed and 30 s have passed, so a quick restart elsewhere can take
// a minute or two to be seen. Serf's name-conflict resolution is off: it could
// shut down the gossip of a node restarted at a new address while the others
// still believe the old one alive.
//
// # Encryption
//
// With Config.EncryptKey set, all gossip is encrypted and authenticated with
// AES-GCM, and members without the same key cannot join.
//
// # Clients
//
// Dial("proglog://host:port[,host:port...]") makes one gRPC ClientConn with
// its own resolver (passed with grpc.WithResolvers, never registered
// globally) and the "proglog" load-balancing policy (registered once; it
// keeps no state outside each ClientConn):
//
//	resolver goroutine ──GetServers──▶ last server that answered, else the
//	   │  (own TLS conn)               servers it knew, else the seeds
//	   ▼
//	resolver.State{addresses; the leader's carries an attribute}
//	   ▼
//	picker over the READY connections:
//	  Produce, ProduceBatch, ProduceStream   → leader (none: wait)
//	  Consume*, GetOffsets, GetOffsetForTime → followers round robin, else leader
//	                                           (skipping servers a Read avoids)
//	  GetServers                             → any
//
// The resolver asks again every few seconds, when gRPC reports a failed
// connection (ResolveNow), and prefers an answer that names a leader; a server
// slow to answer does not hold it up, as it asks the next one as well after a
// short wait. Every
// call through the picker is made with WaitForReady, so a write waits (within
// its context) for a leader to be known and connected. Client.Servers is the
// exception that bypasses the picker: after one answer it asks each server
// directly, on a connection of its own, how it sees itself. Writes are never retried by the client:
// an UNAVAILABLE whose outcome is unknown is returned as is. Client.Read
// resumes a broken ConsumeBatchStream at the next offset, on whichever server
// the picker chooses; a stream that stays quiet while records exist is given
// up, and its server avoided, so a server that cannot answer costs a read a
// quarter of the answer timeout, and no answer at all ends it within the
// timeout (SetAnswerTimeout). A read decodes the stream's messages itself
// (batchCodec, a forced codec on that call only): each message is copied once
// into one of two buffers the read alternates between, and its records'
// values are slices of it, so a record handed to Read's or ReadBatches'
// function is valid until the function returns.
//
// Until a server has first answered, a client fails fast: calls wait for the
// resolver's first answer (an interceptor, before gRPC picks a connection),
// and fail with a *ConnectError when a TLS handshake fails (ErrHandshake, at
// once) or every server has refused the connection for UnreachableAfter
// (ErrUnreachable). After that first answer the client never gives up this
// way. Messages are sized for the servers' record limit (MessageBytes,
// MaxRecordBytes).
//
// Because the leader attribute is part of an address's identity, a leader
// change replaces the connections of the two servers whose role changed;
// calls in progress on them finish on the old connections.
//
// # Concurrency
//
// A Client may be used from many goroutines. Its resolver runs one goroutine
// that owns its state and its connection; Client.Close stops it.
// Client.Servers runs one goroutine per server it asks and returns when all
// have ended.
//
// One goroutine per Membership calls the Handler, one call at a time, in event
// order; another joins StartJoinAddrs until it has. Members may be called from
// any goroutine, also after Leave or Close. Leave and Close serialize on a
// mutex; each stops the join goroutine (a wait between attempts ends at once,
// an attempt in flight is waited for), stops Serf and joins the event
// goroutine (waiting for a Handler call in progress), so the Handler must not
// call them. Serf's own goroutines end when Serf shuts down.
package discovery
