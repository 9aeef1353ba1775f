package deploy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests (promtool
// runs through os/exec, which starts goroutines of its own).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
