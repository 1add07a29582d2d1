package commands

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
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
	"github.com/proglogctl/proglogctl/raftfsm/raftlog"
)

// serveCommand runs one node. Every flag has a PROGLOG_* variable and may be
// set in the YAML --config-file (keys are the flag names); flags beat the
// environment, which beats the file.
func serveCommand() *cli.Command {
	host, _ := os.Hostname()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config-file", Usage: "read flag values from this YAML `FILE` (keys are flag names; an unknown key is an error)", EnvVars: []string{"PROGLOG_CONFIG_FILE"}, TakesFile: true},
		&cli.BoolFlag{Name: "print-config", Usage: "print the configuration in effect as YAML (the keys --config-file takes; secrets redacted) and exit", EnvVars: []string{"PROGLOG_PRINT_CONFIG"}},
		altsrc.NewStringFlag(configDirFlag()),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Usage: "where the node keeps its log and Raft state", Value: defaultDataDir(), EnvVars: []string{"PROGLOG_DATA_DIR"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "node-name", Usage: "unique, stable name of this node in the cluster", Value: host, EnvVars: []string{"PROGLOG_NODE_NAME"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "bind-addr", Usage: "host:port for Serf gossip; the RPC port listens on the same host", Value: "127.0.0.1:8401", EnvVars: []string{"PROGLOG_BIND_ADDR"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "rpc-port", Usage: "port for gRPC clients and Raft peers", Value: 8400, EnvVars: []string{"PROGLOG_RPC_PORT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "advertise-host", Usage: "host peers and clients use to reach this node (default: the host of --bind-addr)", EnvVars: []string{"PROGLOG_ADVERTISE_HOST"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "bootstrap", Usage: "start a new cluster with this node as its first voter (ignored once the node has state)", EnvVars: []string{"PROGLOG_BOOTSTRAP"}}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "start-join-addrs", Usage: "Serf addresses (host:port) of members to join; retried in the background until one answers", EnvVars: []string{"PROGLOG_START_JOIN_ADDRS"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "leave-on-shutdown", Usage: "on SIGINT/SIGTERM leave the cluster for good (removed from Raft until it joins again), to decommission the node; without it a stop is a restart and the node stays a voter", EnvVars: []string{"PROGLOG_LEAVE_ON_SHUTDOWN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gossip-key", Usage: "base64 key (16, 24 or 32 bytes) encrypting Serf gossip", EnvVars: []string{"PROGLOG_GOSSIP_KEY"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-cert-file", Usage: serveFileUsage["server-tls-cert-file"], EnvVars: []string{"PROGLOG_SERVER_TLS_CERT_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-key-file", Usage: serveFileUsage["server-tls-key-file"], EnvVars: []string{"PROGLOG_SERVER_TLS_KEY_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-ca-file", Usage: serveFileUsage["server-tls-ca-file"], EnvVars: []string{"PROGLOG_SERVER_TLS_CA_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-cert-file", Usage: serveFileUsage["peer-tls-cert-file"], EnvVars: []string{"PROGLOG_PEER_TLS_CERT_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-key-file", Usage: serveFileUsage["peer-tls-key-file"], EnvVars: []string{"PROGLOG_PEER_TLS_KEY_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-ca-file", Usage: serveFileUsage["peer-tls-ca-file"], EnvVars: []string{"PROGLOG_PEER_TLS_CA_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "acl-model-file", Usage: serveFileUsage["acl-model-file"], EnvVars: []string{"PROGLOG_ACL_MODEL_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "acl-policy-file", Usage: serveFileUsage["acl-policy-file"], EnvVars: []string{"PROGLOG_ACL_POLICY_FILE"}, TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (with --dev: error unless given)", Value: "info", EnvVars: []string{"PROGLOG_LOG_LEVEL"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-format", Usage: "text or json (one object a line)", Value: "text", EnvVars: []string{"PROGLOG_LOG_FORMAT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "metrics-addr", Usage: "host:port serving Prometheus /metrics, /healthz and /readyz over HTTP (off when empty; with --dev: port+10i+2 of node i)", EnvVars: []string{"PROGLOG_METRICS_ADDR"}}),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "retention-bytes", Usage: "drop the oldest segments while the log is larger than this many bytes (0: keep everything); set it alike on every node", EnvVars: []string{"PROGLOG_RETENTION_BYTES"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "retention-age", Usage: "drop segments whose last record is older than this, e.g. 168h (0: keep everything)", EnvVars: []string{"PROGLOG_RETENTION_AGE"}}),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "segment-bytes", Usage: "size at which a log segment is sealed and a new one started; retention drops whole segments. Below 4 MiB, a Raft entry and a record are limited to half a segment", Value: raftfsm.DefaultConfig().Store.MaxStoreBytes, EnvVars: []string{"PROGLOG_SEGMENT_BYTES"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "raft-snapshot-interval", Usage: "how often Raft checks whether to snapshot and compact its own log", Value: raftfsm.DefaultConfig().SnapshotInterval, EnvVars: []string{"PROGLOG_RAFT_SNAPSHOT_INTERVAL"}}),
		altsrc.NewUint64Flag(&cli.Uint64Flag{Name: "raft-snapshot-threshold", Usage: "Raft entries since the last snapshot that make Raft snapshot and compact its own log", Value: raftfsm.DefaultConfig().SnapshotThreshold, EnvVars: []string{"PROGLOG_RAFT_SNAPSHOT_THRESHOLD"}}),
		altsrc.NewUint64Flag(&cli.Uint64Flag{Name: "raft-trailing-logs", Usage: "Raft entries kept behind a snapshot, so a follower that trails by fewer catches up without one", Value: raftfsm.DefaultConfig().TrailingLogs, EnvVars: []string{"PROGLOG_RAFT_TRAILING_LOGS"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "raft-log-store", Usage: "Raft's log store for a new data directory: segments (this project's segment files, one fdatasync per append), wal (raft-wal) or bolt (raft-boltdb); a data directory keeps the one it was made with", Value: raftfsm.DefaultConfig().RaftLogStore, EnvVars: []string{"PROGLOG_RAFT_LOG_STORE"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "raft-segment-bytes", Usage: "size of a segment file of Raft's log store (segments or wal): zero-filled when made (segments: or reused from one Raft compacted away), deleted whole as Raft compacts; a batch larger than that gets a segment of its own size", Value: raftlog.DefaultSegmentBytes, EnvVars: []string{"PROGLOG_RAFT_SEGMENT_BYTES"}}),
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
into the config directory. SIGHUP loads the certificates, CAs and ACL policy again
(a file that does not load is refused and the one before stays in force; both are
logged). SIGINT or SIGTERM stops the node gracefully (a leader hands over leadership
first) and it stays a member, to be started again; with --leave-on-shutdown it leaves
the cluster for good. A second signal exits at once.

Settings come from flags, then PROGLOG_* variables, then the YAML --config-file
(keys are the flag names), then the defaults; --print-config shows the result.`,
		Flags: flags,
		Before: func(c *cli.Context) error {
			if c.String("config-file") == "" {
				return nil
			}
			return loadConfigFile(c, c.String("config-file"), flags)
		},
		Action: func(c *cli.Context) error {
			if c.Bool("print-config") {
				if err := noArgs(c); err != nil {
					return err
				}
				return printConfig(c.App.Writer, c, flags, []string{"gossip-key"}, func(name string) (string, bool, error) {
					if name == "config-dir" {
						dir, err := configDir(c)
						return dir, true, err
					}
					if _, ok := serveFiles[name]; !ok {
						return "", false, nil
					}
					p, err := serveFile(c, name)
					return p, true, err
				})
			}
			return runServe(c)
		},
	}
}

// serveFiles maps each file flag of serve to the file in the config
// directory it defaults to.
var serveFiles = map[string]string{
	"server-tls-cert-file": certs.NodeCertFileName,
	"server-tls-key-file":  certs.NodeKeyFileName,
	"server-tls-ca-file":   certs.CACertFileName,
	"peer-tls-cert-file":   certs.NodeCertFileName,
	"peer-tls-key-file":    certs.NodeKeyFileName,
	"peer-tls-ca-file":     certs.CACertFileName,
	"acl-model-file":       authz.ModelFileName,
	"acl-policy-file":      authz.PolicyFileName,
}

// serveFileUsage is the usage text of each file flag of serve.
var serveFileUsage = map[string]string{
	"server-tls-cert-file": "certificate served to gRPC clients" + defaultIn(certs.NodeCertFileName),
	"server-tls-key-file":  "key of --server-tls-cert-file" + defaultIn(certs.NodeKeyFileName),
	"server-tls-ca-file":   "CA certificates client certificates must chain to" + defaultIn(certs.CACertFileName),
	"peer-tls-cert-file":   "certificate presented to and by Raft peers and for forwarded writes" + defaultIn(certs.NodeCertFileName),
	"peer-tls-key-file":    "key of --peer-tls-cert-file" + defaultIn(certs.NodeKeyFileName),
	"peer-tls-ca-file":     "CA certificates peer certificates must chain to" + defaultIn(certs.CACertFileName),
	"acl-model-file":       "casbin model" + defaultIn(authz.ModelFileName),
	"acl-policy-file":      "casbin policy: who may produce and consume" + defaultIn(authz.PolicyFileName),
}

// serveFile returns the path of the file flag name: its value, else its
// file in the config directory.
func serveFile(c *cli.Context, name string) (string, error) {
	return inConfigDir(c, name, serveFiles[name])
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
	if errors.Is(err, node.ErrDataDir) {
		return fmt.Errorf("serve: --data-dir: %w", err)
	} else if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cfg.Logger.Info("serving", "node", cfg.NodeID, "rpc_addr", n.Addr(), "gossip_addr", cfg.Gossip.BindAddr, "data_dir", cfg.DataDir, "metrics_addr", n.MetricsAddr())
	serveUntilDone(c, cfg.Logger, n)
	cfg.Logger.Info("shutting down (a second signal exits at once)")
	return n.Close()
}

// serveUntilDone waits for the command's context to end, reloading the
// nodes' certificates and ACL each time Main.Reloads asks to (SIGHUP).
func serveUntilDone(c *cli.Context, logger *slog.Logger, nodes ...*node.Node) {
	reload, stop := reloads(c.Context)
	defer stop()
	for {
		select {
		case <-c.Context.Done():
			return
		case <-reload:
			logger.Info("reloading certificates and ACL (SIGHUP)")
			for _, n := range nodes {
				// Each node logs what changed and what it refused.
				_ = n.Reload()
			}
		}
	}
}

// entryOverheadBytes is more than a Raft entry of one record takes besides
// the record (raftfsm's entry encoding: a kind byte, a timestamp, a producer
// id of up to raftfsm.MaxProducerIDBytes, a sequence and two varints).
const entryOverheadBytes = raftfsm.MaxProducerIDBytes + 64

// serveReplicaConfig maps the flags onto the replica's configuration.
func serveReplicaConfig(c *cli.Context) (raftfsm.Config, error) {
	rc := raftfsm.DefaultConfig()
	rc.Store.RetainBytes = c.Int64("retention-bytes")
	rc.Store.RetainAge = c.Duration("retention-age")
	rc.Store.MaxStoreBytes = c.Int64("segment-bytes")
	rc.SnapshotInterval = c.Duration("raft-snapshot-interval")
	rc.SnapshotThreshold = c.Uint64("raft-snapshot-threshold")
	rc.TrailingLogs = c.Uint64("raft-trailing-logs")
	// A Raft entry may take at most half a segment, and a record must fit
	// in an entry: small segments lower both limits.
	rc.MaxEntryBytes = min(rc.MaxEntryBytes, int(rc.Store.MaxStoreBytes/2))
	rc.Store.MaxRecordBytes = min(rc.Store.MaxRecordBytes, rc.MaxEntryBytes-entryOverheadBytes)
	if rc.Store.MaxRecordBytes <= 0 {
		return rc, UsageError{Err: fmt.Errorf("serve: --segment-bytes %d is too small to hold a record", rc.Store.MaxStoreBytes)}
	}
	rc.RaftLogStore = c.String("raft-log-store")
	rc.RaftSegmentBytes = c.Int("raft-segment-bytes")
	if rc.RaftSegmentBytes < 64<<10 {
		return rc, UsageError{Err: fmt.Errorf("serve: --raft-segment-bytes %d is below 64 KiB", rc.RaftSegmentBytes)}
	}
	return rc, nil
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
	var handler slog.Handler
	switch f := c.String("log-format"); f {
	case "text":
		handler = slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})
	default:
		return node.Config{}, UsageError{Err: fmt.Errorf("serve: --log-format %q: want text or json", f)}
	}
	logger := slog.New(handler)

	cfg := node.DefaultConfig()
	cfg.Logger = logger
	cfg.DataDir = c.String("data-dir")
	cfg.NodeID = c.String("node-name")
	cfg.Bootstrap = c.Bool("bootstrap")
	cfg.LeaveOnClose = c.Bool("leave-on-shutdown")
	cfg.MetricsAddr = c.String("metrics-addr")
	rc, err := serveReplicaConfig(c)
	if err != nil {
		return node.Config{}, err
	}
	cfg.Replica = rc
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
	if k := strings.TrimSpace(c.String("gossip-key")); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return node.Config{}, UsageError{Err: fmt.Errorf("serve: --gossip-key is not base64: %w", err)}
		}
		cfg.Gossip.EncryptKey = key
	}

	files := map[string]string{}
	for name := range serveFiles {
		if files[name], err = serveFile(c, name); err != nil {
			return node.Config{}, err
		}
	}
	if cfg.ServerCerts, err = certs.NewReloader(certs.TLSFiles{
		CertFile: files["server-tls-cert-file"], KeyFile: files["server-tls-key-file"], CAFile: files["server-tls-ca-file"],
	}, false); err != nil {
		return node.Config{}, fmt.Errorf("serve: server TLS: %w%s", err, certsHint(c, err))
	}
	if cfg.PeerCerts, err = certs.NewReloader(certs.TLSFiles{
		CertFile: files["peer-tls-cert-file"], KeyFile: files["peer-tls-key-file"], CAFile: files["peer-tls-ca-file"],
	}, true); err != nil {
		return node.Config{}, fmt.Errorf("serve: peer TLS: %w%s", err, certsHint(c, err))
	}
	if cfg.Authorizer, err = authz.New(files["acl-model-file"], files["acl-policy-file"]); err != nil {
		return node.Config{}, fmt.Errorf("serve: ACL: %w%s", err, certsHint(c, err))
	}
	if err := cfg.Validate(); err != nil {
		return node.Config{}, UsageError{Err: fmt.Errorf("serve: %w", err)}
	}
	return cfg, nil
}

// certsHint tells what to do about a certificate or ACL file that is not
// there: make it, or say where it is.
func certsHint(c *cli.Context, err error) string {
	if c.Bool("dev") || !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return " (gencert and genacl make them in --config-dir; or set --config-dir or the file flags to where they are)"
}
