package auth

import (
	"encoding/json"
	"reflect"
	"testing"
)

// ticketPayloads are payloads as Issue makes them: which decodeTicket
// reads by itself (fast), and which it leaves to encoding/json.
var ticketPayloads = []struct {
	p    ticketPayload
	fast bool
}{
	{ticketPayload{User: "alice", Until: 1_796_410_250_000}, true},
	{ticketPayload{User: "alice", Name: "Alice Zoë 🙂", Rooms: []string{"general", "dm:alice:bob", "team-*"}, Admin: true,
		Expires: 1_796_410_300_000, Until: 1_796_410_250_000}, true},
	{ticketPayload{User: "u", Rooms: []string{}, Until: 1}, true},
	{ticketPayload{User: "u", Rooms: []string{""}, Expires: -5, Until: 9_223_372_036_854_775_807}, true},
	{ticketPayload{User: "bob", Name: `say "hi"`, Until: 7}, false}, // escaped quotes
	{ticketPayload{User: "bob", Name: "a<b>&c", Until: 7}, false},   // json.Marshal escapes <, > and &
	{ticketPayload{User: "bob", Rooms: []string{`back\slash`}, Until: 7}, false},
	{ticketPayload{User: "bob", Name: "line\u2028sep", Until: 7}, false}, // and U+2028
}

// TestDecodeTicketPayload: every payload Issue can write decodes to what
// encoding/json makes of it, through decodeTicket where its strings need
// no unescaping and through encoding/json otherwise.
func TestDecodeTicketPayload(t *testing.T) {
	for _, c := range ticketPayloads {
		body, err := json.Marshal(c.p)
		if err != nil {
			t.Fatal(err)
		}
		var fast ticketPayload
		if got := decodeTicket(body, &fast); got != c.fast {
			t.Errorf("%s: read without encoding/json: %v, want %v", body, got, c.fast)
		}
		var got, want ticketPayload
		if err := decodeTicketPayload(body, &got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got, c.p) {
			t.Errorf("%s: decoded %+v, encoding/json %+v, issued %+v", body, got, want, c.p)
		}
	}
	for _, bad := range []string{``, `{}`, `{"u":"a","r":null,"x":01}`, `{"u":"a","r":null,"x":1} `,
		`{"u":"a","r":null,"x":-}`, `{"u":"a","r":["x",],"x":1}`, `{"u":"a","r":null,"x":99999999999999999999}`} {
		var p ticketPayload
		if decodeTicket([]byte(bad), &p) {
			t.Errorf("%q read as %+v", bad, p)
		}
	}
}

// FuzzTicketPayload: whatever decodeTicket accepts, encoding/json accepts
// too, with the same result.
func FuzzTicketPayload(f *testing.F) {
	for _, c := range ticketPayloads {
		body, err := json.Marshal(c.p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Add([]byte(`{"u":"a","r":[],"a":true,"e":0,"x":-0}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast, std ticketPayload
		if !decodeTicket(body, &fast) {
			return
		}
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("%q: read without encoding/json as %+v, which refuses it: %v", body, fast, err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: %+v, encoding/json %+v", body, fast, std)
		}
	})
}

func BenchmarkTicketPayload(b *testing.B) {
	body, err := json.Marshal(ticketPayloads[1].p)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p ticketPayload
			if err := decodeTicketPayload(body, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p ticketPayload
			if err := json.Unmarshal(body, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
