package node_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNodeDependsOnNoStorage: node sees its replica through raftfsm/replica
// alone; neither raftfsm nor the storage below it may become a dependency.
func TestNodeDependsOnNoStorage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sawReplica := false
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "github.com/proglogctl/proglogctl/raftfsm/replica":
			sawReplica = true
		case "github.com/proglogctl/proglogctl/raftfsm", "github.com/proglogctl/proglogctl/logstore",
			"github.com/proglogctl/proglogctl/raftfsm/raftlog":
			t.Errorf("node depends on %s", pkg)
		}
	}
	if !sawReplica {
		t.Errorf("go list -deps does not name raftfsm/replica, which node imports:\n%s", out)
	}
}
