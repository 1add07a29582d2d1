package raftfsm

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func TestConfigValidate(t *testing.T) {
	_, tr := raft.NewInmemTransport("")
	defer tr.Close()
	valid := DefaultConfig()
	valid.Dir, valid.NodeID, valid.Transport = t.TempDir(), "n1", tr
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "no dir", change: func(c *Config) { c.Dir = "" }, wantErr: "Dir"},
		{name: "no node id", change: func(c *Config) { c.NodeID = "" }, wantErr: "NodeID"},
		{name: "no transport", change: func(c *Config) { c.Transport = nil }, wantErr: "Transport"},
		{name: "entry smaller than a record", change: func(c *Config) { c.MaxEntryBytes = c.Store.MaxRecordBytes }, wantErr: "MaxEntryBytes"},
		{name: "entry larger than half a segment", change: func(c *Config) { c.MaxEntryBytes = int(c.Store.MaxStoreBytes) }, wantErr: "MaxEntryBytes"},
		{name: "bad raft timing", change: func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, wantErr: "LeaderLeaseTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.change(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}
