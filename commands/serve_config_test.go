package commands

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/authz"
	"github.com/proglogctl/proglogctl/certs"
)

// printedConfig runs `serve --print-config` with args and returns its keys
// and values as printed.
func printedConfig(t *testing.T, args ...string) map[string]string {
	t.Helper()
	out := mustRun(t, "", append([]string{"serve", "--print-config"}, args...)...)
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("print-config line %q is not `key: value`", line)
		}
		m[k] = v
	}
	return m
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeConfigPrecedence: flags beat PROGLOG_* variables, which beat the
// config file, which beats the defaults, for plain settings, for the config
// directory and for the files whose default is in it.
func TestServeConfigPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		file  string            // config file text; none if empty
		env   map[string]string // PROGLOG_* variables
		flags []string
		want  map[string]string // {xdg} is the default config directory
	}{
		{name: "defaults", want: map[string]string{
			"rpc-port": "8400", "config-dir": "{xdg}", "server-tls-ca-file": "{xdg}/ca.pem", "acl-policy-file": "{xdg}/policy.csv",
			"start-join-addrs": "[]", "gossip-key": `""`,
		}},
		{name: "file beats default", file: "rpc-port: 9001\nstart-join-addrs: [a:1, b:2]\n",
			want: map[string]string{"rpc-port": "9001", "start-join-addrs": "['a:1', 'b:2']"}},
		{name: "env beats file", file: "rpc-port: 9001\nstart-join-addrs: [a:1]\n",
			env:  map[string]string{"PROGLOG_RPC_PORT": "9002", "PROGLOG_START_JOIN_ADDRS": "c:3,d:4"},
			want: map[string]string{"rpc-port": "9002", "start-join-addrs": "['c:3', 'd:4']"}},
		{name: "flag beats env", file: "rpc-port: 9001\n", env: map[string]string{"PROGLOG_RPC_PORT": "9002"},
			flags: []string{"--rpc-port", "9003"}, want: map[string]string{"rpc-port": "9003"}},
		{name: "config dir from the file", file: "config-dir: /from/file\n",
			want: map[string]string{"config-dir": "/from/file", "server-tls-cert-file": "/from/file/server.pem", "acl-model-file": "/from/file/model.conf"}},
		{name: "config dir: env beats file", file: "config-dir: /from/file\n", env: map[string]string{"PROGLOG_CONFIG_DIR": "/from/env"},
			want: map[string]string{"config-dir": "/from/env", "peer-tls-key-file": "/from/env/server-key.pem"}},
		{name: "config dir: flag beats env", env: map[string]string{"PROGLOG_CONFIG_DIR": "/from/env"}, flags: []string{"--config-dir", "/from/flag"},
			want: map[string]string{"config-dir": "/from/flag", "peer-tls-ca-file": "/from/flag/ca.pem"}},
		{name: "a file named beats the config dir", file: "server-tls-ca-file: /pki/ca.pem\n", flags: []string{"--config-dir", "/etc/proglog"},
			want: map[string]string{"server-tls-ca-file": "/pki/ca.pem", "peer-tls-ca-file": "/etc/proglog/ca.pem"}},
		{name: "config file from the environment", env: map[string]string{"PROGLOG_CONFIG_FILE": "{file}"}, file: "node-name: from-env-file\n",
			want: map[string]string{"node-name": "from-env-file"}},
		{name: "gossip key redacted", file: "gossip-key: c2VjcmV0c2VjcmV0c2VjcmV0\n", want: map[string]string{"gossip-key": "REDACTED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateConfig(t)
			xdg, err := ConfigDir()
			if err != nil {
				t.Fatal(err)
			}
			args := tt.flags
			if tt.file != "" {
				path := writeConfig(t, tt.file)
				if tt.env["PROGLOG_CONFIG_FILE"] == "" {
					args = append([]string{"--config-file", path}, args...)
				}
				for k, v := range tt.env {
					tt.env[k] = strings.ReplaceAll(v, "{file}", path)
				}
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got := printedConfig(t, args...)
			for k, v := range tt.want {
				v = strings.ReplaceAll(v, "{xdg}", xdg)
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestServePrintConfigGolden: --print-config prints every key a config file
// takes, in the order of serve --help.
func TestServePrintConfigGolden(t *testing.T) {
	isolateConfig(t)
	path := writeConfig(t, "node-name: n1\nbind-addr: 10.0.0.1:8401\nbootstrap: true\ngossip-key: c2VjcmV0c2VjcmV0c2VjcmV0\n")
	out := mustRun(t, "", "serve", "--print-config", "--config-file", path, "--config-dir", "/etc/proglog", "--data-dir", "/var/lib/proglog")
	golden(t, "serve_print_config", out)

	// What it prints is a config file serve takes, and means the same
	// (but for the redacted key).
	printed := writeConfig(t, strings.ReplaceAll(out, "gossip-key: REDACTED", `gossip-key: ""`))
	again := mustRun(t, "", "serve", "--print-config", "--config-file", printed)
	if want := strings.ReplaceAll(out, "gossip-key: REDACTED", `gossip-key: ""`); again != want {
		t.Fatalf("the printed configuration read back prints\n%s\nwant\n%s", again, want)
	}
}

// TestServeConfigFileErrors: a config file that cannot be used is a usage
// error naming the file and what is wrong with it.
func TestServeConfigFileErrors(t *testing.T) {
	isolateConfig(t)
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing", missing, "config file " + missing + ": no such file"},
		{"misspelt key", writeConfig(t, "node-name: a\nlog_level: debug\n"), `line 2: unknown key "log_level" (did you mean "log-level"?)`},
		{"typo", writeConfig(t, "rpc-prot: 1\n"), `unknown key "rpc-prot" (did you mean "rpc-port"?)`},
		{"unknown key", writeConfig(t, "bogus-key: 1\n"), `line 1: unknown key "bogus-key" (keys are the flags of serve --help`},
		{"a flag not for files", writeConfig(t, "dev: true\n"), `unknown key "dev"`},
		{"not a mapping", writeConfig(t, "- a\n- b\n"), "line 1: want keys (flag names) with values"},
		{"not YAML", writeConfig(t, "a: [\n"), "config file"},
		{"wrong type", writeConfig(t, "rpc-port: many\n"), "rpc-port"},
		{"duplicate key", writeConfig(t, "rpc-port: 1\nrpc-port: 2\n"), "already defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, "serve", "--print-config", "--config-file", tt.path)
			exitError(t, err, ExitUsage, tt.want)
			if !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

// TestConfigDirEverywhere: one PROGLOG_CONFIG_DIR is where gencert and genacl
// write, where serve reads certificates and ACL and writes the dev
// cluster's address, and where client commands find all of it; --config-dir
// beats it.
func TestConfigDirEverywhere(t *testing.T) {
	isolateConfig(t)
	dir := filepath.Join(t.TempDir(), "pki")
	t.Setenv("PROGLOG_CONFIG_DIR", dir)
	mustRun(t, "", "gencert", "--client", "alice")
	mustRun(t, "", "genacl", "--grant", "alice=produce")
	startDevIn(t, 1)
	if out := mustRun(t, "", "produce", "--cert-file", filepath.Join(dir, "alice.pem"), "--key-file", filepath.Join(dir, "alice-key.pem"), "hi"); out != "0\n" {
		t.Fatalf("produce as alice printed %q", out)
	}
	if out := mustRun(t, "", "consume"); out != "0\thi\n" {
		t.Fatalf("consume printed %q", out)
	}
	xdg, _ := ConfigDir()
	if _, err := os.Stat(xdg); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the default config directory %s was used (%v)", xdg, err)
	}
	other := t.TempDir()
	_, _, err := run(t, "consume", "--config-dir", other)
	exitError(t, err, ExitError, filepath.Join(other, certs.CACertFileName))
}

// startDevIn starts a dev cluster in the config directory the environment
// names, with data in a temporary directory.
func startDevIn(t *testing.T, n int) *devCluster {
	t.Helper()
	return serveDev(t, n, 0, t.TempDir())
}

// sighup sends serve a SIGHUP, as main.go does.
func (c *devCluster) sighup(t *testing.T) {
	t.Helper()
	select {
	case c.hup <- syscall.SIGHUP:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not take a SIGHUP within 10 s")
	}
}

// TestServeSIGHUP: SIGHUP reloads the ACL of every node of `serve --dev`;
// a policy that does not load is refused, logged, and the one before stays.
func TestServeSIGHUP(t *testing.T) {
	isolateConfig(t)
	dir, _ := ConfigDir()
	c := serveDev(t, 2, 0, t.TempDir())
	mustRun(t, "", "gencert", "--client", "alice")
	asAlice := []string{"--cert-file", filepath.Join(dir, "alice.pem"), "--key-file", filepath.Join(dir, "alice-key.pem")}
	for _, addr := range c.addrs {
		_, _, err := run(t, append([]string{"produce", "--addr", "proglog://" + addr}, append(asAlice, "x")...)...)
		exitError(t, err, ExitDenied, "permission denied")
	}

	mustRun(t, "", "genacl", "--force", "--grant", "alice=produce,consume")
	c.sighup(t)
	for _, addr := range c.addrs {
		waitFor(t, 10*time.Second, "alice to be allowed on "+addr, func() bool {
			_, _, err := run(t, append([]string{"consume", "--addr", "proglog://" + addr}, asAlice...)...)
			return err == nil
		})
	}

	policy := filepath.Join(dir, authz.PolicyFileName)
	if err := os.WriteFile(policy, []byte("p, alice, *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.sighup(t)
	waitFor(t, 10*time.Second, "both nodes to log the refused policy", func() bool {
		return strings.Count(c.stderr.String(), "reload refused") == 2
	})
	if !strings.Contains(c.stderr.String(), policy+" line 1") {
		t.Fatalf("the log does not name the policy's bad line:\n%s", c.stderr.String())
	}
	for _, addr := range c.addrs {
		mustRun(t, "", append([]string{"produce", "--addr", "proglog://" + addr}, append(asAlice, "y")...)...)
	}
}

// TestServeFailedStartLeavesNothing: serve with its Serf port in use fails,
// naming the address, and leaves the data directory as it was; with the
// port free, a second start on the same directory serves.
func TestServeFailedStartLeavesNothing(t *testing.T) {
	isolateConfig(t)
	mustRun(t, "", "gencert")
	mustRun(t, "", "genacl")
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	rpc := freeTCPPort(t)
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"serve", "--data-dir", data, "--bind-addr", held.Addr().String(), "--rpc-port", strconv.Itoa(rpc), "--bootstrap", "--node-name", "n1", "--log-level", "warn"}
	_, _, err = run(t, args...)
	exitError(t, err, ExitError, held.Addr().String()+": listen tcp")
	if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("error %q does not say the address is in use", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed start left %s behind (%v)", data, err)
	}

	held.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := newSyncBuffer()
	go func() {
		m := &Main{Stdin: strings.NewReader(""), Stdout: logWriter(t), Stderr: io.MultiWriter(logWriter(t), log), Version: "test"}
		done <- m.Run(ctx, append([]string{"proglogctl"}, slices.Replace(args, len(args)-1, len(args), "info")...))
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30 s of its context ending")
		}
	}()
	// Reading the log after serve wrote to it also orders the CLI runs:
	// urfave/cli writes to its global help flag when it parses.
	waitFor(t, 30*time.Second, "the second start to serve", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the second start failed: %v", err)
		default:
		}
		return strings.Contains(log.String(), "msg=serving")
	})
	addr := "proglog://127.0.0.1:" + strconv.Itoa(rpc)
	waitFor(t, 30*time.Second, "the second start to take a write", func() bool {
		_, _, err := run(t, "produce", "--addr", addr, "--timeout", "2s", "ok")
		return err == nil
	})
}

// freeTCPPort returns a loopback port nothing listened on a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestServeBadDataDir: a data directory that cannot be used is refused with
// the path and what to do.
func TestServeBadDataDir(t *testing.T) {
	isolateConfig(t)
	mustRun(t, "", "gencert")
	mustRun(t, "", "genacl")
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	half := t.TempDir()
	if err := os.MkdirAll(filepath.Join(half, "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "log", "00000000000000000000.store"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, dir, want string }{
		{"a file", file, file + " is a file, not a directory"},
		{"half made", half, half + " is half made"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, "serve", "--data-dir", tt.dir, "--bind-addr", "127.0.0.1:0", "--rpc-port", "0", "--bootstrap")
			exitError(t, err, ExitError, "serve: --data-dir: node: bad data directory: "+tt.want)
		})
	}
}

// TestServeExampleConfig: the example in docs/ is a config file serve takes.
func TestServeExampleConfig(t *testing.T) {
	isolateConfig(t)
	got := printedConfig(t, "--config-file", filepath.Join("..", "docs", "serve.example.yaml"))
	for k, v := range map[string]string{"node-name": "node1", "bind-addr": "10.0.0.1:8401", "bootstrap": "true",
		"data-dir": "/var/lib/proglog", "server-tls-cert-file": "/etc/proglog/server.pem"} {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}
