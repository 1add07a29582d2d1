package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// ConfigDir returns the default config directory, which holds proglogctl's
// certificates, ACL and the dev cluster's address: $XDG_CONFIG_HOME/proglog
// if XDG_CONFIG_HOME is an absolute path (the XDG spec says to ignore a
// relative one), else ~/.config/proglog. It fails only if neither is known.
// Every command's --config-dir (PROGLOG_CONFIG_DIR) overrides it.
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

// configDirFlag is the --config-dir flag every command takes; left empty it
// means ConfigDir() (configDir resolves it). gencert and genacl also accept it
// as --dir.
func configDirFlag(aliases ...string) *cli.StringFlag {
	return &cli.StringFlag{
		Name:        "config-dir",
		Aliases:     aliases,
		Usage:       "directory of the certificates, the ACL and the dev cluster's address (gencert and genacl write there; serve and the clients read there)",
		DefaultText: "$XDG_CONFIG_HOME/proglog, else ~/.config/proglog",
		EnvVars:     []string{"PROGLOG_CONFIG_DIR"},
		TakesFile:   true,
	}
}

// configDir returns the value of --config-dir, or a usage error if it is
// empty because no default could be found.
func configDir(c *cli.Context) (string, error) {
	if dir := c.String("config-dir"); dir != "" {
		return dir, nil
	}
	dir, err := ConfigDir()
	if err == nil && !c.IsSet("config-dir") {
		return dir, nil // a command without the flag
	}
	if err == nil {
		err = errors.New("empty directory")
	}
	return "", UsageError{Err: fmt.Errorf("%s: set --config-dir or PROGLOG_CONFIG_DIR: %w", c.Command.Name, err)}
}

// inConfigDir returns the value of the file flag named flag, or, when it is
// empty, the file name in the config directory.
func inConfigDir(c *cli.Context, flag, name string) (string, error) {
	if p := c.String(flag); p != "" {
		return p, nil
	}
	dir, err := configDir(c)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// defaultIn is the usage note of a file flag whose default is a file in the
// config directory.
func defaultIn(name string) string { return " (default: " + name + " in --config-dir)" }

// loadConfigFile applies the YAML file at path to the flags that take values
// from a file (altsrc flags) and were set neither on the command line nor
// in the environment: flags beat PROGLOG_* variables, which beat the file,
// which beats the defaults. Its keys are the flag names; a key no flag has
// is an error that names it, the file and line, and the nearest flag name.
func loadConfigFile(c *cli.Context, path string, flags []cli.Flag) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return UsageError{Err: fmt.Errorf("config file %s: no such file", path)}
		}
		return UsageError{Err: fmt.Errorf("config file %s: %w", path, unwrapPath(err))}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return UsageError{Err: fmt.Errorf("config file %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if len(doc.Content) == 0 {
		return nil // empty: nothing to apply
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return UsageError{Err: fmt.Errorf("config file %s line %d: want keys (flag names) with values, as `rpc-port: 8400`", path, top.Line)}
	}
	known := fileKeys(flags)
	for i := 0; i < len(top.Content); i += 2 {
		k := top.Content[i]
		if !slices.Contains(known, k.Value) {
			msg := fmt.Sprintf("config file %s line %d: unknown key %q", path, k.Line, k.Value)
			if s := nearest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += fmt.Sprintf(" (keys are the flags of %s --help without the dashes)", c.Command.Name)
			}
			return UsageError{Err: errors.New(msg)}
		}
	}
	src, err := altsrc.NewYamlSourceFromFile(path)
	if err != nil {
		return UsageError{Err: fmt.Errorf("config file %s: %w", path, err)}
	}
	if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
		return UsageError{Err: fmt.Errorf("config file %s: %w", path, err)}
	}
	return nil
}

// fileKeys returns the names of the flags a config file may set, in order.
func fileKeys(flags []cli.Flag) []string {
	var keys []string
	for _, f := range flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); ok {
			keys = append(keys, f.Names()[0])
		}
	}
	return keys
}

// printConfig writes the value in force of every flag a config file may set,
// as YAML a config file may hold, with secret values redacted. resolve gives
// the effective value of flags whose default is derived at run time (files
// in the config directory).
func printConfig(w io.Writer, c *cli.Context, flags []cli.Flag, secret []string, resolve func(name string) (string, bool, error)) error {
	m := &yaml.Node{Kind: yaml.MappingNode, HeadComment: "proglogctl " + c.Command.Name + ": the configuration in effect (flags, then PROGLOG_* variables, then --config-file, then defaults)"}
	for _, f := range flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); !ok {
			continue
		}
		name := f.Names()[0]
		v := &yaml.Node{}
		switch f.(type) {
		case *altsrc.IntFlag:
			if err := v.Encode(c.Int(name)); err != nil {
				return err
			}
		case *altsrc.BoolFlag:
			if err := v.Encode(c.Bool(name)); err != nil {
				return err
			}
		case *altsrc.Int64Flag:
			if err := v.Encode(c.Int64(name)); err != nil {
				return err
			}
		case *altsrc.Uint64Flag:
			if err := v.Encode(c.Uint64(name)); err != nil {
				return err
			}
		case *altsrc.DurationFlag:
			if err := v.Encode(c.Duration(name).String()); err != nil {
				return err
			}
		case *altsrc.StringSliceFlag:
			vals := nonEmpty(c.StringSlice(name))
			if vals == nil {
				vals = []string{}
			}
			if err := v.Encode(vals); err != nil {
				return err
			}
			v.Style = yaml.FlowStyle
		default:
			s := c.String(name)
			if r, ok, err := resolve(name); err != nil {
				return err
			} else if ok {
				s = r
			}
			if s != "" && slices.Contains(secret, name) {
				s = "REDACTED"
			}
			if err := v.Encode(s); err != nil {
				return err
			}
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, v)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return err
	}
	return enc.Close()
}

// nearest returns the key of keys closest to s, if it is close enough to be
// what was meant: the same but for case, '_' for '-' or a typo or two.
func nearest(s string, keys []string) string {
	return suggest(strings.ReplaceAll(strings.ToLower(s), "_", "-"), keys)
}

// unwrapPath drops the *fs.PathError around err: messages here name the
// path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// reloadsKey carries Main.Reloads in the context of a run.
type reloadsKey struct{}

// reloads returns a channel that receives a value whenever the running
// command should load its files again (SIGHUP), and a func that stops
// that; both are no-ops when Main has no Reloads.
func reloads(ctx context.Context) (<-chan os.Signal, func()) {
	if f, ok := ctx.Value(reloadsKey{}).(func() (<-chan os.Signal, func())); ok && f != nil {
		return f()
	}
	return nil, func() {}
}

// noArgs returns a usage error if the command was given arguments.
// generateDir is the directory gencert and genacl write into, the config
// directory; they take no arguments.
func generateDir(c *cli.Context) (string, error) {
	if err := noArgs(c); err != nil {
		return "", err
	}
	return configDir(c)
}

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
