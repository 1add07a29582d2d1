package commands

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// serveCommand runs one node. Every flag has a PROGLOG_* variable and may be
// set in the YAML --config-file (keys are the flag names); flags beat the
// environment, which beats the file.
func serveCommand() *cli.Command {
	cfgDir, _ := ConfigDir()
	host, _ := os.Hostname()
	inConfig := func(name string) string {
		if cfgDir == "" {
			return ""
		}
		return filepath.Join(cfgDir, name)
	}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config-file", Usage: "read flag values from this YAML `FILE` (keys are flag names)", EnvVars: []string{"PROGLOG_CONFIG_FILE"}, TakesFile: true},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Usage: "where the node keeps its log and Raft state", Value: defaultDataDir(), EnvVars: []string{"PROGLOG_DATA_DIR"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "node-name", Usage: "unique, stable name of this node in the cluster", Value: host, EnvVars: []string{"PROGLOG_NODE_NAME"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "bind-addr", Usage: "host:port for Serf gossip; the RPC port listens on the same host", Value: "127.0.0.1:8401", EnvVars: []string{"PROGLOG_BIND_ADDR"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "rpc-port", Usage: "port for gRPC clients and Raft peers", Value: 8400, EnvVars: []string{"PROGLOG_RPC_PORT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "advertise-host", Usage: "host peers and clients use to reach this node (default: the host of --bind-addr)", EnvVars: []string{"PROGLOG_ADVERTISE_HOST"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "bootstrap", Usage: "start a new cluster with this node as its first voter (ignored once the node has state)", EnvVars: []string{"PROGLOG_BOOTSTRAP"}}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "start-join-addrs", Usage: "Serf addresses (host:port) of members to join; retried in the background until one answers", EnvVars: []string{"PROGLOG_START_JOIN_ADDRS"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "leave-on-shutdown", Usage: "on SIGINT/SIGTERM leave the cluster for good (removed from Raft until it joins again), to decommission the node; without it a stop is a restart and the node stays a voter", EnvVars: []string{"PROGLOG_LEAVE_ON_SHUTDOWN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gossip-key", Usage: "base64 key (16, 24 or 32 bytes) encrypting Serf gossip", EnvVars: []string{"PROGLOG_GOSSIP_KEY"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-cert-file", Value: inConfig(certs.NodeCertFileName), EnvVars: []string{"PROGLOG_SERVER_TLS_CERT_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-key-file", Value: inConfig(certs.NodeKeyFileName), EnvVars: []string{"PROGLOG_SERVER_TLS_KEY_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-ca-file", Value: inConfig(certs.CACertFileName), EnvVars: []string{"PROGLOG_SERVER_TLS_CA_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-cert-file", Value: inConfig(certs.NodeCertFileName), EnvVars: []string{"PROGLOG_PEER_TLS_CERT_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-key-file", Value: inConfig(certs.NodeKeyFileName), EnvVars: []string{"PROGLOG_PEER_TLS_KEY_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-ca-file", Value: inConfig(certs.CACertFileName), EnvVars: []string{"PROGLOG_PEER_TLS_CA_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "acl-model-file", Value: inConfig(authz.ModelFileName), EnvVars: []string{"PROGLOG_ACL_MODEL_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "acl-policy-file", Value: inConfig(authz.PolicyFileName), EnvVars: []string{"PROGLOG_ACL_POLICY_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (with --dev: error unless given)", Value: "info", EnvVars: []string{"PROGLOG_LOG_LEVEL"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "raft-log-store", Usage: "Raft's log store for a new data directory: wal (raft-wal segment files) or bolt (raft-boltdb); a data directory keeps the one it was made with", Value: raftfsm.DefaultConfig().RaftLogStore, EnvVars: []string{"PROGLOG_RAFT_LOG_STORE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "pprof-addr", Usage: "serve net/http/pprof on this loopback host:port (empty: off)", EnvVars: []string{"PROGLOG_PPROF_ADDR"}}),
		&cli.BoolFlag{Name: "dev", Usage: "run a local cluster in this process, generating certificates and ACL on first use", EnvVars: []string{"PROGLOG_DEV"}},
		&cli.IntFlag{Name: "nodes", Usage: "nodes of the --dev cluster", Value: 3, EnvVars: []string{"PROGLOG_DEV_NODES"}},
		&cli.IntFlag{Name: "dev-port", Usage: "first port of the --dev cluster (node i: RPC port+10i, Serf port+10i+1; 0: free ports)", Value: 8400, EnvVars: []string{"PROGLOG_DEV_PORT"}},
	}
	return &cli.Command{
		Name:  "serve",
		Usage: "run a node: the gRPC API, Raft and Serf on this host",
		Description: `serve runs one node of a cluster. The first node starts with --bootstrap; the others
join it with --start-join-addrs, which they retry until it answers, so the nodes may
start in any order. Certificates and the ACL default to what gencert and genacl wrote
into the config directory. SIGINT or SIGTERM stops the node gracefully (a leader hands
over leadership first) and it stays a member, to be started again; with
--leave-on-shutdown it leaves the cluster for good. A second signal exits at once.`,
		Flags: flags,
		Before: func(c *cli.Context) error {
			if c.String("config-file") == "" {
				return nil
			}
			return altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config-file"))(c)
		},
		Action: runServe,
	}
}

// defaultDataDir is $XDG_DATA_HOME/proglog, else ~/.local/share/proglog.
func defaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "proglog")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".local", "share", "proglog")
}

func runServe(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if a := c.String("pprof-addr"); a != "" {
		stop, err := servePprof(a)
		if err != nil {
			return err
		}
		defer stop()
	}
	if c.Bool("dev") {
		return runDev(c)
	}
	cfg, err := serveConfig(c)
	if err != nil {
		return err
	}
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("serving", "node", cfg.NodeID, "rpc_addr", n.Addr(), "gossip_addr", cfg.Gossip.BindAddr, "data_dir", cfg.DataDir)
	<-c.Context.Done()
	cfg.Logger.Info("shutting down (a second signal exits at once)")
	return n.Close()
}

// serveConfig maps the flags onto node.Config, loading certificates and the
// ACL: a missing or unreadable one is an error, never a fallback to open.
func serveConfig(c *cli.Context) (node.Config, error) {
	logLevel := c.String("log-level")
	if c.Bool("dev") && !c.IsSet("log-level") {
		// The dev cluster's banner is what a newcomer needs to read; Raft's
		// notes on three nodes finding each other would bury it.
		logLevel = "error"
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return node.Config{}, UsageError{Err: fmt.Errorf("serve: --log-level %q: want debug, info, warn or error", c.String("log-level"))}
	}
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))

	cfg := node.DefaultConfig()
	cfg.Logger = logger
	cfg.Replica.Logger = logger
	cfg.Replica.Store.Logger = logger
	cfg.DataDir = c.String("data-dir")
	cfg.NodeID = c.String("node-name")
	cfg.Bootstrap = c.Bool("bootstrap")
	cfg.LeaveOnClose = c.Bool("leave-on-shutdown")
	cfg.Replica.RaftLogStore = c.String("raft-log-store")
	bindHost, _, err := net.SplitHostPort(c.String("bind-addr"))
	if err != nil {
		return node.Config{}, UsageError{Err: fmt.Errorf("serve: --bind-addr %q: %w", c.String("bind-addr"), err)}
	}
	cfg.RPCAddr = net.JoinHostPort(bindHost, strconv.Itoa(c.Int("rpc-port")))
	if h := c.String("advertise-host"); h != "" {
		cfg.AdvertiseAddr = net.JoinHostPort(h, strconv.Itoa(c.Int("rpc-port")))
	}

	cfg.Gossip = discovery.DefaultConfig()
	cfg.Gossip.BindAddr = c.String("bind-addr")
	cfg.Gossip.StartJoinAddrs = c.StringSlice("start-join-addrs")
	cfg.Gossip.Logger = logger
	if k := strings.TrimSpace(c.String("gossip-key")); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return node.Config{}, UsageError{Err: fmt.Errorf("serve: --gossip-key is not base64: %w", err)}
		}
		cfg.Gossip.EncryptKey = key
	}

	if cfg.ServerTLS, err = certs.ServerTLSConfig(certs.TLSFiles{
		CertFile: c.String("server-tls-cert-file"), KeyFile: c.String("server-tls-key-file"), CAFile: c.String("server-tls-ca-file"),
	}); err != nil {
		return node.Config{}, fmt.Errorf("serve: server TLS: %w", err)
	}
	if cfg.PeerTLS, err = certs.PeerTLSConfig(certs.TLSFiles{
		CertFile: c.String("peer-tls-cert-file"), KeyFile: c.String("peer-tls-key-file"), CAFile: c.String("peer-tls-ca-file"),
	}); err != nil {
		return node.Config{}, fmt.Errorf("serve: peer TLS: %w", err)
	}
	if cfg.Authorizer, err = authz.New(c.String("acl-model-file"), c.String("acl-policy-file")); err != nil {
		return node.Config{}, fmt.Errorf("serve: ACL: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return node.Config{}, UsageError{Err: fmt.Errorf("serve: %w", err)}
	}
	return cfg, nil
}
