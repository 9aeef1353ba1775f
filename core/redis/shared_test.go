package redis

import (
	"fmt"
	"testing"

	"github.com/chatd/chatd/core/redis/redistest"
)

// TestShared: Get and Set share values between nodes; LogPush keeps the
// newest entries, LogRange returns them newest first.
func TestShared(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	a, b := open(t, srv, Config{Node: "a"}), open(t, srv, Config{Node: "b"})
	ctx := t.Context()
	if v, ok, err := a.Get(ctx, "level"); v != nil || ok || err != nil {
		t.Fatalf("Get of a missing key = %q, %v, %v", v, ok, err)
	}
	if err := a.Set(ctx, "level", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.Get(ctx, "level"); string(v) != "2" || !ok || err != nil {
		t.Fatalf("Get from the other node = %q, %v, %v", v, ok, err)
	}
	for i := range 5 {
		if err := a.LogPush(ctx, "changes", []byte(fmt.Sprint(i)), 3); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.LogRange(ctx, "changes", 10)
	if err != nil || fmt.Sprintf("%s", got) != "[4 3 2]" {
		t.Fatalf("LogRange = %s, %v; want [4 3 2]", got, err)
	}
	if got, err := b.LogRange(ctx, "changes", 2); err != nil || fmt.Sprintf("%s", got) != "[4 3]" {
		t.Fatalf("LogRange(2) = %s, %v; want [4 3]", got, err)
	}
}
