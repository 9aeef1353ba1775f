package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
)

// t0 is the fixed "now" of every test clock.
var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

var hsSecret = []byte("0123456789abcdef0123456789abcdef")

// testKeys holds generated key pairs and their public PEMs. Generated once:
// RSA key generation is slow under -race.
type testKeys struct {
	rsa, rsa2           *rsa.PrivateKey
	ec                  *ecdsa.PrivateKey
	ed                  ed25519.PrivateKey
	rsaPEM, rsaPKCS1PEM []byte
	rsaCertPEM          []byte
	ecPEM, edPEM        []byte
}

var keys = sync.OnceValue(func() testKeys {
	var k testKeys
	var err error
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.rsaPEM = pkixPEM(k.rsa.Public())
	k.rsaPKCS1PEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	k.ecPEM = pkixPEM(k.ec.Public())
	k.edPEM = pkixPEM(k.ed.Public())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    t0.Add(-time.Hour),
		NotAfter:     t0.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.rsa.Public(), k.rsa)
	must(err)
	k.rsaCertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return k
})

func pkixPEM(pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// claimsFor returns valid claims for sub, expiring an hour after t0, with
// extra merged in. A nil value in extra deletes that claim.
func claimsFor(sub string, extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": t0.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// codeOf returns the wire code of err, failing unless err is a
// *protocol.Error.
func codeOf(t testing.TB, err error) protocol.Code {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
	}
	return pe.Code
}

func hsConfig() Config { return Config{HMACSecret: hsSecret, Now: fixedNow} }

func TestVerifyAccepts(t *testing.T) {
	k := keys()
	exp := t0.Add(time.Hour)
	pemConfig := func(p []byte) Config { return Config{PublicKeyPEM: p, Now: fixedNow} }
	tests := []struct {
		name    string
		cfg     Config
		token   string
		wantAlg string
		want    Identity
	}{
		{"hs256", hsConfig(), sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", nil)),
			"HS256", Identity{User: "alice", Name: "alice", Expires: exp}},
		{"hs256 all claims", hsConfig(), sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", jwt.MapClaims{
			"name": "Alice A.", "rooms": []string{"general", "team-*"}, "admin": true})),
			"HS256", Identity{User: "alice", Name: "Alice A.", Rooms: []string{"general", "team-*"}, Admin: true, Expires: exp}},
		{"empty rooms is not absent", hsConfig(), sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", jwt.MapClaims{"rooms": []string{}})),
			"HS256", Identity{User: "alice", Name: "alice", Rooms: []string{}, Expires: exp}},
		{"within leeway", hsConfig(), sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", jwt.MapClaims{"exp": t0.Add(-20 * time.Second).Unix()})),
			"HS256", Identity{User: "alice", Name: "alice", Expires: t0.Add(-20 * time.Second)}},
		{"rs256 pkix", pemConfig(k.rsaPEM), sign(t, jwt.SigningMethodRS256, k.rsa, claimsFor("bob", nil)),
			"RS256", Identity{User: "bob", Name: "bob", Expires: exp}},
		{"rs256 pkcs1", pemConfig(k.rsaPKCS1PEM), sign(t, jwt.SigningMethodRS256, k.rsa, claimsFor("bob", nil)),
			"RS256", Identity{User: "bob", Name: "bob", Expires: exp}},
		{"rs256 certificate", pemConfig(k.rsaCertPEM), sign(t, jwt.SigningMethodRS256, k.rsa, claimsFor("bob", nil)),
			"RS256", Identity{User: "bob", Name: "bob", Expires: exp}},
		{"es256", pemConfig(k.ecPEM), sign(t, jwt.SigningMethodES256, k.ec, claimsFor("carol", nil)),
			"ES256", Identity{User: "carol", Name: "carol", Expires: exp}},
		{"eddsa", pemConfig(k.edPEM), sign(t, jwt.SigningMethodEdDSA, k.ed, claimsFor("dave", nil)),
			"EdDSA", Identity{User: "dave", Name: "dave", Expires: exp}},
		{"iss and aud match", Config{HMACSecret: hsSecret, Issuer: "idp", Audience: "chatd", Now: fixedNow},
			sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", jwt.MapClaims{"iss": "idp", "aud": []string{"other", "chatd"}})),
			"HS256", Identity{User: "alice", Name: "alice", Expires: exp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if v.Algorithm() != tt.wantAlg || v.DevMode() {
				t.Errorf("Algorithm, DevMode = %s, %v; want %s, false", v.Algorithm(), v.DevMode(), tt.wantAlg)
			}
			id, err := v.Verify(tt.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			assertIdentity(t, id, tt.want)
		})
	}
}

func assertIdentity(t *testing.T, got, want Identity) {
	t.Helper()
	if got.User != want.User || got.Name != want.Name || got.Admin != want.Admin ||
		!got.Expires.Equal(want.Expires) || !slices.Equal(got.Rooms, want.Rooms) ||
		(got.Rooms == nil) != (want.Rooms == nil) {
		t.Errorf("identity = %+v, want %+v", got, want)
	}
}

func TestVerifyRejects(t *testing.T) {
	k := keys()
	iss := Config{HMACSecret: hsSecret, Issuer: "idp", Audience: "chatd", Now: fixedNow}
	rsaCfg := Config{PublicKeyPEM: k.rsaPEM, Now: fixedNow}
	valid := sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", nil))
	expired := jwt.MapClaims{"exp": t0.Add(-time.Minute).Unix()}
	hs := func(extra jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", extra))
	}
	// critical names a header extension the verifier must understand.
	critical := func(crit any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor("alice", nil))
		tok.Header["crit"] = crit
		s, err := tok.SignedString(hsSecret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		cfg   Config
		token string
		want  protocol.Code
	}{
		{"alg none", hsConfig(), b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(`{"sub":"alice","exp":9999999999}`) + ".", protocol.CodeUnauthorized},
		{"alg none with rsa key", rsaCfg, b64(`{"alg":"none"}`) + "." + b64(`{"sub":"alice","exp":9999999999}`) + ".", protocol.CodeUnauthorized},
		{"hs256 signed with the rsa pem", rsaCfg, sign(t, jwt.SigningMethodHS256, k.rsaPEM, claimsFor("alice", nil)), protocol.CodeUnauthorized},
		{"rs256 to an hs256 server", hsConfig(), sign(t, jwt.SigningMethodRS256, k.rsa, claimsFor("alice", nil)), protocol.CodeUnauthorized},
		{"es256 to an rsa server", rsaCfg, sign(t, jwt.SigningMethodES256, k.ec, claimsFor("alice", nil)), protocol.CodeUnauthorized},
		{"bad signature", hsConfig(), valid[:len(valid)-4] + "AAAA", protocol.CodeUnauthorized},
		{"payload swapped", hsConfig(), strings.Split(valid, ".")[0] + "." + b64(`{"sub":"root","exp":9999999999,"admin":true}`) + "." + strings.Split(valid, ".")[2], protocol.CodeUnauthorized},
		{"wrong hmac secret", hsConfig(), sign(t, jwt.SigningMethodHS256, []byte("another secret, just as long!!!!"), claimsFor("alice", nil)), protocol.CodeUnauthorized},
		{"wrong rsa key", rsaCfg, sign(t, jwt.SigningMethodRS256, k.rsa2, claimsFor("alice", nil)), protocol.CodeUnauthorized},
		{"expired", hsConfig(), hs(expired), protocol.CodeTokenExpired},
		{"expired just past leeway", hsConfig(), hs(jwt.MapClaims{"exp": t0.Add(-DefaultLeeway).Unix()}), protocol.CodeTokenExpired},
		{"expired with no leeway", Config{HMACSecret: hsSecret, Leeway: -1, Now: fixedNow}, hs(jwt.MapClaims{"exp": t0.Add(-time.Second).Unix()}), protocol.CodeTokenExpired},
		{"expired and bad signature", hsConfig(), sign(t, jwt.SigningMethodHS256, []byte("x"), claimsFor("alice", expired)), protocol.CodeUnauthorized},
		{"expired and wrong iss", iss, hs(jwt.MapClaims{"exp": expired["exp"], "iss": "evil", "aud": "chatd"}), protocol.CodeUnauthorized},
		{"expired and no sub", hsConfig(), hs(jwt.MapClaims{"exp": expired["exp"], "sub": nil}), protocol.CodeUnauthorized},
		{"missing exp", hsConfig(), hs(jwt.MapClaims{"exp": nil}), protocol.CodeUnauthorized},
		{"exp not a number", hsConfig(), hs(jwt.MapClaims{"exp": "soon"}), protocol.CodeUnauthorized},
		{"not valid yet", hsConfig(), hs(jwt.MapClaims{"nbf": t0.Add(time.Hour).Unix()}), protocol.CodeUnauthorized},
		{"missing sub", hsConfig(), hs(jwt.MapClaims{"sub": nil}), protocol.CodeUnauthorized},
		{"empty sub", hsConfig(), hs(jwt.MapClaims{"sub": ""}), protocol.CodeUnauthorized},
		{"sub not a string", hsConfig(), hs(jwt.MapClaims{"sub": 42}), protocol.CodeUnauthorized},
		{"wrong iss", iss, hs(jwt.MapClaims{"iss": "evil", "aud": "chatd"}), protocol.CodeUnauthorized},
		{"missing iss", iss, hs(jwt.MapClaims{"aud": "chatd"}), protocol.CodeUnauthorized},
		{"wrong aud", iss, hs(jwt.MapClaims{"iss": "idp", "aud": "other"}), protocol.CodeUnauthorized},
		{"missing aud", iss, hs(jwt.MapClaims{"iss": "idp"}), protocol.CodeUnauthorized},
		{"rooms a string", hsConfig(), hs(jwt.MapClaims{"rooms": "general"}), protocol.CodeUnauthorized},
		{"rooms an object", hsConfig(), hs(jwt.MapClaims{"rooms": map[string]any{"general": true}}), protocol.CodeUnauthorized},
		{"rooms of numbers", hsConfig(), hs(jwt.MapClaims{"rooms": []int{1, 2}}), protocol.CodeUnauthorized},
		{"admin a string", hsConfig(), hs(jwt.MapClaims{"admin": "yes"}), protocol.CodeUnauthorized},
		{"empty", hsConfig(), "", protocol.CodeUnauthorized},
		{"one segment", hsConfig(), "not-a-jwt-at-all-really", protocol.CodeUnauthorized},
		{"garbage segments", hsConfig(), "!!!!!!!!.????????.########", protocol.CodeUnauthorized},
		{"header not json", hsConfig(), b64("not json at all") + "." + b64(`{"sub":"a"}`) + ".c2ln", protocol.CodeUnauthorized},
		{"over-long", hsConfig(), hs(jwt.MapClaims{"name": strings.Repeat("x", MaxTokenLen)}), protocol.CodeUnauthorized},
		// RFC 7515 section 4.1.11: a crit header names extensions that
		// must be understood; this verifier understands none.
		{"crit b64 (RFC 7797)", hsConfig(), critical([]string{"b64"}), protocol.CodeUnauthorized},
		{"crit of an unknown extension", hsConfig(), critical([]string{"exp-ext"}), protocol.CodeUnauthorized},
		{"crit empty", hsConfig(), critical([]string{}), protocol.CodeUnauthorized},
		{"crit not a list", hsConfig(), critical("b64"), protocol.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			id, err := v.Verify(tt.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", id)
			}
			if got := codeOf(t, err); got != tt.want {
				t.Errorf("code = %s, want %s (%v)", got, tt.want, err)
			}
			if id.User != "" {
				t.Errorf("identity %+v returned with an error", id)
			}
			assertNoSecret(t, err, tt.token)
			t.Logf("%v", err)
		})
	}
}

// assertNoSecret fails if the client message, or the full error text
// meant for logs, contains the credential.
func assertNoSecret(t *testing.T, err error, secret string) {
	t.Helper()
	if len(secret) < 16 { // short strings turn up in any text by chance
		return
	}
	_, msg := protocol.CodeOf(err)
	if strings.Contains(msg, secret) || strings.Contains(err.Error(), secret) {
		t.Errorf("error text contains the credential: %v", err)
	}
	for _, part := range strings.Split(secret, ".") {
		if len(part) >= 16 && strings.Contains(err.Error(), part) {
			t.Errorf("error text contains part of the credential: %v", err)
		}
	}
}

func TestNewVerifierConfig(t *testing.T) {
	k := keys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := x509.MarshalECPrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"both keys", Config{HMACSecret: hsSecret, PublicKeyPEM: k.rsaPEM}},
		{"not pem", Config{PublicKeyPEM: []byte("-----not a key-----")}},
		{"private key", Config{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecPriv})}},
		{"corrupt der", Config{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})}},
		{"small rsa", Config{PublicKeyPEM: pkixPEM(small.Public())}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := NewVerifier(tt.cfg); err == nil {
				t.Errorf("NewVerifier succeeded with alg %s", v.Algorithm())
			}
		})
	}
}

func TestDevModeVerifier(t *testing.T) {
	v1, err := NewVerifier(Config{})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewVerifier(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !v1.DevMode() || v1.Algorithm() != AlgHS256 {
		t.Fatalf("zero Config: DevMode, Algorithm = %v, %s", v1.DevMode(), v1.Algorithm())
	}
	tok, err := v1.IssueDev("alice", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Verify(tok); err != nil {
		t.Errorf("own dev token rejected: %v", err)
	}
	// Each dev verifier has its own random secret.
	if _, err := v2.Verify(tok); err == nil || codeOf(t, err) != protocol.CodeUnauthorized {
		t.Errorf("another dev verifier: err = %v, want unauthorized", err)
	}
}

// The name claim is a display name like any other: NFC and trimmed, and
// one that is not a display name shows as the sub instead of refusing
// the token.
func TestVerifyCleansName(t *testing.T) {
	v, err := NewVerifier(hsConfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		" Zoe\u0308 ":                 "Zoë",
		"\u202eevil":                  "bob",
		"a\u200bb":                    "bob",
		strings.Repeat("x", 65):       "bob",
		"":                            "bob",
		"Bob Smith":                   "Bob Smith",
		strings.Repeat("e\u0301", 64): strings.Repeat("é", 64),
	} {
		id, err := v.Verify(sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("bob", jwt.MapClaims{"name": name})))
		if err != nil || id.Name != want {
			t.Errorf("name claim %+q: Name %+q, %v; want %+q", name, id.Name, err, want)
		}
	}
}
