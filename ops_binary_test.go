package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/authz"
)

// TestBinaryVersionFromLdflags: the version given to the linker, as `make
// build` and `make release` do, is what --version reports.
func TestBinaryVersionFromLdflags(t *testing.T) {
	const v = "v9.8.7-ldflags-test"
	bin := buildBinaryWith(t, "-ldflags", "-X main.version="+v)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "proglogctl version "+v {
		t.Fatalf("--version: %q, %v; want \"proglogctl version %s\"", out, err, v)
	}
}

// TestBinarySIGHUPReloads: SIGHUP makes a running serve load its ACL again
// (a bad policy is refused and the one in force stays; a good one grants a
// new client at once) and never stops it, while a client command still ends
// on SIGHUP as a terminal that closes expects.
func TestBinarySIGHUPReloads(t *testing.T) {
	c := newCluster(t, 1)
	p := c.procs[0]
	// The node's log goes to a file, which the test reads while it runs.
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	p.cmd = exec.Command(c.bin, p.args...)
	p.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Dir(c.cfg))
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serveLog := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	defer func() {
		if t.Failed() {
			t.Logf("serve's log:\n%s", serveLog())
		}
	}()
	waitFor(t, 30*time.Second, "the node to serve", func() bool { return c.serving(p) })
	c.run("gencert", "--client", "alice")
	alice := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, code := c.runClient(ctx, "produce", "--cert-file", filepath.Join(c.cfg, "alice.pem"), "--key-file", filepath.Join(c.cfg, "alice-key.pem"), "x")
		return code
	}
	if code := alice(); code != 4 {
		t.Fatalf("alice before the grant: exit %d, want 4 (denied)", code)
	}

	// A policy that does not parse is refused, and the one in force stays:
	// root, whom the bad file does not name, may still produce.
	policy := filepath.Join(c.cfg, authz.PolicyFileName)
	if err := os.WriteFile(policy, []byte("p, alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "serve to log the refused policy", func() bool {
		return strings.Contains(serveLog(), "reload refused") && strings.Contains(serveLog(), policy+" line 1")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, stderr, code := c.runClient(ctx, "produce", "root"); code != 0 {
		t.Fatalf("root after a refused reload: exit %d: %s", code, stderr)
	}
	c.run("genacl", "--force", "--grant", "alice=produce")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "alice to be allowed after SIGHUP", func() bool { return alice() == 0 })

	// A client has no use for SIGHUP: it dies of it, as a shell's jobs do
	// when the terminal goes, unless it was started with SIGHUP ignored
	// (nohup), which a child inherits.
	if signal.Ignored(syscall.SIGHUP) {
		t.Log("SIGHUP is ignored in this process (started under nohup?), and so in the clients it starts: not checking that tail dies of it")
	} else {
		tail := c.startClient("tail", nil, "tail")
		killed, err := stopProcess(tail.cmd, syscall.SIGHUP, 10*time.Second)
		tail.cmd = nil
		var ee *exec.ExitError
		switch {
		case killed:
			t.Fatal("tail still ran 10 s after SIGHUP: killed")
		case !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGHUP:
			t.Fatalf("tail after SIGHUP: %v, want killed by SIGHUP", err)
		}
	}

	if err := c.signal(p, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGHUPs and SIGTERM: %v", err)
	}
}
