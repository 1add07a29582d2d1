package commands

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proglogctl/proglogctl/authz"
)

func TestGenacl(t *testing.T) {
	type check struct {
		subject, action string
		allow           bool
	}
	tests := []struct {
		name   string
		args   []string
		env    string // PROGLOG_ACL_GRANTS
		checks []check
	}{
		{name: "default", checks: []check{
			{"root", "produce", true}, {"root", "consume", true},
			{"nobody", "produce", false}, {"nobody", "consume", false}, {"alice", "produce", false},
		}},
		{name: "grants", args: []string{"--grant", "alice=produce", "--grant", "bob=consume,produce"}, checks: []check{
			{"root", "produce", true}, {"alice", "produce", true}, {"alice", "consume", false},
			{"bob", "consume", true}, {"bob", "produce", true}, {"nobody", "consume", false},
		}},
		{name: "two grants in one flag", args: []string{"--grant", "alice=consume,bob=produce"}, checks: []check{
			{"alice", "consume", true}, {"alice", "produce", false}, {"bob", "produce", true}, {"bob", "consume", false},
		}},
		{name: "grants from the environment", env: "alice=produce,bob=consume,produce", checks: []check{
			{"alice", "produce", true}, {"alice", "consume", false}, {"bob", "consume", true}, {"bob", "produce", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PROGLOG_ACL_GRANTS", tt.env)
			dir := t.TempDir()
			out, _, err := run(t, append([]string{"genacl", "--dir", dir}, tt.args...)...)
			if err != nil {
				t.Fatalf("genacl: %v", err)
			}
			want := []string{filepath.Join(dir, "model.conf"), filepath.Join(dir, "policy.csv")}
			if got := lines(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("stdout lines %q, want %q", got, want)
			}
			a, err := authz.New(want[0], want[1])
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.checks {
				err := a.Authorize(c.subject, "*", c.action)
				if c.allow && err != nil {
					t.Errorf("%s %s: %v, want allowed", c.subject, c.action, err)
				}
				if !c.allow && !errors.Is(err, authz.ErrPermissionDenied) {
					t.Errorf("%s %s: %v, want denied", c.subject, c.action, err)
				}
			}
		})
	}
}

func TestGenacl_badGrants(t *testing.T) {
	tests := []struct {
		name    string
		grant   string
		wantErr string
	}{
		{"unknown action", "alice=delete", `"delete"`},
		{"no subject", "=produce", "no subject"},
		{"no actions", "alice=", "empty action"},
		{"no equals sign", "produce", "SUBJECT=ACTION"},
		{"subject with space", "al ice=produce", "al ice"},
		{"subject with slash", "a/b=consume", "a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out, _, err := run(t, "genacl", "--dir", dir, "--grant", tt.grant)
			if got := ExitCode(err); got != ExitUsage {
				t.Fatalf("exit code %d (err %v), want %d", got, err, ExitUsage)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if out != "" {
				t.Fatalf("stdout %q, want nothing", out)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("%d files written despite the bad grant", len(entries))
			}
		})
	}
}

func TestGenacl_overwrite(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := run(t, "genacl", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "genacl", "--dir", dir, "--grant", "alice=produce")
	if ExitCode(err) != ExitError || !strings.Contains(err.Error(), filepath.Join(dir, "model.conf")) ||
		!strings.Contains(err.Error(), "--force") {
		t.Fatalf("second genacl: %v, want an error naming model.conf and suggesting --force", err)
	}
	if _, _, err := run(t, "genacl", "--dir", dir, "--grant", "alice=produce", "--force"); err != nil {
		t.Fatalf("with --force: %v", err)
	}
	policy, err := os.ReadFile(filepath.Join(dir, "policy.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(policy), "p, alice, *, produce") {
		t.Fatalf("policy after --force:\n%s", policy)
	}
}
