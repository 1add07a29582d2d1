package commands

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind. Raft does
// not join the goroutine of a leadership transfer still under way when it
// shuts down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*Raft).leaderLoop.func2"),
	)
}

// run runs the CLI in-process with an empty stdin.
func run(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runIn(t, "", args...)
}

func TestMain_versionAndHelp(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantCode int
	}{
		{name: "version", args: []string{"--version"}, wantOut: "proglogctl version v1.2.3-test"},
		{name: "help", args: []string{"--help"}, wantOut: "a replicated commit log"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantCode: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, tt.args...)
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code = %d (err %v), want %d", got, err, tt.wantCode)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Fatalf("stdout = %q, want it to contain %q", out, tt.wantOut)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	if got := Version("v9"); got != "v9" {
		t.Fatalf("Version(v9) = %q", got)
	}
	if got := Version(""); got == "" {
		t.Fatal("Version(\"\") is empty; want the build's version or a devel marker")
	}
}
