package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/commands"
	"github.com/proglogctl/proglogctl/node/nodetest"
)

// jsonTime matches a line of consume -o json and the record's time in it.
var jsonTime = regexp.MustCompile(`^(\{"offset":\d+,"time":"([^"]+)",.*\n)$`)

// jsonTimeField is a record's time in consume -o json output.
var jsonTimeField = regexp.MustCompile(`"time":"[^"]+"`)

// A newcomer's walk-through: `serve --dev` in the background, then produce,
// consume, tail and servers with no flags at all. What the client commands
// print, addresses and the config directory normalised, is
// testdata/dev-walkthrough.golden: the session as a user sees it.
func TestBinaryDevWalkthrough(t *testing.T) {
	skipShort(t)
	bin := buildBinary(t)
	deadline := nodetest.EnsureDeadline(t)
	home := t.TempDir()
	env := append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_DATA_HOME="+filepath.Join(home, "data"))
	// Free ports the system picks: the default ones may be taken here.
	dev := exec.Command(bin, "serve", "--dev", "--dev-port", "0", "--log-level", "warn")
	dev.Env = env
	var devOut bytes.Buffer
	dev.Stdout, dev.Stderr = &devOut, &devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if killed, err := stopProcess(dev, syscall.SIGINT, 30*time.Second); killed || err != nil {
			t.Errorf("serve --dev after SIGINT: %v (killed after 30 s: %v)", err, killed)
		}
		if t.Failed() {
			t.Logf("serve --dev output:\n%s", devOut.String())
		}
	})
	var transcript strings.Builder
	run := func(stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(deadline, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// step is run, written to the transcript.
	step := func(stdin string, args ...string) (string, error) {
		out, err := run(stdin, args...)
		cmd := "$ proglogctl " + strings.Join(args, " ")
		if stdin != "" {
			cmd = fmt.Sprintf("$ printf %q | proglogctl %s", stdin, strings.Join(args, " "))
		}
		fmt.Fprintf(&transcript, "%s\n%s", cmd, out)
		if code := exitCode(err); code != 0 {
			fmt.Fprintf(&transcript, "[exit %d]\n", code)
		}
		return out, err
	}
	// servers exits 0 once the cluster has a leader.
	waitFor(t, 60*time.Second, "the dev cluster to have a leader", func() bool {
		_, err := run("", "servers")
		return err == nil
	})
	out, err := step("", "produce", "hello", "world")
	if err != nil || out != "0\n1\n" {
		t.Fatalf("produce hello world = %q, %v; want offsets 0 and 1", out, err)
	}
	out, err = step("three\nfour\n", "produce", "--quiet")
	if err != nil || !strings.Contains(out, "produced 2 records at offsets 2..3") {
		t.Fatalf("produce from stdin = %q, %v", out, err)
	}
	out, err = step("", "consume")
	if err != nil || out != "0\thello\n1\tworld\n2\tthree\n3\tfour\n" {
		t.Fatalf("consume = %q, %v", out, err)
	}
	// The record's time is the leader's clock when it appended it.
	out, err = step("", "consume", "--from", "-1", "--output", "json")
	if m := jsonTime.FindStringSubmatch(out); err != nil || m == nil || m[1] != `{"offset":3,"time":"`+m[2]+`","value":"four"}`+"\n" {
		t.Fatalf("consume --from -1 --output json = %q, %v", out, err)
	} else if ts, err := time.Parse(time.RFC3339Nano, m[2]); err != nil || time.Since(ts) > time.Hour || time.Until(ts) > time.Hour {
		t.Fatalf("consume --from -1 --output json: time %q (%v), want about now", m[2], err)
	}
	// Which node leads varies from run to run: servers is checked, not
	// transcribed.
	out, err = run("", "servers")
	if err != nil || strings.Count(out, "dev-") != 3 || !strings.Contains(out, "leader") {
		t.Fatalf("servers = %q, %v", out, err)
	}
	// serve --dev wrote the profile the commands found the cluster with.
	if out, err := step("", "profile", "list"); err != nil || !strings.Contains(out, "dev") {
		t.Fatalf("profile list = %q, %v; want the dev profile", out, err)
	}
	out, err = step("", "consume", "--from", "100")
	if code := exitCode(err); code != commands.ExitOutOfRange || !strings.Contains(out, "past the end of the log") {
		t.Fatalf("consume past the end: exit %d, %q; want exit 5 and a message saying so", code, out)
	}

	// tail prints the last records, then follows new ones.
	ctx, cancel := context.WithCancel(deadline)
	defer cancel()
	tail := exec.CommandContext(ctx, bin, "tail", "-n", "2")
	tail.Env = env
	stdout, err := tail.StdoutPipe() // ends when tail does, so reading it is bounded by ctx
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	transcript.WriteString("$ proglogctl tail -n 2    # and, after two lines, proglogctl produce five\n")
	lines := bufio.NewScanner(stdout)
	want := []string{"2\tthree", "3\tfour", "4\tfive"}
	for i, w := range want {
		if i == 2 {
			if _, err := run("", "produce", "five"); err != nil {
				t.Fatal(err)
			}
		}
		if !lines.Scan() || lines.Text() != w {
			t.Fatalf("tail line %d = %q, want %q", i, lines.Text(), w)
		}
		transcript.WriteString(lines.Text() + "\n")
	}
	if killed, err := stopProcess(tail, syscall.SIGINT, 10*time.Second); killed || err != nil {
		t.Fatalf("tail after SIGINT: killed %v, %v", killed, err)
	}
	// Record times vary from run to run: the transcript shows TIME.
	script := jsonTimeField.ReplaceAllString(transcript.String(), `"time":"TIME"`)
	golden(t, "dev-walkthrough", normalizeAddrs(strings.ReplaceAll(script, filepath.Join(home, "config"), "$XDG_CONFIG_HOME")))
}
