package raftfsm

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

func TestIdentityValidate(t *testing.T) {
	_, tr := raft.NewInmemTransport("")
	defer tr.Close()
	valid := replica.Identity{Dir: t.TempDir(), NodeID: "n1", Transport: tr, Logger: slog.Default()}
	tests := []struct {
		name    string
		change  func(id *replica.Identity)
		wantErr string
	}{
		{name: "complete", change: func(*replica.Identity) {}},
		{name: "no dir", change: func(id *replica.Identity) { id.Dir = "" }, wantErr: "Dir"},
		{name: "no node id", change: func(id *replica.Identity) { id.NodeID = "" }, wantErr: "NodeID"},
		{name: "no transport", change: func(id *replica.Identity) { id.Transport = nil }, wantErr: "Transport"},
		{name: "no logger", change: func(id *replica.Identity) { id.Logger = nil }, wantErr: "Logger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := valid
			tt.change(&id)
			checkValidateErr(t, validateIdentity(id), tt.wantErr)
		})
	}
}

// checkValidateErr fails t unless err is nil when wantErr is empty, or names
// wantErr otherwise.
func checkValidateErr(t testing.TB, err error, wantErr string) {
	t.Helper()
	if wantErr == "" && err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	if wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
		t.Fatalf("Validate() = %v, want an error naming %s", err, wantErr)
	}
}

// TestConfigValidate: Config is tuning only, so the defaults validate with
// no identity at all.
func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "entry smaller than a record", change: func(c *Config) { c.MaxEntryBytes = c.Store.MaxRecordBytes }, wantErr: "MaxEntryBytes"},
		{name: "entry larger than half a segment", change: func(c *Config) { c.MaxEntryBytes = int(c.Store.MaxStoreBytes) }, wantErr: "MaxEntryBytes"},
		{name: "bad raft timing", change: func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, wantErr: "LeaderLeaseTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.change(&c)
			checkValidateErr(t, c.Validate(), tt.wantErr)
		})
	}
}
