// Package commands is proglogctl's command line: one file per subcommand, each
// mapping its flags onto one package's Config and rendering the output.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Main runs the command line with explicit streams, so the whole CLI can be
// driven in-process by tests as well as by main.go.
type Main struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Version string
	// Reloads, if set, is called by serve to receive a value each time it
	// should load its certificates and ACL again, and a func to stop that
	// (main.go: SIGHUP). Other commands never call it, so the signal keeps
	// its default effect on them.
	Reloads func() (<-chan os.Signal, func())

	// now, when set, is the clock of the commands that read it (consume and
	// tail --since); tests set it.
	now func() time.Time
}

// Exit codes that scripts can rely on; the client commands add theirs
// (client.go). exitCodesHelp lists them all.
const (
	ExitOK    = 0
	ExitError = 1 // any failure not listed below
	ExitUsage = 2 // bad flags or arguments
)

// exitCodesHelp ends `proglogctl --help`.
const exitCodesHelp = `
EXIT CODES:
   0  success
   1  any other failure (a record refused, a file not found, ...)
   2  usage: an unknown command or flag, a bad value
   3  unavailable: no server reachable, no leader, or no answer within --timeout
   4  denied: the ACL does not allow the call
   5  out of range: an offset outside the log
   6  TLS: a certificate not accepted (unknown CA, expired, wrong name), not authenticated
`

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
// until it finishes or ctx is cancelled. A usage error comes back with a
// short usage of the command appended, for the caller to print on stderr.
func (m *Main) Run(ctx context.Context, args []string) error {
	if m.Reloads != nil {
		ctx = context.WithValue(ctx, reloadsKey{}, m.Reloads)
	}
	app := m.app()
	err := app.RunContext(ctx, nameLast(args))
	var ue UsageError
	if errors.As(err, &ue) && !strings.Contains(err.Error(), "\nusage: ") {
		return UsageError{Err: fmt.Errorf("%w\n%s", err, shortUsage(app, args[1:]))}
	}
	return err
}

// shortUsage is the usage line of the (sub)command args name.
func shortUsage(app *cli.App, args []string) string {
	path, cmds := []string{app.Name}, app.Commands
	var cmd *cli.Command
	for _, a := range args {
		next := commandNamed(cmds, a)
		if next == nil {
			if strings.HasPrefix(a, "-") {
				continue
			}
			break
		}
		cmd, cmds, path = next, next.Subcommands, append(path, next.Name)
	}
	name := strings.Join(path, " ")
	switch {
	case cmd == nil:
		return fmt.Sprintf("usage: %s COMMAND [options]  (%s --help: the commands)", name, name)
	case slices.ContainsFunc(cmd.Subcommands, func(s *cli.Command) bool { return s.Name != "help" }):
		return fmt.Sprintf("usage: %s COMMAND  (%s --help: the commands)", name, name)
	}
	argsUsage := ""
	if cmd.ArgsUsage != "" {
		argsUsage = " " + cmd.ArgsUsage
	}
	return fmt.Sprintf("usage: %s [options]%s  (%s --help: every option)", name, argsUsage, name)
}

// commandNamed is the command of cmds called name (or aliased so), or nil.
func commandNamed(cmds []*cli.Command, name string) *cli.Command {
	i := slices.IndexFunc(cmds, func(c *cli.Command) bool { return c.HasName(name) })
	if i < 0 {
		return nil
	}
	return cmds[i]
}

func (m *Main) app() *cli.App {
	app := &cli.App{
		Name:                  "proglogctl",
		Usage:                 "a replicated commit log in one binary",
		Version:               m.Version,
		Reader:                m.Stdin,
		Writer:                m.Stdout,
		ErrWriter:             m.Stderr,
		EnableBashCompletion:  true,
		HideHelpCommand:       true, // help is ours: it suggests
		CustomAppHelpTemplate: cli.AppHelpTemplate + exitCodesHelp,
		// cli's own help and version flags and help command are globals it
		// writes to on every run: each app gets flags of its own instead,
		// so that runs in one process (tests) share nothing.
		HideHelp:    true,
		HideVersion: true,
		Flags:       []cli.Flag{helpFlag(), &cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version", DisableDefaultText: true}},
		// Errors are printed once, by the caller, with the exit code it chooses.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{serveCommand(), produceCommand(), consumeCommand(), tailCommand(), serversCommand(),
			profileCommand(), benchCommand(), gencertCommand(), genaclCommand(), fsckCommand(), verifyCommand(), helpCommand(), versionCommand(), completionCommand()},
	}
	if m.now != nil {
		app.Metadata = map[string]any{nowKey: m.now}
	}
	app.OnUsageError = usageError(app.Flags)
	app.Action = func(c *cli.Context) error {
		if c.Bool("version") {
			cli.ShowVersion(c)
			return nil
		}
		if c.NArg() == 0 {
			return cli.ShowAppHelp(c)
		}
		return unknownCommand(c.App.Name, c.Args().First(), c.App.Commands)
	}
	var setup func(cmds []*cli.Command)
	setup = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			cmd.HideHelp, cmd.Flags = true, append(cmd.Flags, helpFlag())
			cmd.OnUsageError = usageError(cmd.Flags)
			if len(cmd.Subcommands) > 0 && cmd.Action == nil {
				cmd.Action = func(c *cli.Context) error {
					if c.NArg() == 0 {
						return cli.ShowSubcommandHelp(c)
					}
					return unknownCommand(c.App.Name+" "+cmd.Name, c.Args().First(), cmd.Subcommands)
				}
			}
			setup(cmd.Subcommands)
		}
	}
	setup(app.Commands)
	return app
}

// helpFlag is --help, -h. cli recognizes it by name.
func helpFlag() cli.Flag {
	return &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show help", DisableDefaultText: true}
}

// unknownCommand is the usage error for name, which is none of cmds,
// suggesting the closest.
func unknownCommand(prefix, name string, cmds []*cli.Command) error {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	msg := fmt.Sprintf("unknown command %q for %s", name, prefix)
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("\ndid you mean %s %s?", prefix, s)
	}
	msg += fmt.Sprintf("\nusage: %s COMMAND  (%s --help: the commands)", prefix, prefix)
	return UsageError{Err: errors.New(msg)}
}

// flagErrorRE matches the flag package's parse errors.
var flagErrorRE = regexp.MustCompile(`^(flag provided but not defined|flag needs an argument): -+(\S+)$`)

// usageError returns an OnUsageError that turns the flag package's parse
// errors into short sentences, with a suggestion for a mistyped flag.
func usageError(flags []cli.Flag) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		prefix := "" // the root: main.go names the program
		if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
			prefix = c.Command.Name + ": "
		}
		m := flagErrorRE.FindStringSubmatch(err.Error())
		if m == nil {
			return UsageError{Err: fmt.Errorf("%s%s", prefix, strings.Replace(err.Error(), " for flag -", " for --", 1))}
		}
		flag := dashes(m[2])
		if m[1] == "flag needs an argument" {
			return UsageError{Err: fmt.Errorf("%s%s needs a value", prefix, flag)}
		}
		var names []string
		for _, f := range flags {
			names = append(names, f.Names()...)
		}
		msg := fmt.Sprintf("%sunknown flag %s", prefix, flag)
		if s := suggest(m[2], names); s != "" {
			msg += fmt.Sprintf("\ndid you mean %s?", dashes(s))
		}
		return UsageError{Err: errors.New(msg)}
	}
}

// dashes is name as a flag on the command line: -n, --from.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "show the commands, or one command's options",
		ArgsUsage: "[COMMAND [SUBCOMMAND]]",
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				return cli.ShowAppHelp(c)
			}
			prefix, cmds := c.App.Name, c.App.Commands
			for _, a := range args {
				next := commandNamed(cmds, a)
				if next == nil {
					return unknownCommand(prefix, a, cmds)
				}
				cmds, prefix = next.Subcommands, prefix+" "+next.Name
			}
			// The help of the command is what `proglogctl ARGS... --help` prints.
			return c.App.RunContext(c.Context, append(append([]string{c.App.Name}, args...), "--help"))
		},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version (as --version does)",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cli.ShowVersion(c)
			return nil
		},
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
