//go:build race

package browsertest

// raceEnabled: the tests run with -race, so chatd is built with it too,
// which reuses the packages `go test -race ./...` has just compiled.
const raceEnabled = true
