package commands

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

// ConfigDir returns the directory that holds proglogctl's certificates, ACL
// and defaults: $XDG_CONFIG_HOME/proglog if XDG_CONFIG_HOME is an absolute
// path (the XDG spec says to ignore a relative one), else ~/.config/proglog.
// It fails only if neither is known.
func ConfigDir() (string, error) {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "proglog"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no config directory: XDG_CONFIG_HOME is not an absolute path and %w", err)
	}
	return filepath.Join(home, ".config", "proglog"), nil
}

// configDirFlag is the --dir flag of the commands that write into the config
// directory; its default is ConfigDir().
func configDirFlag() *cli.StringFlag {
	dir, _ := ConfigDir() // an unknown default is reported by configDir
	return &cli.StringFlag{
		Name:      "dir",
		Usage:     "directory to write into",
		Value:     dir,
		EnvVars:   []string{"PROGLOG_CONFIG_DIR"},
		TakesFile: true,
	}
}

// configDir returns the value of the --dir flag, or a usage error if it is
// empty because no default could be found.
func configDir(c *cli.Context) (string, error) {
	if dir := c.String("dir"); dir != "" {
		return dir, nil
	}
	_, err := ConfigDir()
	if err == nil {
		err = errors.New("empty directory")
	}
	return "", UsageError{Err: fmt.Errorf("%s: set --dir or PROGLOG_CONFIG_DIR: %w", c.Command.Name, err)}
}

// noArgs returns a usage error if the command was given arguments.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return UsageError{Err: fmt.Errorf("%s: unexpected argument %q", c.Command.Name, c.Args().First())}
	}
	return nil
}

// nonEmpty returns the elements of ss that are not empty, as a slice flag
// set from an empty environment variable holds one empty string.
func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
