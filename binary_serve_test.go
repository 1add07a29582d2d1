package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

func TestServeRefusesMissingSecurityFiles(t *testing.T) {
	skipShort(t)
	nodetest.EnsureDeadline(t)
	c := &cluster{t: t, bin: buildBinary(t), cfg: filepath.Join(t.TempDir(), "proglog")}
	c.run("gencert", "--dir", c.cfg)
	c.run("genacl", "--dir", c.cfg)
	for _, missing := range []string{certs.NodeCertFileName, certs.NodeKeyFileName, certs.CACertFileName, "model.conf", "policy.csv"} {
		t.Run(missing, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "proglog")
			if err := os.CopyFS(cfg, os.DirFS(c.cfg)); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(cfg, missing))
			// A serve that started anyway is killed at the test's deadline.
			cmd := exec.CommandContext(nodetest.Context(t), c.bin, "serve", "--data-dir", t.TempDir(), "--bootstrap",
				"--bind-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--rpc-port", strconv.Itoa(freePort(t)))
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Dir(cfg))
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("serve started without %s", missing)
			}
			if !strings.Contains(string(out), missing) {
				t.Fatalf("serve without %s said %q; want the file named", missing, out)
			}
		})
	}
}

// serve reads testdata/serve.yaml: the node takes its name and --bootstrap
// from the file and leads a cluster of one, while the flags given beat the
// file's addresses.
func TestBinaryServeConfigFile(t *testing.T) {
	file, err := filepath.Abs(filepath.Join("testdata", "serve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 1)
	p := c.procs[0]
	p.args = []string{"serve", "--config-file", file, "--data-dir", argAfter(p.args, "--data-dir"),
		"--bind-addr", argAfter(p.args, "--bind-addr"), "--rpc-port", argAfter(p.args, "--rpc-port")}
	c.start(p)
	waitFor(t, 30*time.Second, "the node of the config file serving at the --rpc-port flag's address", func() bool { return c.serving(p) })
	cl := logv1.NewLogClient(c.dial(p.rpcAddr))
	var servers []*logv1.Server
	waitFor(t, 30*time.Second, "the node to lead", func() bool {
		resp, err := cl.GetServers(nodetest.Context(t), &logv1.GetServersRequest{})
		servers = resp.GetServers()
		return err == nil && len(servers) == 1 && servers[0].IsLeader
	})
	if s := servers[0]; s.Id != "from-config-file" || s.RpcAddr != p.rpcAddr {
		t.Fatalf("the node is %q at %s; want from-config-file (the file's node-name) at %s (the flag's port)", s.Id, s.RpcAddr, p.rpcAddr)
	}
	if err := c.signal(p, syscall.SIGTERM); err != nil {
		t.Fatalf("after SIGTERM: %v; want exit 0\n%s", err, p.out)
	}
}
