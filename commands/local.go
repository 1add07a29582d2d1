package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// startNodes starts a cluster of len(listen) nodes the way `serve --dev`
// does: node i is named dev-i, keeps its data in dataDir/dev-i and listens on
// listen[i] (port 0: a free port, written back into listen); dev-0
// bootstraps and the others join its Serf address. base returns each node's
// configuration before those fields are filled in. On an error the nodes
// already started are closed.
func startNodes(dataDir string, listen []devNodeAddrs, base func(i int) (node.Config, error)) ([]*node.Node, error) {
	var running []*node.Node
	for i := range listen {
		cfg, err := base(i)
		if err == nil {
			cfg.NodeID = fmt.Sprintf("dev-%d", i)
			cfg.DataDir = filepath.Join(dataDir, cfg.NodeID)
			cfg.RPCAddr, cfg.Gossip.BindAddr = listen[i].rpc, listen[i].gossip
			cfg.AdvertiseAddr = ""
			cfg.Bootstrap = i == 0
			cfg.LeaveOnClose = false // the cluster stops as a whole and comes back as it was
			cfg.Gossip.StartJoinAddrs = nil
			if i > 0 {
				cfg.Gossip.StartJoinAddrs = []string{running[0].GossipAddr()}
			}
		}
		var n *node.Node
		if err == nil {
			n, err = node.New(cfg)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("node %d: %w", i, err), closeNodes(running))
		}
		running = append(running, n)
		listen[i] = devNodeAddrs{n.Addr(), n.GossipAddr()}
	}
	return running, nil
}

// closeNodes closes the nodes all at once: one by one, the last would lose
// its quorum first.
func closeNodes(nodes []*node.Node) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.Close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// localCluster is a throwaway cluster of in-process nodes on free loopback
// ports, with its own CA, certificates and ACL, all in a temporary
// directory that Close removes. `bench --local` runs on it, and `bench
// --floor` on a floorServer in its place (nodes empty).
type localCluster struct {
	dir    string
	nodes  []*node.Node
	floor  *floorServer   // set instead of nodes by startFloor
	target string         // proglog://addr,addr,...
	client certs.TLSFiles // the root client's credentials
	// logs carries the nodes' logs; Close detaches it, since a Raft
	// transport may still log from a connection's goroutine, which Raft
	// does not join, after its node closed.
	logs *lockedWriter
}

// localPKI is what gencert and genacl would write for a local cluster: a CA,
// the node certificate, the root client's certificate and the ACL, in cfgDir.
type localPKI struct {
	cfgDir string
	node   certs.TLSFiles // the node certificate (servers and peers)
	client certs.TLSFiles // the root client's credentials
}

// newLocalPKI writes a local cluster's certificates and ACL into dir/config.
// newLocalDir makes a temporary directory holding a local cluster's
// certificates; the cluster's Close removes it.
func newLocalDir(prefix string) (*localCluster, localPKI, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, localPKI{}, err
	}
	lc := &localCluster{dir: dir}
	pki, err := newLocalPKI(dir)
	if err != nil {
		return nil, localPKI{}, errors.Join(err, lc.Close())
	}
	return lc, pki, nil
}

func newLocalPKI(dir string) (localPKI, error) {
	p := localPKI{cfgDir: filepath.Join(dir, "config")}
	cc := certs.DefaultConfig()
	cc.Dir = p.cfgDir
	if _, err := certs.Generate(cc); err != nil {
		return p, fmt.Errorf("local cluster: certificates: %w", err)
	}
	if _, err := authz.WriteFiles(p.cfgDir, authz.DefaultGrants(), false); err != nil {
		return p, fmt.Errorf("local cluster: ACL: %w", err)
	}
	p.node = certs.TLSFiles{
		CertFile: filepath.Join(p.cfgDir, certs.NodeCertFileName),
		KeyFile:  filepath.Join(p.cfgDir, certs.NodeKeyFileName),
		CAFile:   filepath.Join(p.cfgDir, certs.CACertFileName),
	}
	p.client = certs.TLSFiles{
		CertFile: filepath.Join(p.cfgDir, certs.ClientCertFileName(certs.RootSubject)),
		KeyFile:  filepath.Join(p.cfgDir, certs.ClientKeyFileName(certs.RootSubject)),
		CAFile:   p.node.CAFile,
	}
	return p, nil
}

// startLocal starts a local cluster of n nodes whose Raft log store is
// raftStore, and waits (up to timeout) until the leader counts n voters.
// logs receives the nodes' errors.
func startLocal(ctx context.Context, n int, raftStore string, logs io.Writer, timeout time.Duration) (_ *localCluster, err error) {
	lc, pki, err := newLocalDir("proglog-local-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, lc.Close())
		}
	}()
	cfgDir, nodeFiles := pki.cfgDir, pki.node
	lc.client = pki.client
	lc.logs = &lockedWriter{w: logs}
	logger := slog.New(slog.NewTextHandler(lc.logs, &slog.HandlerOptions{Level: slog.LevelError}))
	base := func(int) (node.Config, error) {
		cfg := node.DefaultConfig()
		cfg.Logger = logger
		cfg.Gossip = discovery.DefaultConfig()
		var err error
		if cfg.ServerTLS, err = certs.ServerTLSConfig(nodeFiles); err != nil {
			return cfg, err
		}
		if cfg.PeerTLS, err = certs.PeerTLSConfig(nodeFiles); err != nil {
			return cfg, err
		}
		if cfg.Authorizer, err = authz.New(filepath.Join(cfgDir, authz.ModelFileName), filepath.Join(cfgDir, authz.PolicyFileName)); err != nil {
			return cfg, err
		}
		rc := raftfsm.DefaultConfig()
		rc.RaftLogStore = raftStore
		cfg.Replica = rc
		return cfg, nil
	}
	listen := make([]devNodeAddrs, n)
	for i := range listen {
		listen[i] = devNodeAddrs{devAddr(0, 0), devAddr(0, 0)}
	}
	if lc.nodes, err = startNodes(filepath.Join(lc.dir, "data"), listen, base); err != nil {
		return nil, fmt.Errorf("local cluster: %w", err)
	}
	var addrs []string
	for _, nd := range lc.nodes {
		addrs = append(addrs, nd.Addr())
	}
	lc.target = discovery.Scheme + "://" + strings.Join(addrs, ",")
	return lc, lc.waitVoters(ctx, n, timeout)
}

// waitVoters asks the cluster for its servers until the leader counts n
// voters, or timeout passes. Nodes join through Serf in the background, so
// there is no event to wait on from outside; the asking is bounded.
func (lc *localCluster) waitVoters(ctx context.Context, n int, timeout time.Duration) error {
	tlsConf, err := certs.ClientTLSConfig(lc.client)
	if err != nil {
		return err
	}
	cl, err := discovery.Dial(lc.target, tlsConf)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		servers, err := cl.Servers(ctx)
		voters := 0
		for _, s := range servers {
			if s.IsVoter && s.State != discovery.StateUnreachable {
				voters++
			}
		}
		if err == nil && voters == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("local cluster: %d of %d nodes are voters after %v (last error: %v)", voters, n, timeout, err)
		case <-tick.C:
		}
	}
}

// Close stops the nodes (or the floor) and removes the directory. Nothing
// is written to the nodes' log writer once it returns.
func (lc *localCluster) Close() error {
	err := closeNodes(lc.nodes)
	if lc.logs != nil {
		lc.logs.detach()
	}
	if lc.floor != nil {
		lc.floor.Close()
	}
	return errors.Join(err, os.RemoveAll(lc.dir))
}
