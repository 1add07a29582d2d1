package raftfsm

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
	"github.com/proglogctl/proglogctl/raftfsm/transport"
)

// tcpNode is a replica on a real loopback port, its Raft traffic behind a Mux
// as in a node.
type tcpNode struct {
	log *Log
	mux *transport.Mux
}

func (n *tcpNode) close() {
	n.log.Close()
	n.mux.Close()
}

// startTCPNode starts the replica id (its Transport left to this function)
// on 127.0.0.1. peerTLS, when non-nil, is used for both sides of Raft's
// connections.
func startTCPNode(t testing.TB, id replica.Identity, c Config, peerTLS *tls.Config) *tcpNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := transport.NewMux(ln, id.Logger)
	stream := transport.NewStreamLayer(mux.Raft(), ln.Addr(), peerTLS, peerTLS)
	id.Transport = transport.NewTransport(stream, 10*time.Second, id.Logger)
	l, err := New(id, c)
	if err != nil {
		mux.Close()
		t.Fatalf("New(%s): %v", id.NodeID, err)
	}
	return &tcpNode{log: l, mux: mux}
}

// startTCPCluster starts n replicas on loopback TCP, in temporary
// directories and logging to logger, and joins them; node 0 bootstraps.
func startTCPCluster(t testing.TB, n int, logger *slog.Logger, conf func(i int) Config, peerTLS *tls.Config) []*tcpNode {
	t.Helper()
	// Cleanups run last first: the nodes are closed before their directory
	// is removed, or a node still running could fail (and Raft panic) on a
	// vanished file.
	dir := t.TempDir()
	var nodes []*tcpNode
	t.Cleanup(func() {
		for _, n := range nodes {
			n.close()
		}
	})
	for i := 0; i < n; i++ {
		id := replica.Identity{Dir: filepath.Join(dir, nodeID(i)), NodeID: nodeID(i), Bootstrap: i == 0, Logger: logger}
		nodes = append(nodes, startTCPNode(t, id, conf(i), peerTLS))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := nodes[0].log.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if err := nodes[0].log.Join(nodeID(i), nodes[i].mux.Raft().Addr().String()); err != nil {
			t.Fatalf("Join(%s): %v", nodeID(i), err)
		}
	}
	return nodes
}

// peerTLSConfig makes a CA and a node certificate in dir and returns the peer
// configuration built from them, and a client certificate's files.
func peerTLSConfig(t testing.TB, dir string) (*tls.Config, certs.TLSFiles) {
	t.Helper()
	cc := certs.DefaultConfig()
	cc.Dir = dir
	if _, err := certs.Generate(cc); err != nil {
		t.Fatalf("certs.Generate: %v", err)
	}
	node := certs.TLSFiles{
		CertFile: filepath.Join(dir, certs.NodeCertFileName),
		KeyFile:  filepath.Join(dir, certs.NodeKeyFileName),
		CAFile:   filepath.Join(dir, certs.CACertFileName),
	}
	conf, err := certs.PeerTLSConfig(node)
	if err != nil {
		t.Fatalf("PeerTLSConfig: %v", err)
	}
	client := certs.TLSFiles{
		CertFile: filepath.Join(dir, certs.ClientCertFileName(certs.RootSubject)),
		KeyFile:  filepath.Join(dir, certs.ClientKeyFileName(certs.RootSubject)),
		CAFile:   node.CAFile,
	}
	return conf, client
}

func TestTCPClusterWithTLS(t *testing.T) {
	peerTLS, clientFiles := peerTLSConfig(t, t.TempDir())
	nodes := startTCPCluster(t, 3, testLogger(t), func(int) Config { return testConfig() }, peerTLS)
	leader := nodes[0].log
	appendValues(t, leader, 0, 100)
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := n.log.Wait(ctx, 99)
		cancel()
		if err != nil {
			t.Fatalf("replica did not apply 100 records over TLS: %v", err)
		}
	}

	// A client certificate signed by the same CA may not speak Raft.
	clientTLS, err := certs.PeerTLSConfig(clientFiles)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	intruder := transport.NewStreamLayer(ln, ln.Addr(), clientTLS, clientTLS)
	conn, err := intruder.Dial(raft.ServerAddress(nodes[1].mux.Raft().Addr().String()), 5*time.Second)
	if err == nil {
		// The server checks the client's certificate after the client's side
		// of the handshake is done; the refusal shows on the first read.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client certificate was accepted on the Raft port")
	}
	t.Logf("client certificate refused: %v", err)
}
