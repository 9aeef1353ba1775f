package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

func TestIssueDev(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		input   string
		admin   bool
		ttl     time.Duration
		want    Identity
		wantErr protocol.Code
	}{
		{name: "plain", input: "alice", ttl: time.Hour,
			want: Identity{User: "alice", Name: "alice", Expires: t0.Add(time.Hour)}},
		{name: "normalised", input: "  Alice.B-1_\t", admin: true, ttl: time.Minute,
			want: Identity{User: "alice.b-1_", Name: "Alice.B-1_", Admin: true, Expires: t0.Add(time.Minute)}},
		{name: "default ttl", input: "bob",
			want: Identity{User: "bob", Name: "bob", Expires: t0.Add(DefaultDevTTL)}},
		{name: "with iss and aud", cfg: Config{Issuer: "idp", Audience: "chatd"}, input: "bob", ttl: time.Hour,
			want: Identity{User: "bob", Name: "bob", Expires: t0.Add(time.Hour)}},
		{name: "64 chars", input: strings.Repeat("A", 64), ttl: time.Hour,
			want: Identity{User: strings.Repeat("a", 64), Name: strings.Repeat("A", 64), Expires: t0.Add(time.Hour)}},
		{name: "65 chars", input: strings.Repeat("a", 65), wantErr: protocol.CodeBadRequest},
		{name: "empty", input: "", wantErr: protocol.CodeBadRequest},
		{name: "blank", input: " \t ", wantErr: protocol.CodeBadRequest},
		{name: "space inside", input: "al ice", wantErr: protocol.CodeBadRequest},
		{name: "colon", input: "al:ice", wantErr: protocol.CodeBadRequest},
		{name: "star", input: "al*", wantErr: protocol.CodeBadRequest},
		{name: "non-ascii letter", input: "élodie", wantErr: protocol.CodeBadRequest},
		{name: "kelvin sign lowercases to k", input: "\u212Aelvin", wantErr: protocol.CodeBadRequest},
		{name: "control char", input: "bob\x00", wantErr: protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Now = fixedNow
			v, err := NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := v.IssueDev(tt.input, tt.admin, tt.ttl)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("IssueDev(%q) succeeded", tt.input)
				}
				if got := codeOf(t, err); got != tt.wantErr {
					t.Errorf("code = %s, want %s", got, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("IssueDev(%q): %v", tt.input, err)
			}
			id, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("Verify(dev token): %v", err)
			}
			assertIdentity(t, id, tt.want)
		})
	}
}

func TestIssueDevRefusedWithKey(t *testing.T) {
	for _, cfg := range []Config{hsConfig(), {PublicKeyPEM: keys().edPEM}} {
		v, err := NewVerifier(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if v.DevMode() {
			t.Errorf("%s verifier reports dev mode", v.Algorithm())
		}
		if tok, err := v.IssueDev("alice", true, time.Hour); !errors.Is(err, ErrNotDevMode) || tok != "" {
			t.Errorf("%s: IssueDev = %q, %v; want ErrNotDevMode", v.Algorithm(), tok, err)
		}
	}
}

func TestDevTokenExpires(t *testing.T) {
	now := t0
	v, err := NewVerifier(Config{Leeway: -1, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.IssueDev("alice", false, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now = t0.Add(time.Minute)
	if _, err := v.Verify(tok); err == nil || codeOf(t, err) != protocol.CodeTokenExpired {
		t.Errorf("Verify after ttl: %v, want token_expired", err)
	}
}
