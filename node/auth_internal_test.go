package node

import (
	"testing"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// TestEveryMethodHasARule: a log.v1 RPC added without a rule would be refused
// to everyone (deny by default); log.proto and doc.go list what each needs.
func TestEveryMethodHasARule(t *testing.T) {
	sd := logv1.Log_ServiceDesc
	var methods []string
	for _, m := range sd.Methods {
		methods = append(methods, m.MethodName)
	}
	for _, s := range sd.Streams {
		methods = append(methods, s.StreamName)
	}
	for _, m := range methods {
		if _, ok := rules["/"+sd.ServiceName+"/"+m]; !ok {
			t.Errorf("log.v1 method %s has no rule in node/auth.go", m)
		}
	}
	if len(rules) != len(methods) {
		t.Errorf("%d rules for %d methods", len(rules), len(methods))
	}
}
