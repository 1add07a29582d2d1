package commands

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proglogctl/proglogctl/certs"
)

// lines splits command output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// inDir prefixes every name with dir.
func inDir(dir string, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, filepath.Join(dir, n))
	}
	return out
}

func TestGencert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proglog")
	all := inDir(dir, "ca.pem", "ca-key.pem", "server.pem", "server-key.pem",
		"root.pem", "root-key.pem", "nobody.pem", "nobody-key.pem")
	caBefore := ""

	tests := []struct {
		name     string
		args     []string
		wantOut  []string
		wantCode int
		wantErr  string // in the error message
	}{
		{name: "first run", args: []string{"--hosts", "node1.example.com,10.1.2.3"}, wantOut: all},
		{name: "again without --force", wantCode: ExitError, wantErr: filepath.Join(dir, "server.pem") + ": file already exists (use --force"},
		{name: "add a client", args: []string{"--client", "carol"}, wantOut: inDir(dir, "carol.pem", "carol-key.pem")},
		{name: "add it again", args: []string{"--client", "carol"}, wantCode: ExitError, wantErr: filepath.Join(dir, "carol.pem")},
		{name: "add two clients", args: []string{"--client", "dave", "--client", "erin"}, wantOut: inDir(dir, "dave.pem", "dave-key.pem", "erin.pem", "erin-key.pem")},
		{name: "bad client name", args: []string{"--client", "../evil"}, wantCode: ExitUsage, wantErr: "../evil"},
		{name: "reserved client name", args: []string{"--client", "server"}, wantCode: ExitUsage, wantErr: "reserved"},
		{name: "bad validity", args: []string{"--validity", "0s", "--client", "frank"}, wantCode: ExitUsage},
		{name: "stray argument", args: []string{"carol"}, wantCode: ExitUsage},
		{name: "force", args: []string{"--force"}, wantOut: inDir(dir, "server.pem", "server-key.pem",
			"root.pem", "root-key.pem", "nobody.pem", "nobody-key.pem")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, append([]string{"gencert", "--dir", dir}, tt.args...)...)
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code %d (err %v), want %d", got, err, tt.wantCode)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if got := lines(out); strings.Join(got, "\n") != strings.Join(tt.wantOut, "\n") {
				t.Fatalf("stdout lines %q, want %q", got, tt.wantOut)
			}
			ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if caBefore == "" {
				caBefore = string(ca)
			} else if string(ca) != caBefore {
				t.Fatal("the CA changed; it must be reused")
			}
		})
	}

	// The files make a working mTLS setup, and the extra hosts were applied.
	if _, err := certs.ServerTLSConfig(certs.TLSFiles{
		CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"),
		CAFile: filepath.Join(dir, "ca.pem"),
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca-key.pem", "server-key.pem", "carol-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

func TestGencert_environment(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	t.Setenv("PROGLOG_CERT_CLIENTS", "alice,bob")
	t.Setenv("PROGLOG_CERT_HOSTS", "node7")
	out, stderr, err := run(t, "gencert")
	if err != nil {
		t.Fatalf("gencert: %v (stderr %q)", err, stderr)
	}
	want := filepath.Join(xdg, "proglog")
	got := lines(out)
	if len(got) != 12 || filepath.Dir(got[0]) != want {
		t.Fatalf("stdout %q, want 12 files in %s", got, want)
	}
	for _, f := range []string{"alice.pem", "bob-key.pem"} {
		if _, err := os.Stat(filepath.Join(want, f)); err != nil {
			t.Error(err)
		}
	}

	other := t.TempDir()
	t.Setenv("PROGLOG_CONFIG_DIR", other)
	t.Setenv("PROGLOG_CERT_CLIENTS", "")
	out, _, err = run(t, "gencert")
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(out); len(got) != 8 || filepath.Dir(got[0]) != other {
		t.Fatalf("stdout %q, want 8 files in %s", got, other)
	}
}

func TestGencert_reportsReusedCA(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := run(t, "gencert", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := run(t, "gencert", "--dir", dir, "--client", "zoe")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, filepath.Join(dir, "ca.pem")) {
		t.Fatalf("stderr %q, want a note about the reused CA", stderr)
	}
	// Nothing but the new pair was written: no stray temporary files either.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 10 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want 10 files", names)
	}
	if _, err := os.Stat(filepath.Join(dir, "zoe-key.pem")); errors.Is(err, fs.ErrNotExist) {
		t.Fatal("zoe-key.pem missing")
	}
}
