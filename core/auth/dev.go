package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/text/unicode/norm"

	"github.com/chatd/chatd/core/protocol"
)

// DefaultDevTTL is the lifetime of a dev token when IssueDev is given a
// ttl of zero or less.
const DefaultDevTTL = 24 * time.Hour

// MaxDevNameLen is the longest user id IssueDev makes from a name that is
// all ASCII letters, digits, '-', '_' and '.'; other names get shorter ids
// (see DevUserID).
const MaxDevNameLen = protocol.MaxDisplayName

// maxDevSlug bounds the readable part of an id made by DevUserID from a
// name that needed transliteration.
const maxDevSlug = 40

// ErrNotDevMode is returned by IssueDev on a Verifier that has a configured
// key. The dev login endpoint must not exist then; this is the backstop.
var ErrNotDevMode = errors.New("auth: dev tokens are only issued in dev mode")

// IssueDev signs a dev-mode HS256 token for the person typed as name. The
// name claim is name cleaned as a display name (protocol.CleanDisplayName:
// NFC, trimmed, 1 to 64 characters, no control, format or bidi-control
// rune; otherwise bad_request), and the sub is DevUserID of it. The token
// expires after ttl (DefaultDevTTL if ttl <= 0) and carries the configured
// iss and aud, so v accepts it. On a Verifier that is not in dev mode it
// returns ErrNotDevMode.
func (v *Verifier) IssueDev(name string, admin bool, ttl time.Duration) (string, error) {
	if !v.dev {
		return "", ErrNotDevMode
	}
	display, err := protocol.CleanDisplayName(name)
	if err != nil {
		return "", err
	}
	sub := DevUserID(display)
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

// DevUserID returns the user id a dev login as display name gets: stable
// (the same name always gets the same id, whatever its case), ASCII, and
// a valid user id. display is a cleaned display name
// (protocol.CleanDisplayName).
//
//   - A name made only of ASCII letters, digits, '-', '_' and '.' is
//     lowercased: "Alice" and "alice" are both "alice".
//   - Any other name is lowercased, decomposed (NFKD) with its combining
//     marks dropped, every run of characters other than a-z and 0-9
//     becomes one '-' (trimmed at the ends, at most 40 bytes), and a '-'
//     and six hex digits of the SHA-256 of the lowercased name follow, so
//     that names that read alike stay apart: "Zoë Smith" is
//     "zoe-smith-" plus its digits, "Alice Smith" "alice-smith-" plus
//     others. A name with nothing left ("山田") is "u-" plus the digits.
func DevUserID(display string) string {
	if isDevASCII(display) {
		return strings.ToLower(display)
	}
	lower := strings.ToLower(display)
	sum := sha256.Sum256([]byte(lower))
	suffix := hex.EncodeToString(sum[:3])
	if slug := devSlug(lower); slug != "" {
		return slug + "-" + suffix
	}
	return "u-" + suffix
}

// devSlug transliterates s as far as ASCII letters and digits go.
func devSlug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue // the accent of an é
		case 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		case 'A' <= r && r <= 'Z': // NFKD of a lowercased rune can give one (ℌ)
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(unicode.ToLower(r))
		default:
			dash = true
		}
		if b.Len() >= maxDevSlug {
			break
		}
	}
	return strings.TrimRight(b.String()[:min(b.Len(), maxDevSlug)], "-")
}

// isDevASCII reports whether s is made only of the bytes a dev name kept
// as typed (lowercased) before display names: ASCII letters, digits, '-',
// '_' and '.'. It looks at bytes, before any lowercasing: strings.ToLower
// maps some non-ASCII runes (the Kelvin sign) onto ASCII letters.
func isDevASCII(s string) bool {
	if s == "" || len(s) > MaxDevNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !devNameByte(s[i]) {
			return false
		}
	}
	return true
}

func devNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}
