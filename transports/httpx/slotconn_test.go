package httpx

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
)

// countedSlot counts how a slot was given back.
type countedSlot struct{ released, blocked atomic.Int32 }

func (s *countedSlot) Release() { s.released.Add(1) }
func (s *countedSlot) Blocked() { s.blocked.Add(1) }

func (s *countedSlot) total() int32 { return s.released.Load() + s.blocked.Load() }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TryWrite writes what the socket takes at once and says when that is
// not all: to a peer that does not read, it ends with ErrWouldWait and
// the part written, without waiting. Through the listener's own wrapper
// it reaches the socket too; through a wrapper it does not know, it
// writes nothing.
func TestTryWrite(t *testing.T) {
	client, server := tcpPair(t)
	var over net.Conn = &limitedConn{Conn: server}
	p := make([]byte, 64<<10)
	total := 0
	for range 1 << 12 { // at most 256 MiB: loopback buffers are a few MiB
		n, err := TryWrite(over, p)
		total += n
		if errors.Is(err, ErrWouldWait) {
			if n == len(p) {
				t.Fatalf("ErrWouldWait with all %d bytes written", n)
			}
			break
		}
		if err != nil || n != len(p) {
			t.Fatalf("TryWrite: %d, %v", n, err)
		}
	}
	if n, err := TryWrite(over, p); n != 0 || !errors.Is(err, ErrWouldWait) {
		t.Fatalf("to a full socket: %d, %v; want 0 and ErrWouldWait", n, err)
	}
	got, err := io.ReadFull(client, make([]byte, total))
	if err != nil || got != total {
		t.Fatalf("read back %d of %d: %v", got, total, err)
	}
	if n, err := TryWrite(struct{ net.Conn }{server}, p[:1]); n != 0 || !errors.Is(err, ErrWouldWait) {
		t.Fatalf("through an unknown wrapper: %d, %v; want 0 and ErrWouldWait", n, err)
	}
}

// A SlotConn keeps its writer's slot through writes the socket takes, and
// Drop gives it back; a write the socket cannot take gives it back as
// blocked, once, before it waits, and the rest of it still arrives; on a
// connection it cannot try, Hold gives the slot back at once.
func TestSlotConn(t *testing.T) {
	client, server := tcpPair(t)
	c := NewSlotConn(server)
	slot := &countedSlot{}

	c.Hold(slot)
	if _, err := c.Write([]byte("small")); err != nil {
		t.Fatal(err)
	}
	if n := slot.total(); n != 0 {
		t.Fatalf("a write the socket took gave the slot back (%d)", n)
	}
	c.Drop()
	if slot.released.Load() != 1 || slot.blocked.Load() != 0 {
		t.Fatalf("after Drop: released %d, blocked %d; want 1 and 0", slot.released.Load(), slot.blocked.Load())
	}
	if _, err := io.ReadFull(client, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}

	// A write far larger than the socket's buffers: the slot goes back as
	// blocked, and the write waits until the client reads.
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i)
	}
	c.Hold(slot) // the same slot: a connection serves one session's writer
	done := make(chan error, 1)
	go func() {
		n, err := c.Write(big)
		if err == nil && n != len(big) {
			err = io.ErrShortWrite
		}
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for slot.blocked.Load() == 0 { // nothing reads yet: the socket fills
		if time.Now().After(deadline) {
			t.Fatal("a write larger than the socket's buffers did not give the slot up")
		}
		time.Sleep(time.Millisecond)
	}
	got := make([]byte, len(big))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting write: %v", err)
	}
	for i := range got {
		if got[i] != big[i] {
			t.Fatalf("byte %d is %d, want %d", i, got[i], big[i])
		}
	}
	c.Drop()
	if slot.released.Load() != 1 || slot.blocked.Load() != 1 {
		t.Fatalf("after a write that waited: released %d, blocked %d; want 1 and 1", slot.released.Load(), slot.blocked.Load())
	}

	// Not held: a write does not touch the slot.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n := slot.total(); n != 2 {
		t.Fatalf("a write without Hold gave a slot back (%d in all)", n)
	}

	opaque := NewSlotConn(struct{ net.Conn }{server})
	slot = &countedSlot{}
	opaque.Hold(slot)
	if slot.released.Load() != 1 {
		t.Fatal("Hold on a connection it cannot try kept the slot")
	}
	opaque.Drop()
	if n := slot.total(); n != 1 {
		t.Fatalf("the slot went back %d times, want once", n)
	}
}

// A write that began without the slot (a WebSocket reader's answer to a
// ping) may be waiting for the client when the writer takes the slot;
// the writer's own write would wait behind it, so Hold gives the slot
// back at once, as blocked, and Drop does not give it back again.
func TestSlotConnHoldBehindWaitingWrite(t *testing.T) {
	client, server := tcpPair(t)
	c := NewSlotConn(server)
	big := make([]byte, 64<<20)
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(big) // not held: the plain way, and it fills the socket
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.plain.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the write never began")
		}
		time.Sleep(time.Millisecond)
	}
	slot := &countedSlot{}
	c.Hold(slot)
	if slot.blocked.Load() != 1 || slot.released.Load() != 0 {
		t.Fatalf("Hold behind a write under way: blocked %d, released %d; want 1 and 0", slot.blocked.Load(), slot.released.Load())
	}
	c.Drop()
	if n := slot.total(); n != 1 {
		t.Fatalf("the slot went back %d times, want once", n)
	}
	if _, err := io.ReadFull(client, make([]byte, len(big))); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := c.plain.Load(); n != 0 {
		t.Fatalf("%d plain writes counted after they ended", n)
	}
}

// frameWriter records whether its slot was still out when it wrote.
type frameWriter struct {
	slot   *countedSlot
	frames int
	heldAt int32 // slots given back when Write ran
}

func (w *frameWriter) Write(frames []core.Frame) error {
	w.frames += len(frames)
	w.heldAt = w.slot.total()
	return nil
}

// TestWriteHolding: with a SlotConn the slot is held through the write and
// given back after it, once; with none (a nil one) it goes back before.
func TestWriteHolding(t *testing.T) {
	_, server := tcpPair(t)
	slot := &countedSlot{}
	w := &frameWriter{slot: slot}
	if err := NewSlotConn(server).WriteHolding(slot, w, make([]core.Frame, 2)); err != nil {
		t.Fatal(err)
	}
	if w.frames != 2 || w.heldAt != 0 || slot.released.Load() != 1 || slot.blocked.Load() != 0 {
		t.Fatalf("held: %d frames, %d given back during the write, released %d, blocked %d; want 2, 0, 1, 0",
			w.frames, w.heldAt, slot.released.Load(), slot.blocked.Load())
	}
	slot = &countedSlot{}
	w = &frameWriter{slot: slot}
	var none *SlotConn
	if err := none.WriteHolding(slot, w, make([]core.Frame, 1)); err != nil {
		t.Fatal(err)
	}
	if w.frames != 1 || w.heldAt != 1 || slot.total() != 1 {
		t.Fatalf("no SlotConn: %d frames, %d given back before the write, %d in all; want 1, 1, 1", w.frames, w.heldAt, slot.total())
	}
}
