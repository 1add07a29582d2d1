package discovery

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind, Serf's
// and memberlist's included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
