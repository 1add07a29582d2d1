package node

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// disk counts what a data directory takes once per file, however many
// links it has (a snapshot hard-links the log's segments), and rss is
// this process's.
func TestResources(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "log", "seg")
	if err := os.WriteFile(seg, bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(seg, filepath.Join(dir, "snap")); err != nil {
		t.Fatal(err)
	}
	r := &resources{dir: dir}
	if got := r.disk(); got < 1<<20 || got >= 2<<20 {
		t.Fatalf("disk() = %d bytes for one 1 MiB file linked twice, want about 1 MiB", got)
	}
	if got := r.rss(); got < 1<<20 {
		t.Fatalf("rss() = %d bytes, want this test process's RSS", got)
	}
}
