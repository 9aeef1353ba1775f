package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
)

// maxNumericDate is the latest NumericDate a token may carry: the end of
// year 9999, in Unix seconds. Larger values overflow time.Time arithmetic.
const maxNumericDate = 253402300799

var (
	errNoSubject  = errors.New("auth: token has no sub")
	errBadSubject = errors.New("auth: token sub is not a valid user id")
	errBadDate    = errors.New("auth: token exp, nbf or iat is not a JSON number from 0 to 253402300799")
	errNotObject  = errors.New("auth: token payload is not a JSON object")
)

// claims is the token payload Verify reads.
type claims struct {
	jwt.RegisteredClaims
	Name  string   `json:"name,omitempty"`
	Rooms []string `json:"rooms"`
	Admin bool     `json:"admin,omitempty"`
}

// UnmarshalJSON decodes a token payload, checking each date claim as it
// comes. jwt.NumericDate alone also takes a string holding a number
// ("exp":"9999999999") and null; RFC 7519 allows only a number. Claim
// names are matched exactly, as RFC 7519 compares them: encoding/json
// matches keys to fields case-insensitively, with Unicode folding, and
// lets the last of two win, so "ſub" (U+017F) passed for "sub" and
// "Admin" for "admin", and an issuer that signs claims a user names could
// be made to sign another user's id or an admin's rights. A claim of
// ours that comes twice is refused (RFC 7519 allows refusing); other
// claims are ignored.
func (c *claims) UnmarshalJSON(b []byte) error {
	var w struct {
		Issuer    string
		Subject   string
		Audience  jwt.ClaimStrings
		ExpiresAt strictDate
		NotBefore strictDate
		IssuedAt  strictDate
		ID        string
		Name      string
		Rooms     []string
		Admin     bool
	}
	fields := map[string]any{"iss": &w.Issuer, "sub": &w.Subject, "aud": &w.Audience, "exp": &w.ExpiresAt,
		"nbf": &w.NotBefore, "iat": &w.IssuedAt, "jti": &w.ID, "name": &w.Name, "rooms": &w.Rooms, "admin": &w.Admin}
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errNotObject
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		dst, ours := fields[key]
		if !ours {
			continue
		}
		if seen[key] {
			return fmt.Errorf("auth: token has claim %q twice", key)
		}
		seen[key] = true
		if err := json.Unmarshal(raw, dst); err != nil {
			return err
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return errNotObject
	}
	*c = claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: w.Issuer, Subject: w.Subject, Audience: w.Audience,
			ExpiresAt: w.ExpiresAt.d, NotBefore: w.NotBefore.d, IssuedAt: w.IssuedAt.d, ID: w.ID},
		Name: w.Name, Rooms: w.Rooms, Admin: w.Admin,
	}
	return nil
}

// strictDate is a NumericDate claim that must be a JSON number from 0 to
// maxNumericDate (null is refused too: encoding/json hands it to
// UnmarshalJSON like any value).
type strictDate struct{ d *jwt.NumericDate }

// UnmarshalJSON reads v as jwt.NumericDate does (seconds, the fraction
// kept to jwt.TimePrecision), after checking it.
func (s *strictDate) UnmarshalJSON(v []byte) error {
	f, ok := numericDate(v)
	if !ok {
		return errBadDate
	}
	secs, frac := math.Modf(f)
	s.d = jwt.NewNumericDate(time.Unix(int64(secs), int64(frac*1e9)))
	return nil
}

// numericDate returns v's value if it is a JSON number from 0 to
// maxNumericDate.
func numericDate(v []byte) (float64, bool) {
	if len(v) == 0 || v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return 0, false
	}
	// encoding/json has checked that v is a JSON value; one that starts
	// so is a number, whose syntax ParseFloat takes. Past float64's
	// range it fails.
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, false
	}
	return f, f >= 0 && f <= maxNumericDate
}

// Validate is called by the parser, after the signature checks out, with
// the registered claims' own checks. sub must be a valid user id
// (protocol.ValidUser): printable, at most protocol.MaxUserLen bytes, no
// space, control, format or bidi rune. RFC 8725 section 3.10: a signed
// claim is still input, and sub ends up in logs, room names and screens.
func (c *claims) Validate() error {
	if c.Subject == "" {
		return errNoSubject
	}
	if protocol.ValidUser(c.Subject) != nil {
		return errBadSubject
	}
	return nil
}
