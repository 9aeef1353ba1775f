//go:build !unix

package main

// fileLimit is unknown here: the node-wide connection cap is off unless
// --max-conns sets it.
func fileLimit() uint64 { return 0 }
