package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/proglogctl/proglogctl/certs"
)

// gencertCommand writes into --config-dir (see certs.Generate):
//
//	ca.pem, ca-key.pem          the CA; an existing one is reused
//	server.pem, server-key.pem  the node certificate of `serve` (gRPC and Raft)
//	NAME.pem, NAME-key.pem      a client certificate whose subject is NAME, for
//	                            root, nobody and every --client NAME
func gencertCommand() *cli.Command {
	def := certs.DefaultConfig()
	return &cli.Command{
		Name:  "gencert",
		Usage: "generate a CA, the node certificate and client certificates",
		Description: `gencert writes, into --config-dir:

   ca.pem, ca-key.pem          the certificate authority; one already there is reused
   server.pem, server-key.pem  the node certificate used by serve, for gRPC and Raft,
                               valid for localhost, 127.0.0.1, ::1, this host's name
                               and every --hosts entry
   NAME.pem, NAME-key.pem      a client certificate with subject NAME, for root,
                               nobody and every --client NAME

Keys are written with mode 0600. Existing files are never replaced without --force;
with an existing CA, gencert --client NAME writes just the two files of NAME.
It prints the path of every file it writes.`,
		Flags: []cli.Flag{
			configDirFlag("dir"),
			&cli.StringSliceFlag{
				Name:    "hosts",
				Usage:   "extra host names or IP addresses for the node certificate",
				EnvVars: []string{"PROGLOG_CERT_HOSTS"},
			},
			&cli.StringSliceFlag{
				Name:    "client",
				Usage:   "also issue a client certificate with subject `NAME` (root and nobody always are)",
				EnvVars: []string{"PROGLOG_CERT_CLIENTS"},
			},
			&cli.BoolFlag{
				Name:    "force",
				Usage:   "replace existing certificates (the CA is still reused)",
				EnvVars: []string{"PROGLOG_CERT_FORCE"},
			},
			&cli.DurationFlag{
				Name:    "ca-validity",
				Usage:   "lifetime of a new CA",
				Value:   def.CAValidity,
				EnvVars: []string{"PROGLOG_CA_VALIDITY"},
			},
			&cli.DurationFlag{
				Name:    "validity",
				Usage:   "lifetime of node and client certificates",
				Value:   def.LeafValidity,
				EnvVars: []string{"PROGLOG_CERT_VALIDITY"},
			},
		},
		Action: runGencert,
	}
}

func runGencert(c *cli.Context) error {
	dir, err := generateDir(c)
	if err != nil {
		return err
	}
	cfg := certs.DefaultConfig()
	cfg.Dir = dir
	cfg.Hosts = nonEmpty(c.StringSlice("hosts"))
	cfg.Clients = nonEmpty(c.StringSlice("client"))
	cfg.Force = c.Bool("force")
	cfg.CAValidity = c.Duration("ca-validity")
	cfg.LeafValidity = c.Duration("validity")
	if err := cfg.Validate(); err != nil {
		return UsageError{Err: err}
	}

	written, err := certs.Generate(cfg)
	if len(written) > 0 && !slices.Contains(written, filepath.Join(dir, certs.CACertFileName)) {
		fmt.Fprintf(c.App.ErrWriter, "gencert: using the CA in %s\n", filepath.Join(dir, certs.CACertFileName))
	}
	for _, p := range written {
		fmt.Fprintln(c.App.Writer, p)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w (use --force to replace it)", err)
	}
	return err
}
