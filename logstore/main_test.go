package logstore

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		// The crash child is killed, never returns: nothing to check for leaks.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// seedEnv names the environment variable that fixes the seed of the randomized
// tests, to replay a failure: LOGSTORE_TEST_SEED=1234 go test -run TestX ./logstore/
const seedEnv = "LOGSTORE_TEST_SEED"

// testSeed returns the seed of a randomized test, from seedEnv or the clock,
// and logs it.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d)", seed, seedEnv, seed)
	return seed
}

// newRand returns a source seeded by testSeed.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	return seededRand(testSeed(t))
}

func seededRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// quietConfig is testConfig logging only warnings and errors, for tests that
// open, roll and drop segments by the thousand.
func quietConfig(t testing.TB) Config {
	t.Helper()
	c := testConfig(t)
	c.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return c
}

// isCorruptIn reports whether err is ErrCorrupt and names one of the files.
func isCorruptIn(err error, files ...string) bool {
	if !errors.Is(err, ErrCorrupt) {
		return false
	}
	for _, f := range files {
		if strings.Contains(err.Error(), filepath.Base(f)) {
			return true
		}
	}
	return false
}

// dirFiles is a copy of the files of a log directory, to lay down fresh copies.
type dirFiles map[string][]byte

// readDirFiles reads every regular file of dir.
func readDirFiles(t testing.TB, dir string) dirFiles {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := dirFiles{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// writeFile writes a file of dir.
func writeFile(t testing.TB, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// restore makes dir hold exactly the files (but a LOCK file), rewriting only
// those that differ: as good as a fresh copy, and much cheaper where creating
// files is slow.
func (files dirFiles) restore(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok && e.Name() != "LOCK" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range files {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			writeFile(t, dir, name, want)
		}
	}
}

// fileSize returns the size of the file at path.
func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
