package client

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine, the client's or the test
// server's, outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
