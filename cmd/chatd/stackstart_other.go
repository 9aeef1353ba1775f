//go:build !unix

package main

// ensureStackStart does nothing here: chatd runs with the runtime's
// default starting stacks unless GODEBUG sets adaptivestackstart.
func ensureStackStart() {}
