package commands

import (
	"path/filepath"
	"testing"
)

func TestConfigDir(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	tests := []struct {
		name string
		xdg  string
		want string
	}{
		{name: "XDG_CONFIG_HOME set", xdg: xdg, want: filepath.Join(xdg, "proglog")},
		{name: "XDG_CONFIG_HOME unset", xdg: "", want: filepath.Join(home, ".config", "proglog")},
		{name: "XDG_CONFIG_HOME relative", xdg: "relative/dir", want: filepath.Join(home, ".config", "proglog")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			t.Setenv("XDG_CONFIG_HOME", tt.xdg)
			got, err := ConfigDir()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ConfigDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigDir_noHome(t *testing.T) {
	t.Setenv("HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	if dir, err := ConfigDir(); err == nil {
		t.Fatalf("ConfigDir() = %q, want an error without HOME or XDG_CONFIG_HOME", dir)
	}
	_, _, err := run(t, "gencert")
	if ExitCode(err) != ExitUsage {
		t.Fatalf("gencert without a directory: %v (exit %d), want a usage error", err, ExitCode(err))
	}
}
