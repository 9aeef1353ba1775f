package client

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestEventReader(t *testing.T) {
	in := ": hello\n" +
		"retry: 2000\n" +
		"id: c1\n" +
		"data: {\"type\":\"joined\"}\n" +
		"\n" +
		"data:a\r\n" +
		"data: b\r\n" +
		"\r\n" +
		"event: x\rid: c2\rdata: c\r\r" +
		"id\n" + // an empty id field resets the id
		"data\n\n" +
		"\n\n" + // blank lines with no data dispatch nothing
		"data: cut off by EOF"
	lines := 0
	er := newEventReader(strings.NewReader(in), func() { lines++ })
	want := []event{
		{id: "c1", data: []byte(`{"type":"joined"}`), retry: 2000},
		{id: "c1", data: []byte("a\nb"), retry: 2000},
		{id: "c2", name: "x", data: []byte("c"), retry: 2000},
		{id: "", data: []byte(""), retry: 2000},
	}
	for i, w := range want {
		got, err := er.next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got.id != w.id || got.name != w.name || string(got.data) != string(w.data) || got.retry != w.retry {
			t.Fatalf("event %d: got %+v (%q), want %+v (%q)", i, got, got.data, w, w.data)
		}
	}
	if _, err := er.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the last event: %v, want unexpected EOF", err)
	}
	if lines != 17 {
		t.Fatalf("%d lines seen, want 17 (each one is a sign of life)", lines)
	}
}

func FuzzEventReader(f *testing.F) {
	f.Add("id: 1\ndata: x\n\n")
	f.Add(": c\r\ndata:\r\rdata: y\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		er := newEventReader(strings.NewReader(in), nil)
		for i := 0; i < len(in)+1; i++ {
			if _, err := er.next(); err != nil {
				return
			}
		}
		t.Fatal("more events than bytes")
	})
}
