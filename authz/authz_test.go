package authz_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/proglogctl/proglogctl/authz"
)

// newAuthorizer writes grants with WriteFiles and loads them back.
func newAuthorizer(t testing.TB, g authz.Grants) *authz.Authorizer {
	t.Helper()
	dir := t.TempDir()
	if _, err := authz.WriteFiles(dir, g, false); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	a, err := authz.New(filepath.Join(dir, authz.ModelFileName), filepath.Join(dir, authz.PolicyFileName))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func TestAuthorize(t *testing.T) {
	grants := authz.DefaultGrants()
	grants["alice"] = []string{authz.ActionProduce}
	grants["bob"] = []string{authz.ActionConsume, authz.ActionProduce}
	grants["carol"] = nil
	defaults := newAuthorizer(t, authz.DefaultGrants())
	granted := newAuthorizer(t, grants)

	tests := []struct {
		name    string
		a       *authz.Authorizer
		subject string
		object  string
		action  string
		allow   bool
	}{
		{"default: root produces", defaults, "root", "*", "produce", true},
		{"default: root consumes", defaults, "root", "*", "consume", true},
		{"default: root on a named log", defaults, "root", "orders", "produce", true},
		{"default: nobody produces", defaults, "nobody", "*", "produce", false},
		{"default: nobody consumes", defaults, "nobody", "*", "consume", false},
		{"default: alice is unknown", defaults, "alice", "*", "produce", false},
		{"default: root other action", defaults, "root", "*", "delete", false},
		{"default: empty subject", defaults, "", "*", "produce", false},
		{"default: case matters", defaults, "Root", "*", "produce", false},
		{"grants: root still produces", granted, "root", "*", "produce", true},
		{"grants: alice produces", granted, "alice", "*", "produce", true},
		{"grants: alice may not consume", granted, "alice", "*", "consume", false},
		{"grants: bob consumes", granted, "bob", "*", "consume", true},
		{"grants: bob produces", granted, "bob", "*", "produce", true},
		{"grants: carol has nothing", granted, "carol", "*", "consume", false},
		{"grants: nobody still nothing", granted, "nobody", "*", "produce", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.a.Authorize(tt.subject, tt.object, tt.action)
			if tt.allow {
				if err != nil {
					t.Fatalf("Authorize: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, authz.ErrPermissionDenied) {
				t.Fatalf("Authorize: %v, want ErrPermissionDenied", err)
			}
			var de *authz.DeniedError
			if !errors.As(err, &de) || de.Subject != tt.subject || de.Action != tt.action || de.Object != tt.object {
				t.Fatalf("Authorize: %#v, want a *DeniedError carrying the request", err)
			}
		})
	}
}

func TestAuthorize_message(t *testing.T) {
	a := newAuthorizer(t, authz.DefaultGrants())
	err := a.Authorize("nobody", "*", "produce")
	if want := `authz: client "nobody" may not produce`; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestAuthorize_concurrent(t *testing.T) {
	a := newAuthorizer(t, authz.DefaultGrants())
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if err := a.Authorize("root", "*", "consume"); err != nil {
					t.Error(err)
					return
				}
				if err := a.Authorize("nobody", "*", "consume"); err == nil {
					t.Error("nobody was allowed")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestNew_badFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := authz.WriteFiles(dir, authz.DefaultGrants(), false); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, authz.ModelFileName)
	policy := filepath.Join(dir, authz.PolicyFileName)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name          string
		model, policy string
		want          string // the error must contain it
		is            error
	}{
		{"missing model", missing, policy, "authz: read model file " + missing + ": ", fs.ErrNotExist},
		{"missing policy", model, missing, "authz: read policy file " + missing + ": ", fs.ErrNotExist},
		{"model is a directory", dir, policy, "authz: read model file " + dir, nil},
		{"no model given", "", policy, "authz: no model file", nil},
		{"no policy given", model, "", "authz: no policy file", nil},
		{"garbage model", write("garbage.conf", "this is not a model\n"), policy, "garbage.conf", nil},
		{"model without matchers", write("nomatch.conf", "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n"), policy, "nomatch.conf", nil},
		{"model of other requests", write("two.conf", "[request_definition]\nr = sub, act\n[policy_definition]\np = sub, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub && r.act == p.act\n"), write("two.csv", "p, root, produce\n"), "two.conf", nil},
		{"policy rule too short", model, write("short.csv", "# comment\np, root, produce\n"), "short.csv line 2", authz.ErrInvalidPolicy},
		{"policy rule unknown type", model, write("type.csv", "x, root, *, produce\n"), "type.csv line 1", authz.ErrInvalidPolicy},
		{"policy role rule without roles", model, write("role.csv", "g, alice, root\n"), "role.csv line 1", authz.ErrInvalidPolicy},
		{"policy bad quoting", model, write("quote.csv", "p, \"root, *, produce\n"), "quote.csv line 1", authz.ErrInvalidPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := authz.New(tt.model, tt.policy)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want an error containing %q", a, err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want it to wrap %v", err, tt.is)
			}
		})
	}
}

func TestNew_emptyPolicyDeniesAll(t *testing.T) {
	dir := t.TempDir()
	if _, err := authz.WriteFiles(dir, authz.Grants{}, false); err != nil {
		t.Fatal(err)
	}
	a, err := authz.New(filepath.Join(dir, authz.ModelFileName), filepath.Join(dir, authz.PolicyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authorize("root", "*", "produce"); !errors.Is(err, authz.ErrPermissionDenied) {
		t.Fatalf("err = %v, want ErrPermissionDenied", err)
	}
}

func TestGrants_policy(t *testing.T) {
	tests := []struct {
		name    string
		grants  authz.Grants
		want    []string // the policy lines, comments left out
		wantErr bool
	}{
		{name: "default", grants: authz.DefaultGrants(), want: []string{"p, root, *, produce", "p, root, *, consume"}},
		{name: "sorted and deduplicated", grants: authz.Grants{
			"zed":   {"consume", "produce", "consume"},
			"alice": {"produce"},
		}, want: []string{"p, alice, *, produce", "p, zed, *, produce", "p, zed, *, consume"}},
		{name: "empty", grants: authz.Grants{}, want: nil},
		{name: "unknown action", grants: authz.Grants{"alice": {"delete"}}, wantErr: true},
		{name: "subject with comma", grants: authz.Grants{"a,b": {"produce"}}, wantErr: true},
		{name: "subject with space", grants: authz.Grants{"a b": {"produce"}}, wantErr: true},
		{name: "empty subject", grants: authz.Grants{"": {"produce"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := tt.grants.Policy()
			if tt.wantErr {
				if !errors.Is(err, authz.ErrInvalidGrant) {
					t.Fatalf("err = %v, want ErrInvalidGrant", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(string(text), "\n") {
				if l != "" && !strings.HasPrefix(l, "#") {
					got = append(got, l)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("policy lines %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteFiles_refusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	written, err := authz.WriteFiles(dir, authz.DefaultGrants(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "model.conf"), filepath.Join(dir, "policy.csv")}
	if strings.Join(written, " ") != strings.Join(want, " ") {
		t.Fatalf("wrote %v, want %v", written, want)
	}
	_, err = authz.WriteFiles(dir, authz.Grants{"alice": {"produce"}}, false)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), want[0]) {
		t.Fatalf("err = %v, want fs.ErrExist naming %s", err, want[0])
	}
	if _, err := authz.WriteFiles(dir, authz.Grants{"alice": {"produce"}}, true); err != nil {
		t.Fatalf("with force: %v", err)
	}
	a, err := authz.New(want[0], want[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authorize("root", "*", "produce"); err == nil {
		t.Fatal("root still allowed after the policy was replaced")
	}
	if err := a.Authorize("alice", "*", "produce"); err != nil {
		t.Fatal(err)
	}
}

// TestReload changes the policy under an Authorizer: a new grant and a
// revoked one take effect and are reported; files that do not load are
// refused with the policy before in force.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	write := func(g authz.Grants) {
		t.Helper()
		if _, err := authz.WriteFiles(dir, g, true); err != nil {
			t.Fatal(err)
		}
	}
	write(authz.Grants{"root": {authz.ActionProduce, authz.ActionConsume}, "bob": {authz.ActionConsume}})
	model, policy := filepath.Join(dir, authz.ModelFileName), filepath.Join(dir, authz.PolicyFileName)
	a, err := authz.New(model, policy)
	if err != nil {
		t.Fatal(err)
	}
	if changes, err := a.Reload(); err != nil || len(changes) != 0 {
		t.Fatalf("Reload of the same files: %q, %v; want no changes", changes, err)
	}

	write(authz.Grants{"root": {authz.ActionProduce, authz.ActionConsume}, "alice": {authz.ActionProduce}})
	changes, err := a.Reload()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"policy " + policy + ": - p, bob, *, consume", "policy " + policy + ": + p, alice, *, produce"}
	if strings.Join(changes, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Reload reports\n%s\nwant\n%s", strings.Join(changes, "\n"), strings.Join(want, "\n"))
	}
	if err := a.Authorize("alice", authz.ObjectAny, authz.ActionProduce); err != nil {
		t.Fatalf("alice after the grant: %v", err)
	}
	if err := a.Authorize("bob", authz.ObjectAny, authz.ActionConsume); !errors.Is(err, authz.ErrPermissionDenied) {
		t.Fatalf("bob after the revocation: %v", err)
	}

	for _, tt := range []struct {
		name, file, text, want string
	}{
		{"malformed policy line", policy, "p, carol\n", "line 1"},
		{"missing policy", policy, "", "no such file"},
		{"model that does not parse", model, "[matchers]\nm = (\n", model},
	} {
		t.Run(tt.name, func(t *testing.T) {
			write(authz.Grants{"root": {authz.ActionProduce, authz.ActionConsume}, "alice": {authz.ActionProduce}})
			if tt.text == "" {
				os.Remove(tt.file)
			} else if err := os.WriteFile(tt.file, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := a.Reload()
			if !errors.Is(err, authz.ErrRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Reload: %v, want ErrRefused naming %q", err, tt.want)
			}
			if err := a.Authorize("alice", authz.ObjectAny, authz.ActionProduce); err != nil {
				t.Fatalf("alice after a refused reload: %v", err)
			}
		})
	}
}
