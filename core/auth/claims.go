package auth

import (
	"encoding/json"
	"errors"
	"strings"

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
)

// dateClaims are the NumericDate claims (RFC 7519 section 2): each, when
// present, must be a JSON number from 0 to maxNumericDate.
var dateClaims = []string{"exp", "nbf", "iat"}

// claims is the token payload Verify reads.
type claims struct {
	jwt.RegisteredClaims
	Name  string   `json:"name,omitempty"`
	Rooms []string `json:"rooms"`
	Admin bool     `json:"admin,omitempty"`
}

// UnmarshalJSON decodes a token payload after checking its date claims.
// jwt.NumericDate alone also takes a string holding a number
// ("exp":"9999999999") and null; RFC 7519 allows only a number. Keys are
// matched case-insensitively, as encoding/json matches them to fields, so
// "EXP" cannot slip past.
func (c *claims) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for k, v := range raw {
		for _, name := range dateClaims {
			if strings.EqualFold(k, name) && !numericDate(v) {
				return errBadDate
			}
		}
	}
	type plain claims // plain has no UnmarshalJSON, so this does not recurse.
	return json.Unmarshal(b, (*plain)(c))
}

// numericDate reports whether v is a JSON number from 0 to maxNumericDate.
func numericDate(v json.RawMessage) bool {
	if len(v) == 0 || v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return false
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return false
	}
	return f >= 0 && f <= maxNumericDate
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
