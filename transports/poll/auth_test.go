package poll_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/transporttest"
)

// A poll's token is verified once and then taken on trust
// (httpx.Authenticator.IdentifyRepeated), but never past its expiry, on
// the clock the Verifier uses; a forged token is refused every time.
func TestPollTokenTrustEndsAtExpiry(t *testing.T) {
	const room = "trust"
	t0 := time.Now()
	var at atomic.Int64
	at.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, at.Load()) }
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte(transporttest.Secret), Now: clock, Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	_, base, _ := server(t, e, poll.Config{Auth: &httpx.Authenticator{Verifier: v, Tickets: e.Tickets, Now: clock}})
	exp := t0.Add(time.Hour).Truncate(time.Second)
	tok := e.Token(t, "ola", transporttest.Claims{Expires: exp})

	get(t, base, tok, start(room))
	at.Store(exp.Add(-time.Second).UnixNano())
	get(t, base, tok, start(room))
	at.Store(exp.Add(time.Second).UnixNano())
	if a, err := getErr(t.Context(), base, tok, start(room)); err != nil || a.Status != http.StatusUnauthorized {
		t.Fatalf("a poll past the token's expiry: HTTP %d, %v; want 401", a.Status, err)
	}

	bad := tok[:len(tok)-4] + transporttest.Flip(tok[len(tok)-4:]) // the signature no longer matches
	at.Store(t0.UnixNano())
	for range 2 {
		if a, err := getErr(t.Context(), base, bad, start(room)); err != nil || a.Status != http.StatusUnauthorized {
			t.Fatalf("a poll with a forged token: HTTP %d, %v; want 401", a.Status, err)
		}
	}
}
