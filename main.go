// Command proglogctl is a distributed commit log in one binary: run a node with
// `proglogctl serve`, and produce, consume, tail and inspect the cluster with the
// other subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/proglogctl/proglogctl/commands"
)

// version is set at build time with -ldflags "-X main.version=…"; without it the
// module's build information is used.
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal exits at once, skipping graceful shutdown.
		<-ctx.Done()
		stop()
	}()

	m := &commands.Main{
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Version: commands.Version(version),
		// serve asks for SIGHUP (reload certificates and ACL); other
		// commands never do, so for them it keeps its default effect.
		Reloads: func() (<-chan os.Signal, func()) {
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			return hup, func() { signal.Stop(hup) }
		},
	}
	if err := m.Run(ctx, os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "proglogctl: %v\n", err)
		os.Exit(commands.ExitCode(err))
	}
}
