package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
)

// profilesFile, in the config directory, holds the client profiles.
const profilesFile = "profiles.json"

// devProfile is the profile `serve --dev` writes.
const devProfile = "dev"

// Profile is how client commands reach one cluster: its address and the
// files of the credentials to use there. Files are referenced by absolute
// path, never copied.
type Profile struct {
	Addr      string   `json:"addr"`
	CAFile    string   `json:"ca_file"`
	CertFile  string   `json:"cert_file"`
	KeyFile   string   `json:"key_file"`
	ConnectTo []string `json:"connect_to,omitempty"`
}

// profiles is the content of profilesFile.
type profiles struct {
	Current  string              `json:"current,omitempty"`
	Profiles map[string]*Profile `json:"profiles"`

	dir string // the config directory they are kept in ("": none)
}

// loadProfiles reads the profiles kept in the config directory dir; none
// (or no directory) is an empty set.
func loadProfiles(dir string) (*profiles, error) {
	ps := &profiles{Profiles: map[string]*Profile{}, dir: dir}
	if dir == "" {
		return ps, nil
	}
	path := filepath.Join(dir, profilesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ps, nil
	} else if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	if err := json.Unmarshal(b, ps); err != nil {
		return nil, fmt.Errorf("profiles: %s: %w", path, err)
	}
	if ps.Profiles == nil {
		ps.Profiles = map[string]*Profile{}
	}
	return ps, nil
}

// save writes the profiles atomically.
func (ps *profiles) save() error {
	if ps.dir == "" {
		return errors.New("profiles: no config directory: set --config-dir or PROGLOG_CONFIG_DIR")
	}
	path := filepath.Join(ps.dir, profilesFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	b, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return err
	}
	return certs.WriteFile(path, append(b, '\n'), 0o600, true)
}

// names returns the profile names, sorted.
func (ps *profiles) names() []string {
	var names []string
	for n := range ps.Profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// get returns the profile called name, or a usage error naming the others.
func (ps *profiles) get(name string) (*Profile, error) {
	if p, ok := ps.Profiles[name]; ok {
		return p, nil
	}
	msg := fmt.Sprintf("no profile %q", name)
	if names := ps.names(); len(names) == 0 {
		msg += "; add one with `proglogctl profile add`"
	} else if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	} else {
		msg += " (profiles: " + strings.Join(names, ", ") + ")"
	}
	return nil, UsageError{Err: errors.New(msg)}
}

// chosenProfile is the profile --profile (or PROGLOG_PROFILE) names, else
// the current one, else nil.
func chosenProfile(c *cli.Context) (*Profile, error) {
	ps, err := loadProfiles(profilesDir(c))
	if err != nil {
		return nil, err
	}
	name := c.String("profile")
	if name == "" {
		if ps.Current == "" {
			return nil, nil
		}
		name = ps.Current
	}
	return ps.get(name)
}

// writeDevProfile records the dev cluster at target, with the credentials
// in dir, as the profile "dev", and makes it current when no profile is.
func writeDevProfile(dir, target string) error {
	ps, err := loadProfiles(dir)
	if err != nil {
		return err
	}
	ps.Profiles[devProfile] = &Profile{
		Addr:     target,
		CAFile:   filepath.Join(dir, certs.CACertFileName),
		CertFile: filepath.Join(dir, certs.ClientCertFileName(certs.RootSubject)),
		KeyFile:  filepath.Join(dir, certs.ClientKeyFileName(certs.RootSubject)),
	}
	if ps.Current == "" {
		ps.Current = devProfile
	}
	return ps.save()
}

func profileCommand() *cli.Command {
	return &cli.Command{
		Name:  "profile",
		Usage: "named clusters with their credentials, so client commands need no flags",
		Description: `A profile holds a cluster's address and the paths of the CA, certificate and key
to use there (the files stay where they are). 'profile use' makes one current;
--profile or PROGLOG_PROFILE picks one for one command. Flags and PROGLOG_*
variables beat the profile. 'serve --dev' writes the profile "dev".`,
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add a profile, or replace one",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "addr", Usage: "cluster: proglog://host:port[,host:port...]"},
					&cli.StringFlag{Name: "ca-file", Usage: "CA certificate servers are verified against", TakesFile: true},
					&cli.StringFlag{Name: "cert-file", Usage: "client certificate", TakesFile: true},
					&cli.StringFlag{Name: "key-file", Usage: "client key", TakesFile: true},
					&cli.StringSliceFlag{Name: "connect-to", Usage: "`HOST:PORT=HOST2:PORT2`, as for client commands (repeatable)"},
					&cli.BoolFlag{Name: "use", Usage: "make it the current profile"},
				},
				Action: runProfileAdd,
			},
			{
				Name:      "use",
				Usage:     "make a profile current: client commands use it without --profile",
				ArgsUsage: "NAME",
				Action:    runProfileUse,
			},
			{
				Name:  "list",
				Usage: "list the profiles; * marks the current one",
				Flags: outputFlags(),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return runProfileList(c)
				},
			},
			{
				Name:      "remove",
				Usage:     "remove a profile (its files stay)",
				ArgsUsage: "NAME",
				Action:    runProfileRemove,
			},
		},
	}
}

// nameLast moves the NAME of `profile add NAME --flag...` after the flags,
// where the flag parser, which stops at the first argument, finds it.
func nameLast(args []string) []string {
	if len(args) > 4 && args[1] == "profile" && args[2] == "add" && !strings.HasPrefix(args[3], "-") {
		return append(append(append([]string{}, args[:3]...), args[4:]...), args[3])
	}
	return args
}

// oneArg returns the single argument a command takes.
func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", UsageError{Err: fmt.Errorf("profile %s: want one argument, %s", c.Command.Name, what)}
	}
	return c.Args().First(), nil
}

func runProfileAdd(c *cli.Context) error {
	name, err := oneArg(c, "the profile's NAME")
	if err != nil {
		return err
	}
	var missing []string
	for _, f := range []string{"addr", "ca-file", "cert-file", "key-file"} {
		if c.String(f) == "" {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		return UsageError{Err: fmt.Errorf("profile add: %s: required", orList(missing))}
	}
	if err := certs.ValidSubject(name); err != nil {
		return UsageError{Err: fmt.Errorf("profile add: name %q: use letters, digits, '.', '_', '@' and '-'", name)}
	}
	p := &Profile{Addr: c.String("addr"), ConnectTo: nonEmpty(c.StringSlice("connect-to"))}
	if _, err := discovery.ParseTarget(p.Addr); err != nil {
		return UsageError{Err: fmt.Errorf("profile add: --addr %q: want proglog://host:port[,host:port...]", p.Addr)}
	}
	if _, err := connectTo(p.ConnectTo); err != nil {
		return err
	}
	for _, f := range []struct {
		flag string
		to   *string
	}{{"ca-file", &p.CAFile}, {"cert-file", &p.CertFile}, {"key-file", &p.KeyFile}} {
		abs, err := filepath.Abs(c.String(f.flag))
		if err != nil {
			return fmt.Errorf("profile add: --%s: %w", f.flag, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("profile add: --%s: %w", f.flag, err)
		}
		*f.to = abs
	}
	ps, err := loadProfiles(profilesDir(c))
	if err != nil {
		return err
	}
	_, replaced := ps.Profiles[name]
	ps.Profiles[name] = p
	if c.Bool("use") || ps.Current == "" {
		ps.Current = name
	}
	if err := ps.save(); err != nil {
		return err
	}
	verb := "added"
	if replaced {
		verb = "replaced"
	}
	fmt.Fprintf(c.App.Writer, "%s profile %s", verb, name)
	if ps.Current == name {
		fmt.Fprint(c.App.Writer, " (current)")
	}
	fmt.Fprintln(c.App.Writer)
	return nil
}

// namedProfile is the profile the command's one argument names, with the
// profiles it is among.
func namedProfile(c *cli.Context) (string, *profiles, error) {
	name, err := oneArg(c, "the profile's NAME")
	if err != nil {
		return "", nil, err
	}
	ps, err := loadProfiles(profilesDir(c))
	if err != nil {
		return "", nil, err
	}
	if _, err := ps.get(name); err != nil {
		return "", nil, err
	}
	return name, ps, nil
}

func runProfileUse(c *cli.Context) error {
	name, ps, err := namedProfile(c)
	if err != nil {
		return err
	}
	ps.Current = name
	if err := ps.save(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "using profile %s\n", name)
	return nil
}

func runProfileRemove(c *cli.Context) error {
	name, ps, err := namedProfile(c)
	if err != nil {
		return err
	}
	delete(ps.Profiles, name)
	if ps.Current == name {
		ps.Current = ""
	}
	if err := ps.save(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "removed profile %s\n", name)
	return nil
}

// profileRow is one profile as `profile list` prints it.
type profileRow struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Profile
}

func runProfileList(c *cli.Context) error {
	format, err := outputFormat(c, "text", "text", "json", "table")
	if err != nil {
		return err
	}
	ps, err := loadProfiles(profilesDir(c))
	if err != nil {
		return err
	}
	rows := []profileRow{}
	for _, n := range ps.names() {
		rows = append(rows, profileRow{Name: n, Current: n == ps.Current, Profile: *ps.Profiles[n]})
	}
	w := c.App.Writer
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "table":
		cells := make([][]string, len(rows))
		for i, r := range rows {
			cells[i] = r.cells()
		}
		_, err := fmt.Fprintln(w, renderTable([]string{"", "NAME", "ADDRESS", "CA", "CERTIFICATE", "KEY"}, cells, nil))
		return err
	}
	for _, r := range rows {
		if _, err := fmt.Fprintln(w, strings.Join(r.cells(), "\t")); err != nil {
			return err
		}
	}
	return nil
}

func (r profileRow) cells() []string {
	mark := " "
	if r.Current {
		mark = "*"
	}
	return []string{mark, r.Name, r.Addr, r.CAFile, r.CertFile, r.KeyFile}
}

// profilesDir is the config directory c's command keeps profiles in ("" when
// there is none).
func profilesDir(c *cli.Context) string {
	dir, err := configDir(c)
	if err != nil {
		return ""
	}
	return dir
}
