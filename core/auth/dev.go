package auth

import (
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
)

// DefaultDevTTL is the lifetime of a dev token when IssueDev is given a
// ttl of zero or less.
const DefaultDevTTL = 24 * time.Hour

// MaxDevNameLen is the longest user id IssueDev makes.
const MaxDevNameLen = 64

// ErrNotDevMode is returned by IssueDev on a Verifier that has a configured
// key. The dev login endpoint must not exist then; this is the backstop.
var ErrNotDevMode = errors.New("auth: dev tokens are only issued in dev mode")

// IssueDev signs a dev-mode HS256 token for the user typed as name. The
// sub is name trimmed and lowercased, and must then be 1 to MaxDevNameLen
// ASCII letters, digits, '-', '_' or '.'; otherwise the error is
// bad_request. The name claim is name trimmed, as typed. The token expires
// after ttl (DefaultDevTTL if ttl <= 0) and carries the configured iss and
// aud, so v accepts it. On a Verifier that is not in dev mode it returns
// ErrNotDevMode.
func (v *Verifier) IssueDev(name string, admin bool, ttl time.Duration) (string, error) {
	if !v.dev {
		return "", ErrNotDevMode
	}
	display := strings.TrimSpace(name)
	sub, err := NormalizeDevName(display)
	if err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = DefaultDevTTL
	}
	now := v.now()
	c := devClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			Issuer:    v.issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Name:  display,
		Admin: admin,
	}
	if v.aud != "" {
		c.Audience = jwt.ClaimStrings{v.aud}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(v.key)
}

// devClaims is the payload of a dev token. It has no rooms member: a dev
// user may use any room.
type devClaims struct {
	jwt.RegisteredClaims
	Name  string `json:"name"`
	Admin bool   `json:"admin,omitempty"`
}

// NormalizeDevName returns the user id a dev login for name gets: name
// trimmed and lowercased. It is a bad_request error unless the result is 1
// to MaxDevNameLen ASCII letters, digits, '-', '_' or '.'.
func NormalizeDevName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > MaxDevNameLen {
		return "", protocol.Errorf(protocol.CodeBadRequest, "name must be 1 to %d characters", MaxDevNameLen)
	}
	// Check before lowercasing: strings.ToLower maps some non-ASCII runes
	// (the Kelvin sign) onto ASCII letters, which would let two typed names
	// share one id.
	for i := 0; i < len(name); i++ {
		if !devNameByte(name[i]) {
			return "", protocol.Errorf(protocol.CodeBadRequest, "name may contain only letters, digits, '-', '_' and '.'")
		}
	}
	return strings.ToLower(name), nil
}

func devNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}
