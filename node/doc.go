// Package node runs one member of a proglogctl cluster: the replicated log
// (a replica.Log, which raftfsm implements), Raft and the log.v1 gRPC API, all
// on one TCP port.
//
// # One port
//
//	          TCP listener (Config.RPCAddr)
//	                    |
//	             transport.Mux: first byte
//	         /                         \
//	0x01 → Mux.Raft()              other → Mux.Other()
//	StreamLayer, mTLS with         grpc.Server, TLS terminated by gRPC
//	PeerTLS both ways              with ServerTLS: log.v1, health,
//	→ raft.NetworkTransport        reflection
//
// Raft connections begin with the byte 0x01 and never reach gRPC. Raft stores
// the advertised address, so the leader's Raft address is also its gRPC
// address.
//
// # Security
//
// Every gRPC connection is TLS with a verified client certificate (ServerTLS).
// Every log.v1 call is authorized by interceptors, with the certificate's
// common name as subject: Produce, ProduceBatch, ProduceStream and
// ProduceBatchStream need "produce"; Consume, ConsumeStream, ConsumeBatchStream, GetOffsets and
// GetOffsetForTime need "consume" (GetOffsets also lets node certificates
// through, for read indexes); GetServers needs only an authenticated client, since clients find
// the leader with it (as log.proto documents). The health and
// reflection services need only the TLS handshake.
//
// # Reloads
//
// With Config.ServerCerts and PeerCerts (certs.Reloader) instead of ServerTLS
// and PeerTLS, Reload loads the certificates and CAs again from their files,
// and the ACL too when the Authorizer has a Reload method (authz.Authorizer).
// Each is taken up whole or refused (logged, the old one stays). Every
// handshake after a Reload uses the new files: accepted ones through
// GetConfigForClient, dialed Raft connections through the stream layer's new
// client configuration, forwarding connections through credentials that read
// the peer configuration in force at each handshake. Every call after it is
// authorized by the new policy, on old connections as on new.
//
// # The data directory
//
// New refuses a data directory that is a file, not writable, or half made (a
// log without Raft state), with an error wrapping ErrDataDir that says what
// to do; it checks the Serf address before it makes anything there, and a
// start that fails later removes what it made in a directory that was
// missing or empty.
//
// # Writes on a follower
//
//	client ──ProduceStream──▶ follower ──ProduceBatch (node cert)──▶ leader
//	          authz: client's CN             authz: serverAuth EKU = a node
//
// A follower authorizes the original client itself and forwards the records
// as a ProduceBatch to the leader over one cached gRPC connection per leader
// address (replaced when the leader changes), presenting its node certificate
// (PeerTLS). The leader lets a write through from any certificate with the
// serverAuth usage, which only node certificates carry (and which may speak
// Raft anyway); a forwarded write is never forwarded again, so a call that
// lands on a former leader fails with UNAVAILABLE instead of looping.
//
// # Reads past a node's end of the log
//
//	client ──Consume(off)──▶ follower: off < its next offset? serve it at once
//	                            │ else
//	                            ├──GetOffsets (node cert)──▶ leader: ReadIndex
//	                            ◀──────── next_offset = ri ──┘ (VerifyLeader or barrier)
//	                         off < ri: wait until applied, serve; else OUT_OF_RANGE
//
// Reads are linearizable: an offset a node does not hold yet is OUT_OF_RANGE
// only when it is at or past the leader's end of the log at some moment of
// the call (the read index, replica.Log.ReadIndex). The leader answers that
// itself; a follower asks the leader's GetOffsets over the forwarding
// connection, which lets node certificates through for this. Obtaining it is
// bounded below the call's deadline, so with no leader the client hears
// UNAVAILABLE in time. ConsumeBatchStream without follow ends at the read
// index and GetOffsets reports it as next_offset. A follower answers a
// forwarded write once it has applied the records, so the writer reads them
// from it next without that round trip.
//
// # Errors
//
// Status codes are chosen in one function (Node.status); log.proto lists
// them. A write whose outcome is unknown (leadership lost while committing)
// is UNAVAILABLE with a message saying so.
//
// # Health
//
// The standard health service reports SERVING, for "" and "log.v1.Log",
// while the node knows a leader, can apply entries and has caught up, and
// NOT_SERVING otherwise (and after Close starts), following the replica's
// leader-change and apply-status channels. With Config.MetricsAddr the node
// also serves, over plain HTTP, /readyz (200 exactly when health says
// SERVING: both show what the watcher last computed), /healthz (200 until
// Close starts) and Prometheus /metrics from a registry of its own
// (metrics.go: counters kept by interceptors and the replica's fsync hook, the
// rest read from the replica and Serf when scraped).
//
// # Concurrency
//
// Node.Close is idempotent and joins every goroutine the node started: the
// gRPC server, the health watcher, the metrics HTTP server, the retention
// ticker and the helpers of ProduceStream. Streams
// never poll: ConsumeStream and a following ConsumeBatchStream wait on the
// log's commit notification (replica.Log.Wait) and end when the client
// cancels or the node closes (UNAVAILABLE, "shutting down").
package node
