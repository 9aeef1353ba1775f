package httpx

import (
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
)

// pollAt returns a GET of /v1/poll?raw with the given header lines.
func pollAt(raw string, header ...string) *http.Request {
	r := httptest.NewRequest("GET", "/v1/poll", nil)
	r.URL.RawQuery = raw
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

// A Repeat matches the request it was made from with the new value in
// place of the old, and nothing that differs in any other byte of the
// query or in a credential header.
func TestRepeatMatchesTheSameRequestOnly(t *testing.T) {
	for _, key := range []string{"Authorization", HeaderClient, lastEventID} {
		if textproto.CanonicalMIMEHeaderKey(key) != key {
			t.Fatalf("Matches reads %q, which is not a canonical key", key)
		}
	}
	const raw = "rooms=a%2Cb&cursor=OLD&token=tok&control_tag=7"
	first := pollAt(raw, HeaderClient, "tab-1")
	x, ok := ExpectRepeat(first, "cursor", "NEW-1_x")
	if !ok {
		t.Fatal("no Repeat of a plain cursor")
	}
	next := "rooms=a%2Cb&cursor=NEW-1_x&token=tok&control_tag=7"
	if !x.Matches(pollAt(next, HeaderClient, "tab-1")) {
		t.Fatal("the same poll with the new cursor did not match")
	}
	for _, tc := range []struct {
		name   string
		r      *http.Request
		differ bool
	}{
		{"the old cursor", pollAt(raw, HeaderClient, "tab-1"), true},
		{"another token", pollAt("rooms=a%2Cb&cursor=NEW-1_x&token=tol&control_tag=7", HeaderClient, "tab-1"), true},
		{"another control_tag", pollAt("rooms=a%2Cb&cursor=NEW-1_x&token=tok&control_tag=8", HeaderClient, "tab-1"), true},
		{"a longer query", pollAt(next+"&x=1", HeaderClient, "tab-1"), true},
		{"another client", pollAt(next, HeaderClient, "tab-2"), true},
		{"no client", pollAt(next), true},
		{"a bearer header", pollAt(next, HeaderClient, "tab-1", "Authorization", "Bearer other"), true},
		{"a Last-Event-ID", pollAt(next, HeaderClient, "tab-1", "Last-Event-ID", "x"), true},
		{"the same", pollAt(next, HeaderClient, "tab-1"), false},
	} {
		if got := x.Matches(tc.r); got == tc.differ {
			t.Errorf("%s: Matches = %v", tc.name, got)
		}
	}

	// A bearer header is part of what is repeated.
	withBearer := pollAt(raw, "Authorization", "Bearer one")
	y, ok := ExpectRepeat(withBearer, "cursor", "N")
	if !ok {
		t.Fatal("no Repeat of a poll with a bearer header")
	}
	nextB := "rooms=a%2Cb&cursor=N&token=tok&control_tag=7"
	if !y.Matches(pollAt(nextB, "Authorization", "Bearer one")) || y.Matches(pollAt(nextB, "Authorization", "Bearer two")) ||
		y.Matches(pollAt(nextB)) {
		t.Fatal("a Repeat of a bearer poll did not tell bearers apart")
	}
	// Next moves the expected value on, and the old one no longer matches.
	z, ok := y.Next("M")
	if !ok || !z.Matches(pollAt("rooms=a%2Cb&cursor=M&token=tok&control_tag=7", "Authorization", "Bearer one")) ||
		z.Matches(pollAt(nextB, "Authorization", "Bearer one")) {
		t.Fatal("Next did not move the value on")
	}
	if (&Repeat{}).Matches(pollAt("")) {
		t.Fatal("a zero Repeat matched an empty query")
	}
}

// No Repeat is made where the value cannot be put in place as a client
// would send it, or the pair is not the one the query's readers take.
func TestRepeatRefuses(t *testing.T) {
	for _, tc := range []struct{ raw, value string }{
		{"rooms=a", "X"},                         // no cursor
		{"cursor", "X"},                          // a name alone
		{"cursor=a%2Db", "X"},                    // an escaped value
		{"cursor=a+b", "X"},                      // a space
		{"curso%72=a", "X"},                      // an escaped name, which the readers take as cursor
		{"cursor=ok", "a b"},                     // a value a client escapes
		{"cursor=ok", "a%2F"},                    // another
		{"cursor=ok", ""},                        // an empty value is never expected
		{"cursor=a;b&cursor=c%", "X"},            // the first usable pair escaped
		{"cursor=ok&rooms=a", "a&cursor=forged"}, // a value that would add a pair
	} {
		x, ok := ExpectRepeat(pollAt(tc.raw), "cursor", tc.value)
		if tc.value == "" {
			if x.Matches(pollAt(tc.raw)) {
				t.Errorf("%q with an empty value: matched", tc.raw)
			}
			continue
		}
		if ok {
			t.Errorf("%q with value %q: a Repeat %+v", tc.raw, tc.value, x)
		}
	}
	if _, ok := ExpectRepeat(pollAt("cursor=a", "Last-Event-ID", "1"), "cursor", "b"); ok {
		t.Error("a Repeat of a request with a Last-Event-ID")
	}
}

// paramSpan finds the pair queryParams reads: a pair with a semicolon
// or a bad escape is skipped, and the first usable one counts.
func TestParamSpanFindsTheReadPair(t *testing.T) {
	for _, raw := range []string{
		"cursor=one",
		"a=1&cursor=one&cursor=two",
		"cursor=x;y&cursor=one",
		"&&cursor=one&",
		"%zz=1&cursor=one",
		"cursors=no&cursor=one",
	} {
		start, end, ok := paramSpan(raw, "cursor")
		if !ok || raw[start:end] != "one" {
			t.Errorf("%q: span %d-%d (%v), want the value one", raw, start, end, ok)
		}
	}
}

// FuzzRepeat holds ExpectRepeat to the query's readers: in the query a
// matching request sends, every parameter reads as in the query the
// Repeat was made from, but the one named, which reads as the new value.
func FuzzRepeat(f *testing.F) {
	for _, s := range []string{
		"rooms=a&cursor=AQJ-&token=t", "cursor=x;y&cursor=one", "curso%72=a&cursor=b", "cursor=&rooms=",
		"a=%zz&cursor=c&a=2", "cursor=1&cursor=2",
	} {
		f.Add(s, "NEW_v-1")
	}
	names := []string{"rooms", "cursor", "token", "since", "a", "control_tag"}
	f.Fuzz(func(t *testing.T, raw, value string) {
		r := pollAt(raw)
		x, ok := ExpectRepeat(r, "cursor", value)
		if !ok || value == "" { // an empty value is never expected
			return
		}
		start, end, _ := paramSpan(raw, "cursor")
		next := raw[:start] + value + raw[end:]
		if !x.Matches(pollAt(next)) {
			t.Fatalf("%q: the repeat %q did not match", raw, next)
		}
		before := make([]string, len(names))
		after := make([]string, len(names))
		queryParams(raw, names, before)
		queryParams(next, names, after)
		for i, name := range names {
			want := before[i]
			if name == "cursor" {
				want = value
			}
			if after[i] != want {
				t.Fatalf("%q -> %q: %s reads %q, want %q", raw, next, name, after[i], want)
			}
		}
		// And url.ParseQuery, where it reads the query at all, agrees.
		if q, err := url.ParseQuery(next); err == nil && q.Get("cursor") != value {
			t.Fatalf("%q: url.ParseQuery reads cursor %q, want %q", next, q.Get("cursor"), value)
		}
	})
}

// A Proof is taken again for as long as the credential cache would take
// its credential, and not after.
func TestReuseEndsWithTheCredentialsTrust(t *testing.T) {
	a, v, setClock := clockedAuth(t)
	tok, err := v.IssueDev("alice", false, 30*time.Second) // sooner than the cache's own bound
	if err != nil {
		t.Fatal(err)
	}
	r := pollAt("token=" + tok)
	p, err := a.ProveRepeated(r)
	if err != nil || p.ID.User == "" {
		t.Fatalf("ProveRepeated: %+v, %v", p, err)
	}
	setClock(29 * time.Second)
	if id, ok := a.Reuse(r, p); !ok || id.User != p.ID.User {
		t.Fatalf("Reuse before exp: %+v, %v", id, ok)
	}
	setClock(30 * time.Second)
	if _, ok := a.Reuse(r, p); ok {
		t.Fatal("Reuse at exp took the proof")
	}
	if _, err := a.ProveRepeated(r); err == nil {
		t.Fatal("the expired token proved itself again")
	}
	// A proof the cache never took holds nothing.
	if _, ok := a.Reuse(r, Proof{ID: auth.Identity{User: "x"}}); ok {
		t.Fatal("a zero proof was taken")
	}
}
