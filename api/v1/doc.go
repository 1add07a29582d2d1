// Package logv1 holds the wire API of proglogctl, the log.v1 gRPC service:
// the messages and the client and server code generated from log.proto.
//
// The service keeps the names and field numbers of the original proglog
// service (Produce, Consume, ConsumeStream, ProduceStream, GetServers), so
// existing proglog clients work unchanged, and adds ProduceBatch,
// ConsumeBatchStream and GetOffsets, exactly-once produce (a producer id and
// sequence on produce requests, duplicate on the answers), the durability
// an acknowledgement guarantees (enum Durability), and consume by time (each
// record's leader timestamp, GetOffsetForTime). log.proto documents every message, field
// and RPC, what offsets mean and which gRPC status codes the server returns.
//
// log.pb.go and log_grpc.pb.go are generated and committed; after editing
// log.proto run `make proto` (it needs protoc) to regenerate them.
package logv1
