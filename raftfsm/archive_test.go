package raftfsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"
)

// archiveTestWriteFiles creates files (name → content) in dir.
func archiveTestWriteFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// archiveTestReadFiles returns the regular files of dir (name → content).
func archiveTestReadFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte, len(des))
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[de.Name()] = b
	}
	return files
}

func archiveTestAssertSameFiles(t testing.TB, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d files, want %d", len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Fatalf("file %q missing", name)
		case !bytes.Equal(g, w):
			t.Fatalf("file %q: got %d bytes, want %d (contents differ)", name, len(g), len(w))
		}
	}
}

// archiveTestAssertUnpacks fails the test unless archive unpacks into
// exactly the files want.
func archiveTestAssertUnpacks(t testing.TB, archive []byte, want map[string][]byte) {
	t.Helper()
	out := t.TempDir()
	if err := readArchive(bytes.NewReader(archive), out); err != nil {
		t.Fatal(err)
	}
	archiveTestAssertSameFiles(t, archiveTestReadFiles(t, out), want)
}

// archiveTestAssertEmpty fails unless dir exists and is empty.
func archiveTestAssertEmpty(t testing.TB, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 0 {
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		t.Fatalf("%s holds %q, want nothing", dir, names)
	}
}

// archiveTestArchive archives files through writeArchive.
func archiveTestArchive(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	dir := t.TempDir()
	archiveTestWriteFiles(t, dir, files)
	var buf bytes.Buffer
	if _, err := writeArchive(&buf, dir); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type archiveTestEntry struct {
	name string
	data []byte
}

// archiveTestForge encodes entries as given, unchecked and in the given order,
// with a correct trailer: an archive that only name checks can reject.
func archiveTestForge(entries ...archiveTestEntry) []byte {
	var b []byte
	b = append(b, archiveMagic...)
	b = binary.BigEndian.AppendUint32(b, archiveVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.name)))
		b = append(b, e.name...)
		b = binary.BigEndian.AppendUint64(b, uint64(len(e.data)))
		b = append(b, e.data...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, archiveCRCTable))
}

// archiveTestReadFails runs readArchive on data into an empty directory and
// checks it fails as malformed input, leaving nothing behind, anywhere.
func archiveTestReadFails(t testing.TB, data []byte) error {
	t.Helper()
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	err := readArchive(bytes.NewReader(data), out)
	if err == nil {
		t.Fatal("readArchive succeeded, want an error")
	}
	if !errors.Is(err, errArchiveCorrupt) {
		t.Fatalf("error %q does not match errArchiveCorrupt", err)
	}
	if !strings.HasPrefix(err.Error(), "raftfsm: snapshot archive: ") {
		t.Fatalf("error %q lacks the package prefix", err)
	}
	archiveTestAssertEmpty(t, out)
	if des, _ := os.ReadDir(parent); len(des) != 1 {
		t.Fatalf("readArchive wrote beside its directory: %v", des)
	}
	return err
}

func TestArchiveRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{"no files", map[string][]byte{}},
		{"one empty file", map[string][]byte{"empty": {}}},
		{"segments", map[string][]byte{
			"00000000000000000000.store": big,
			"00000000000000000000.index": big[:4096],
			"00000000000000041573.store": []byte("active"),
			"00000000000000041573.index": {},
			"meta.json":                  []byte(`{"not":"ours"}`),
			strings.Repeat("n", 255):     []byte("longest name"),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			archiveTestWriteFiles(t, src, tc.files)
			want, err := archiveSize(src)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			n, err := writeArchive(&buf, src)
			if err != nil {
				t.Fatal(err)
			}
			if n != want || int64(buf.Len()) != want {
				t.Fatalf("archiveSize %d, writeArchive reported %d and wrote %d bytes", want, n, buf.Len())
			}
			data := bytes.Clone(buf.Bytes())

			dst := t.TempDir()
			if err := readArchive(iotest.HalfReader(bytes.NewReader(data)), dst); err != nil {
				t.Fatal(err)
			}
			archiveTestAssertSameFiles(t, archiveTestReadFiles(t, dst), tc.files)

			// Canonical: archiving the unpacked files gives the same bytes.
			buf.Reset()
			if _, err := writeArchive(&buf, dst); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), data) {
				t.Fatal("re-archiving the unpacked files gave different bytes")
			}
		})
	}
}

func TestReadArchiveTruncated(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	data := archiveTestArchive(t, map[string][]byte{"a": []byte("hello"), "b": {}, "c": []byte("xyz")})
	for cut := range len(data) {
		err := archiveTestReadFails(t, data[:cut])
		if !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut at %d of %d: error %q does not say truncated", cut, len(data), err)
		}
	}
}

func TestReadArchiveBitFlips(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// Layout: header 0..11 | "a": len 12..13, name 14, size 15..22, data 23..27 |
	// "b": len 28..29, name 30, size 31..38 | trailer 39..42.
	data := archiveTestArchive(t, map[string][]byte{"a": []byte("hello"), "b": {}})
	if len(data) != 43 {
		t.Fatalf("archive is %d bytes, the offsets below assume 43", len(data))
	}
	tests := []struct {
		name string
		pos  int
		bit  uint
		want string // in the error
	}{
		{"magic", 0, 0, "bad magic"},
		{"version", 7, 1, "unsupported version"},
		{"count up", 11, 2, "file 2"},
		{"count down", 11, 1, "crc mismatch"},
		{"name length", 13, 0, "name"},
		{"name byte", 14, 0, "crc mismatch"},
		{"name made unsorted", 30, 1, "not after"},
		{"size", 22, 0, "file 1"},
		{"size huge", 15, 7, "out of range"},
		{"data", 25, 3, "crc mismatch"},
		{"trailer", 42, 5, "crc mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(data)
			bad[tc.pos] ^= 1 << tc.bit
			err := archiveTestReadFails(t, bad)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	t.Run("every bit", func(t *testing.T) {
		for pos := range data {
			for bit := range uint(8) {
				bad := bytes.Clone(data)
				bad[pos] ^= 1 << bit
				archiveTestReadFails(t, bad)
			}
		}
	})
}

func TestReadArchiveRejectsNames(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	x := []byte("x")
	tests := []struct {
		name    string
		entries []archiveTestEntry
		want    string
	}{
		{"parent traversal", []archiveTestEntry{{"../x", x}}, "path separator"},
		{"nested", []archiveTestEntry{{"a/b", x}}, "path separator"},
		{"absolute", []archiveTestEntry{{"/etc/x", x}}, "path separator"},
		{"backslash", []archiveTestEntry{{`..\x`, x}}, "path separator"},
		{"empty", []archiveTestEntry{{"", x}}, "name length 0"},
		{"dot", []archiveTestEntry{{".", x}}, "not a file name"},
		{"dot dot", []archiveTestEntry{{"..", x}}, "not a file name"},
		{"NUL", []archiveTestEntry{{"a\x00b", x}}, "NUL"},
		{"too long", []archiveTestEntry{{strings.Repeat("n", 256), x}}, "name length 256"},
		{"duplicate", []archiveTestEntry{{"a", x}, {"a", x}}, "duplicate"},
		{"unsorted", []archiveTestEntry{{"b", x}, {"a", x}}, "not after"},
		{"bad after good", []archiveTestEntry{{"a", x}, {"b/../../c", x}}, "path separator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := archiveTestReadFails(t, archiveTestForge(tc.entries...))
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestReadArchiveBounds(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	header := func(count uint32) []byte {
		b := append([]byte(archiveMagic), 0, 0, 0, 1)
		return binary.BigEndian.AppendUint32(b, count)
	}
	entry := func(name string, size uint64) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
		b = append(b, name...)
		return binary.BigEndian.AppendUint64(b, size)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"too many files", header(archiveMaxFiles + 1), "file count"},
		{"max uint32 files", header(math.MaxUint32), "file count"},
		{"size beyond int64", append(header(1), entry("a", math.MaxInt64+1)...), "out of range"},
		// A huge declared size with little data is streamed, then found short.
		{"size far beyond data", append(append(header(1), entry("a", 1<<62)...), "abc"...), "truncated"},
		{"trailing byte", append(archiveTestForge(archiveTestEntry{"a", []byte("x")}), 0), "after the trailer"},
		{"empty stream", nil, "truncated in header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := archiveTestReadFails(t, tc.data)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestReadArchiveReaderError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	data := archiveTestArchive(t, map[string][]byte{"a": []byte("hello"), "b": bytes.Repeat([]byte("b"), 1000)})
	errBoom := errors.New("boom")
	for _, cut := range []int{0, 20, 100, len(data) - 4, len(data)} {
		out := t.TempDir()
		err := readArchive(io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(errBoom)), out)
		if !errors.Is(err, errBoom) {
			t.Fatalf("cut %d: error %v, want it to wrap %v", cut, err, errBoom)
		}
		if !strings.HasPrefix(err.Error(), "raftfsm: snapshot archive: ") {
			t.Fatalf("error %q lacks the package prefix", err)
		}
		archiveTestAssertEmpty(t, out)
	}
}

func TestReadArchiveTargetDir(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	data := archiveTestArchive(t, map[string][]byte{"a": []byte("hello")})
	t.Run("not empty", func(t *testing.T) {
		dir := t.TempDir()
		archiveTestWriteFiles(t, dir, map[string][]byte{"old": []byte("keep me")})
		if err := readArchive(bytes.NewReader(data), dir); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("error %v, want one saying the directory is not empty", err)
		}
		archiveTestAssertSameFiles(t, archiveTestReadFiles(t, dir), map[string][]byte{"old": []byte("keep me")})
	})
	t.Run("missing", func(t *testing.T) {
		if err := readArchive(bytes.NewReader(data), filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("readArchive into a missing directory succeeded")
		}
	})
}

func TestWriteArchiveRejectsNonRegular(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name string
		make func(t *testing.T, dir string)
	}{
		{"directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink", func(t *testing.T, dir string) {
			if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			archiveTestWriteFiles(t, dir, map[string][]byte{"a": []byte("x")})
			tc.make(t, dir)
			if _, err := archiveSize(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("archiveSize: error %v, want not a regular file", err)
			}
			var buf bytes.Buffer
			if _, err := writeArchive(&buf, dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("writeArchive: error %v, want not a regular file", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("writeArchive wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

func TestWriteArchiveWriterError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	archiveTestWriteFiles(t, dir, map[string][]byte{"a": bytes.Repeat([]byte("a"), 200<<10)})
	errBoom := errors.New("boom")
	_, err := writeArchive(&archiveTestFailingWriter{after: 100 << 10, err: errBoom}, dir)
	if !errors.Is(err, errBoom) {
		t.Fatalf("error %v, want it to wrap %v", err, errBoom)
	}
}

// archiveTestFailingWriter accepts after bytes, then fails with err.
type archiveTestFailingWriter struct {
	after int
	err   error
}

func (f *archiveTestFailingWriter) Write(p []byte) (int, error) {
	if len(p) > f.after {
		n := f.after
		f.after = 0
		return n, f.err
	}
	f.after -= len(p)
	return len(p), nil
}

// FuzzReadArchive feeds arbitrary bytes to readArchive: it must never panic,
// never create anything outside its directory, leave the directory empty when
// it fails, and accept only canonical archives (re-archiving the files gives
// the input back).
func FuzzReadArchive(f *testing.F) {
	f.Add(archiveTestArchive(f, map[string][]byte{}))
	f.Add(archiveTestArchive(f, map[string][]byte{"a": []byte("hello"), "b": {}}))
	f.Add(archiveTestForge(archiveTestEntry{"../x", []byte("x")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		err := readArchive(bytes.NewReader(data), out)
		if des, _ := os.ReadDir(parent); len(des) != 1 || des[0].Name() != "out" {
			t.Fatalf("readArchive wrote beside its directory: %v", des)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "raftfsm: snapshot archive: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			archiveTestAssertEmpty(t, out)
			return
		}
		var buf bytes.Buffer
		if _, err := writeArchive(&buf, out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("accepted a non-canonical archive: %d bytes in, %d bytes re-archived", len(data), buf.Len())
		}
	})
}
