package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/proglogctl/proglogctl/authz"
)

// genaclCommand writes into --config-dir:
//
//	model.conf  the casbin model (authz.Model)
//	policy.csv  who may produce and consume: root both, plus every --grant
func genaclCommand() *cli.Command {
	return &cli.Command{
		Name:  "genacl",
		Usage: "generate the access control model and policy",
		Description: `genacl writes, into --config-dir:

   model.conf  the casbin model serve checks every call against
   policy.csv  the policy: root may produce and consume, nobody and everyone not
               granted anything may do nothing, plus every --grant

--grant SUBJECT=ACTION[,ACTION] allows the client whose certificate has subject
SUBJECT the actions produce and/or consume, for example
--grant alice=produce --grant bob=consume,produce. In PROGLOG_ACL_GRANTS separate
grants with commas: alice=produce,bob=consume,produce.

Existing files are never replaced without --force. genacl prints the path of every
file it writes.`,
		Flags: []cli.Flag{
			configDirFlag("dir"),
			&cli.StringSliceFlag{
				Name:    "grant",
				Usage:   "allow a `GRANT` of the form SUBJECT=ACTION[,ACTION], actions being produce and consume (repeatable)",
				EnvVars: []string{"PROGLOG_ACL_GRANTS"},
			},
			&cli.BoolFlag{
				Name:    "force",
				Usage:   "replace existing model and policy files",
				EnvVars: []string{"PROGLOG_ACL_FORCE"},
			},
		},
		Action: runGenacl,
	}
}

func runGenacl(c *cli.Context) error {
	dir, err := generateDir(c)
	if err != nil {
		return err
	}
	grants, err := parseGrants(authz.DefaultGrants(), nonEmpty(c.StringSlice("grant")))
	if err != nil {
		return UsageError{Err: err}
	}
	if err := grants.Validate(); err != nil {
		return UsageError{Err: err}
	}

	written, err := authz.WriteFiles(dir, grants, c.Bool("force"))
	for _, p := range written {
		fmt.Fprintln(c.App.Writer, p)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w (use --force to replace it)", err)
	}
	return err
}

// parseGrants adds to base the grants in args, each SUBJECT=ACTION[,ACTION].
// The CLI splits flag values at commas, so an argument without "=" is one
// more action of the subject before it: "bob=consume,produce" arrives as
// "bob=consume" and "produce".
func parseGrants(base authz.Grants, args []string) (authz.Grants, error) {
	g := authz.Grants{}
	for s, as := range base {
		g[s] = append([]string(nil), as...)
	}
	subject := ""
	for _, arg := range args {
		actions := arg
		if s, a, ok := strings.Cut(arg, "="); ok {
			subject, actions = strings.TrimSpace(s), a
			if subject == "" {
				return nil, fmt.Errorf("genacl: grant %q: no subject before '='; want SUBJECT=ACTION[,ACTION]", arg)
			}
		} else if subject == "" {
			return nil, fmt.Errorf("genacl: grant %q: want SUBJECT=ACTION[,ACTION]", arg)
		}
		for _, a := range strings.Split(actions, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				return nil, fmt.Errorf("genacl: grant %q: empty action; want SUBJECT=ACTION[,ACTION] with actions %s",
					arg, strings.Join(authz.Actions(), ", "))
			}
			g[subject] = append(g[subject], a)
		}
	}
	return g, nil
}
