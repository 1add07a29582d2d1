// Package nodetest is the test harness of proglogctl's nodes, shared by the
// tests of every package that runs them (node, discovery, commands and the
// whole-binary tests), in the manner of hashicorp/raft's testing.go: a PKI
// in a temporary directory, a node Config with fast Raft timing, clusters
// started on loopback ports with a way to close and restart a node, clients
// authenticated as any subject, stand-in servers, golden files, and the
// bounded waits tests use instead of sleeps.
//
// Every wait is bounded and fails naming what it waited for. Deadline gives
// a test a bound of its own: when it passes, the test fails with a dump of
// every goroutine's stack, the waits of this package and the contexts of
// Context end, and if the test still has not returned a grace period later
// the test binary panics with that dump, as -timeout would, only sooner and
// saying which test. StartNode and StartCluster arm DefaultDeadline unless
// the test armed one itself.
//
// Everything a helper starts is stopped in t.Cleanup; nothing listens
// anywhere but 127.0.0.1.
//
// Packages below node (raftfsm, logstore) cannot import it and keep small
// helpers of their own; discovery's tests are external tests that can.
package nodetest
