package auth

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures what proving a token costs a connect (a
// WebSocket or SSE stream, a poll client's first poll): an HS256 token
// of the kind chatd's users carry (sub, name, exp, iat) checked and its
// claims read. A reconnect storm pays it once per client.
//
//	go test -run '^$' -bench Verify -benchmem ./core/auth/
func BenchmarkVerify(b *testing.B) {
	v, err := NewVerifier(hsConfig())
	if err != nil {
		b.Fatal(err)
	}
	token := sign(b, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", jwt.MapClaims{
		"name": "Alice Liddell", "iat": t0.Unix(), "exp": t0.Unix() + 3600}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(token); err != nil {
			b.Fatal(err)
		}
	}
}
