package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
)

// runDev runs `serve --dev`: a local cluster of --nodes nodes in this process
// on loopback ports from --dev-port on (node i: RPC port+10i, Serf port+10i+1;
// --dev-port 0: free ports the system picks; metrics, health and readiness
// over HTTP on port+10i+2), with certificates and the ACL
// generated in the config directory on first use and data under
// --data-dir/dev. It writes the cluster's address to the config directory so
// client commands need no flags. A cluster started again on the same data
// runs on the addresses it had (recorded in the data), since Raft knows its
// members by address.
func runDev(c *cli.Context) (err error) {
	nodes, base := c.Int("nodes"), c.Int("dev-port")
	if nodes < 1 || nodes > 9 {
		return UsageError{Err: fmt.Errorf("serve --dev: --nodes %d: want 1 to 9", nodes)}
	}
	if base < 0 || base+10*(nodes-1)+1 > 65535 {
		return UsageError{Err: fmt.Errorf("serve --dev: --dev-port %d: want 0 (free ports) or a port that leaves room for %d nodes", base, nodes)}
	}
	dataDir := filepath.Join(c.String("data-dir"), "dev")
	listen, recorded, err := devAddrs(dataDir, nodes, base, c.IsSet("dev-port"))
	if err != nil {
		return err
	}
	cfgDir, err := configDir(c)
	if err != nil {
		return err
	}
	if err := devSecurity(c, cfgDir); err != nil {
		return err
	}
	var logger *slog.Logger
	running, err := startNodes(dataDir, listen, func(i int) (node.Config, error) {
		cfg, err := serveConfig(c)
		cfg.MetricsAddr = devAddr(base, 10*i+2)
		logger = cfg.Logger
		return cfg, err
	})
	if err != nil {
		return fmt.Errorf("serve --dev: %w", err)
	}
	defer func() {
		if cerr := closeNodes(running); err == nil {
			err = cerr
		}
	}()
	var addrs, metrics []string
	for _, n := range running {
		addrs = append(addrs, n.Addr())
		metrics = append(metrics, "http://"+n.MetricsAddr()+"/metrics")
	}
	if !recorded {
		if err := writeDevAddrs(dataDir, listen); err != nil {
			return err
		}
	}
	target := discovery.Scheme + "://" + strings.Join(addrs, ",")
	if err := certs.WriteFile(filepath.Join(cfgDir, clusterFile), []byte(target+"\n"), 0o644, true); err != nil {
		return err
	}
	if err := writeDevProfile(cfgDir, target); err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "proglog dev cluster: %d nodes at %s\n", nodes, target)
	fmt.Fprintf(w, "data in %s, certificates and ACL in %s\n", dataDir, cfgDir)
	fmt.Fprintf(w, "metrics: %s (/healthz and /readyz beside them)\n\n", strings.Join(metrics, " "))
	fmt.Fprintf(w, "try, in another terminal:\n")
	fmt.Fprintf(w, "  proglogctl produce hello world\n  proglogctl consume\n  proglogctl tail\n  proglogctl servers\n\n")
	fmt.Fprintf(w, "Ctrl-C stops the cluster; starting it again keeps the data.\n")
	serveUntilDone(c, logger, running...)
	fmt.Fprintln(w, "stopping the dev cluster")
	return nil
}

// devAddrsFile, in the dev data directory, records each node's RPC and Serf
// address: "dev-0 127.0.0.1:8400 127.0.0.1:8401", a line per node.
const devAddrsFile = "addresses"

// devNodeAddrs are the addresses one dev node listens on.
type devNodeAddrs struct{ rpc, gossip string }

// devAddrs returns the addresses the dev cluster in dataDir runs on: those
// recorded there (recorded true), else those --dev-port base gives. A
// recorded cluster of another size, or on other ports than an explicit
// --dev-port other than 0, is a usage error.
func devAddrs(dataDir string, nodes, base int, baseSet bool) (addrs []devNodeAddrs, recorded bool, err error) {
	for i := range nodes {
		addrs = append(addrs, devNodeAddrs{devAddr(base, 10*i), devAddr(base, 10*i+1)})
	}
	b, err := os.ReadFile(filepath.Join(dataDir, devAddrsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return addrs, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("serve --dev: %w", err)
	}
	var had []devNodeAddrs
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != fmt.Sprintf("dev-%d", i) {
			return nil, false, fmt.Errorf("serve --dev: %s line %d: %q is not \"dev-%d RPC-ADDR SERF-ADDR\"", filepath.Join(dataDir, devAddrsFile), i+1, line, i)
		}
		had = append(had, devNodeAddrs{f[1], f[2]})
	}
	switch {
	case len(had) != nodes:
		return nil, false, UsageError{Err: fmt.Errorf("serve --dev: %s holds a dev cluster of %d nodes; give --nodes %d, or remove the directory", dataDir, len(had), len(had))}
	case baseSet && base != 0 && !slices.Equal(had, addrs):
		return nil, false, UsageError{Err: fmt.Errorf("serve --dev: %s holds a dev cluster on %s (Raft knows its members by address); leave out --dev-port, or remove the directory", dataDir, had[0].rpc)}
	}
	return had, true, nil
}

// writeDevAddrs records addrs in dataDir.
func writeDevAddrs(dataDir string, addrs []devNodeAddrs) error {
	var b strings.Builder
	for i, a := range addrs {
		fmt.Fprintf(&b, "dev-%d %s %s\n", i, a.rpc, a.gossip)
	}
	return certs.WriteFile(filepath.Join(dataDir, devAddrsFile), []byte(b.String()), 0o644, true)
}

// devAddr is the loopback address of port base+delta; base 0 lets the
// system pick a free port.
func devAddr(base, delta int) string {
	if base == 0 {
		return "127.0.0.1:0"
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(base+delta))
}

// devSecurity makes the CA, certificates and ACL in dir unless they exist.
func devSecurity(c *cli.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, certs.CACertFileName)); errors.Is(err, fs.ErrNotExist) {
		cc := certs.DefaultConfig()
		cc.Dir = dir
		if _, err := certs.Generate(cc); err != nil {
			return fmt.Errorf("serve --dev: certificates: %w", err)
		}
		fmt.Fprintf(c.App.Writer, "generated a CA and certificates in %s\n", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, authz.PolicyFileName)); errors.Is(err, fs.ErrNotExist) {
		if _, err := authz.WriteFiles(dir, authz.DefaultGrants(), false); err != nil {
			return fmt.Errorf("serve --dev: ACL: %w", err)
		}
		fmt.Fprintf(c.App.Writer, "generated an ACL in %s (root may produce and consume)\n", dir)
	}
	return nil
}
