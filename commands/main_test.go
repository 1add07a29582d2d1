package commands

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func run(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Version: "v1.2.3-test"}
	err = m.Run(context.Background(), append([]string{"proglogctl"}, args...))
	return out.String(), errOut.String(), err
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
