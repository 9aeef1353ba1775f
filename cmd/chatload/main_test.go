package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine (a client's, a pool
// connection's, the test server's) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
