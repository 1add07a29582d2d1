package nodetest

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// update is the -update flag of every test binary that imports nodetest.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the outputs got")

// Golden compares got with testdata/name.golden in the test's package
// directory, or rewrites the file with got when the test runs with -update.
func Golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// Voters counts the voters among servers, as GetServers reports them.
func Voters(servers []*logv1.Server) int {
	n := 0
	for _, s := range servers {
		if s.IsVoter {
			n++
		}
	}
	return n
}
