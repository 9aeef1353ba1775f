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
		{name: "control char", input: "bob\x00", wantErr: protocol.CodeBadRequest},
		{name: "bidi override", input: "\u202ebob", wantErr: protocol.CodeBadRequest},
		{name: "zero-width space", input: "b\u200bob", wantErr: protocol.CodeBadRequest},
		{name: "display name", input: " Zoë Smith ", ttl: time.Hour,
			want: Identity{User: DevUserID("Zoë Smith"), Name: "Zoë Smith", Expires: t0.Add(time.Hour)}},
		{name: "decomposed", input: "Zoe\u0308 Smith", ttl: time.Hour,
			want: Identity{User: DevUserID("Zoë Smith"), Name: "Zoë Smith", Expires: t0.Add(time.Hour)}},
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

// DevUserID gives every display name a stable, valid ASCII id: plain
// names keep theirs, others are transliterated with a hash suffix, so
// names that read alike stay apart and case does not matter.
func TestDevUserID(t *testing.T) {
	ids := map[string]string{}
	for _, name := range []string{"Zoë Smith", "Zoe Smith", "Zöe Smith", "Alice Smith", "alice-smith", "Élodie",
		"山田 太郎", "山田", "Ω", "\u212Aelvin", "kelvin", "al:ice", "al*", "a b", "A B"} {
		id := DevUserID(name)
		if err := protocol.ValidUser(id); err != nil {
			t.Errorf("DevUserID(%q) = %q: %v", name, id, err)
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; c >= 0x80 || !devNameByte(c) {
				t.Errorf("DevUserID(%q) = %q: byte %q", name, id, c)
			}
		}
		if again := DevUserID(name); again != id {
			t.Errorf("DevUserID(%q) is not stable: %q, then %q", name, id, again)
		}
		if other, ok := ids[id]; ok && !strings.EqualFold(other, name) {
			t.Errorf("%q and %q share id %q", other, name, id)
		}
		ids[id] = name
	}
	for name, prefix := range map[string]string{"Zoë Smith": "zoe-smith-", "Alice Smith": "alice-smith-",
		"Élodie": "elodie-", "山田": "u-", "\u212Aelvin": "kelvin-"} {
		if id := DevUserID(name); !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+6 {
			t.Errorf("DevUserID(%q) = %q, want %s and six hex digits", name, id, prefix)
		}
	}
	for name, want := range map[string]string{"alice": "alice", "Alice": "alice", "Alice.B-1_": "alice.b-1_"} {
		if id := DevUserID(name); id != want {
			t.Errorf("DevUserID(%q) = %q, want %q as before display names", name, id, want)
		}
	}
	if DevUserID("A B") != DevUserID("a b") {
		t.Error("case changes the id of a transliterated name")
	}
	if id := DevUserID(strings.Repeat("é", 64)); len(id) > maxDevSlug+7 {
		t.Errorf("id of a long name is %d bytes", len(id))
	}
}

func FuzzDevUserID(f *testing.F) {
	for _, s := range []string{"Zoë Smith", "alice", "山田", "\u212Aelvin", "ℌ", "--", "a\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := protocol.CleanDisplayName(s)
		if err != nil {
			return
		}
		id := DevUserID(name)
		if err := protocol.ValidUser(id); err != nil || len(id) > MaxDevNameLen {
			t.Fatalf("DevUserID(%q) = %q: %v", name, id, err)
		}
		for i := 0; i < len(id); i++ {
			if !devNameByte(id[i]) {
				t.Fatalf("DevUserID(%q) = %q", name, id)
			}
		}
	})
}
