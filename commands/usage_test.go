package commands

import (
	"fmt"
	"strings"
	"testing"
)

// result is what a run of the CLI showed: its outputs, the error main.go
// prints and the exit code, as one text for golden files.
func result(out, errOut string, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit %d\n", ExitCode(err))
	if out != "" {
		fmt.Fprintf(&b, "--- stdout\n%s", out)
	}
	if errOut != "" {
		fmt.Fprintf(&b, "--- stderr\n%s", errOut)
	}
	if err != nil {
		fmt.Fprintf(&b, "--- error (main.go prints it on stderr)\nproglogctl: %v\n", err)
	}
	return b.String()
}

// TestUsageGolden checks what help, version, completion and every kind of
// usage error print, and their exit codes: a mistyped command or flag gets
// a suggestion and a short usage, exit 2; help and version exit 0.
func TestUsageGolden(t *testing.T) {
	isolateConfig(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"help", []string{"help"}},
		{"help_flag", []string{"--help"}},
		{"help_consume", []string{"help", "consume"}},
		{"help_typo", []string{"help", "prodcue"}},
		{"typo_command", []string{"prodcue"}},
		{"unknown_command", []string{"frobnicate"}},
		{"typo_flag", []string{"consume", "--frm", "5"}},
		{"unknown_root_flag", []string{"--no-such-flag"}},
		{"flag_without_value", []string{"consume", "--from"}},
		{"bad_flag_value", []string{"consume", "--count", "many"}},
		{"version", []string{"version"}},
		{"version_flag", []string{"--version"}},
		{"to_below_from", []string{"consume", "--to", "5", "--from", "10"}},
		{"bad_from", []string{"consume", "--from", "five"}},
		{"bad_output", []string{"consume", "-o", "yaml"}},
		{"json_and_output", []string{"produce", "--json", "-o", "raw", "x"}},
		{"servers_bad_output", []string{"servers", "-o", "csv"}},
		{"delimiter_not_raw", []string{"consume", "--delimiter", ";"}},
		{"delimiter_and_null", []string{"produce", "-0", "--delimiter", ";"}},
		{"tail_from_and_lines", []string{"tail", "--from", "5", "-n", "3"}},
		{"consume_from_and_since", []string{"consume", "--from", "5", "--since", "10m"}},
		{"consume_since_and_from_time", []string{"consume", "--since", "10m", "--from-time", "2026-12-02T13:00:00Z", "--from", "1"}},
		{"tail_since_and_lines", []string{"tail", "--since", "1h", "-n", "3"}},
		{"bad_since", []string{"consume", "--since", "-5m"}},
		{"bad_since_unit", []string{"tail", "--since", "10"}},
		{"bad_from_time", []string{"consume", "--from-time", "yesterday"}},
		{"profile_unknown_subcommand", []string{"profile", "frob"}},
		{"profile_use_unknown", []string{"profile", "use", "prod"}},
		{"completion_unknown_shell", []string{"completion", "tcsh"}},
		{"completion_no_shell", []string{"completion"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := run(t, tc.args...)
			golden(t, "usage_"+tc.name, result(out, errOut, err))
		})
	}
}

// TestCompletionScripts checks each script names the program and asks it
// for completions.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			out := mustRun(t, "", "completion", shell)
			want := "--generate-bash-completion"
			if shell == "fish" {
				want = "complete -c proglogctl"
			}
			if !strings.Contains(out, want) || !strings.Contains(out, "produce") && shell == "fish" {
				t.Fatalf("completion %s does not contain %q:\n%s", shell, want, out)
			}
		})
	}
	// What the scripts call is tested on the binary (cli reads os.Args
	// for it): TestBinaryCLI.
}

func TestSuggest(t *testing.T) {
	cmds := []string{"serve", "produce", "consume", "tail", "servers", "profile", "version"}
	for _, tc := range []struct{ typed, want string }{
		{"prodcue", "produce"}, {"consme", "consume"}, {"tial", "tail"}, {"sever", "serve"},
		{"verison", "version"}, {"frobnicate", ""}, {"x", ""},
	} {
		if got := suggest(tc.typed, cmds); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
}
