package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBinaryCLI runs the built binary as a user would: usage errors go to
// stderr with exit 2 and a suggestion, help and version exit 0, the
// completion scripts and what they ask the binary for work, and a client
// with no cluster to reach fails within two seconds with exit 3.
func TestBinaryCLI(t *testing.T) {
	bin := buildBinary(t)
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	run := func(args ...string) (stdout, stderr string, code int, took time.Duration) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		start := time.Now()
		err := cmd.Run()
		return out.String(), errOut.String(), exitCode(err), time.Since(start)
	}
	if _, errOut, code, _ := run("gencert"); code != 0 {
		t.Fatalf("gencert: exit %d: %s", code, errOut)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // contained in stdout ("" : stdout must be empty)
		stderr string // contained in stderr ("" : stderr must be empty)
		within time.Duration
	}{
		{name: "typo", args: []string{"prodcue"}, code: 2, stderr: "proglogctl: unknown command \"prodcue\" for proglogctl\ndid you mean proglogctl produce?\nusage: proglogctl COMMAND"},
		{name: "unknown flag", args: []string{"consume", "--frm", "3"}, code: 2, stderr: "proglogctl: consume: unknown flag --frm\ndid you mean --from?\nusage: proglogctl consume [options]"},
		{name: "help", args: []string{"help"}, code: 0, stdout: "EXIT CODES:\n   0  success"},
		{name: "help command", args: []string{"help", "tail"}, code: 0, stdout: "proglogctl tail - print the last records"},
		{name: "version", args: []string{"version"}, code: 0, stdout: "proglogctl version "},
		{name: "version flag", args: []string{"--version"}, code: 0, stdout: "proglogctl version "},
		{name: "completion bash", args: []string{"completion", "bash"}, code: 0, stdout: "complete -o bashdefault -o default -F _proglogctl proglogctl"},
		{name: "completion commands", args: []string{"--generate-bash-completion"}, code: 0, stdout: "produce\nconsume\ntail\nservers\nprofile\n"},
		{name: "completion flags", args: []string{"consume", "--fo", "--generate-bash-completion"}, code: 0, stdout: "--follow"},
		{name: "refused", args: []string{"produce", "--addr", "proglog://127.0.0.1:1", "x"}, code: 3, stderr: "no server reachable at proglog://127.0.0.1:1: connection refused; is a cluster running?", within: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code, took := run(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if tc.stdout == "" && out != "" || !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout %q, want it to contain %q", out, tc.stdout)
			}
			if tc.stderr == "" && errOut != "" || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tc.stderr)
			}
			if tc.within > 0 && took > tc.within {
				t.Errorf("took %v, want under %v", took, tc.within)
			}
			t.Logf("exit %d after %v", code, took.Round(time.Millisecond))
		})
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		script, _, _, _ := run("completion", "bash")
		if out, err := exec.Command(bash, "-n", "-c", script).CombinedOutput(); err != nil {
			t.Errorf("bash -n on the completion script: %v\n%s", err, out)
		}
	}
}
