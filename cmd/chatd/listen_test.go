//go:build unix

package main

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// TestListenNoKeepAlive: a connection the node accepts has no TCP
// keep-alive probes (Go's listener would turn them on), and one from a
// plain net.Listen does, so the check can tell them apart.
func TestListenNoKeepAlive(t *testing.T) {
	keepAlive := func(ln net.Listener) int {
		t.Helper()
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		rc, err := sc.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var serr error
		if err := rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) }); err != nil {
			t.Fatal(err)
		}
		if serr != nil {
			t.Fatal(serr)
		}
		return v
	}
	ours, err := listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if v := keepAlive(ours); v != 0 {
		t.Errorf("the node's accepted connection has SO_KEEPALIVE %d, want 0", v)
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if v := keepAlive(plain); v == 0 {
		t.Errorf("Go's default listener gave SO_KEEPALIVE 0: the check cannot tell")
	}
}
