// Package commands is proglogctl's command line: one file per subcommand, each
// mapping its flags onto one package's Config and rendering the output.
package commands

import (
	"context"
	"errors"
	"io"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// Main runs the command line with explicit streams, so the whole CLI can be
// driven in-process by tests as well as by main.go.
type Main struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Version string
}

// Exit codes that scripts can rely on.
const (
	ExitOK    = 0
	ExitError = 1 // any failure not listed below
	ExitUsage = 2 // bad flags or arguments
)

// UsageError marks an error caused by how the command was invoked.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// ExitCode maps an error returned by Run onto the process exit code.
func ExitCode(err error) int {
	var ue UsageError
	var ce CodedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &ce):
		return ce.Code
	default:
		return ExitError
	}
}

// Run parses args (args[0] is the program name) and runs the chosen subcommand
// until it finishes or ctx is cancelled.
func (m *Main) Run(ctx context.Context, args []string) error {
	return m.app().RunContext(ctx, args)
}

func (m *Main) app() *cli.App {
	return &cli.App{
		Name:                 "proglogctl",
		Usage:                "a replicated commit log in one binary",
		Version:              m.Version,
		Reader:               m.Stdin,
		Writer:               m.Stdout,
		ErrWriter:            m.Stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		// Errors are printed once, by the caller, with the exit code it chooses.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return UsageError{Err: err}
		},
		Commands: []*cli.Command{serveCommand(), produceCommand(), consumeCommand(), tailCommand(), serversCommand(), benchCommand(), gencertCommand(), genaclCommand()},
	}
}

// Version returns the version to report: the one set at build time if any, else
// the module version or VCS revision recorded by the Go toolchain.
func Version(set string) string {
	if set != "" {
		return set
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
