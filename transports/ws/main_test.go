package ws_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine, the server's or a test
// client's, outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
