package auth

import (
	"crypto/rand"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
)

// DefaultLeeway is the clock skew allowed on exp and nbf when
// Config.Leeway is zero: 30 s. An expired token is thus accepted for at
// most 30 s after its exp, and a token for at most 30 s before its nbf.
// Keep it small: it only absorbs clock drift between issuer and server,
// and every second of it lengthens the life of a stolen token.
const DefaultLeeway = 30 * time.Second

// MaxTokenLen is the longest token Verify will parse, in bytes. Longer
// tokens are rejected as unauthorized before any decoding.
const MaxTokenLen = 8 << 10

// Config configures a Verifier. The zero value is valid: it selects dev
// mode.
type Config struct {
	// HMACSecret selects HS256 with this shared secret. Use at least 32
	// random bytes. Mutually exclusive with PublicKeyPEM.
	HMACSecret []byte
	// PublicKeyPEM selects RS256, ES256 (ES384, ES512 by curve) or EdDSA,
	// by the type of key it holds. PKIX "PUBLIC KEY", PKCS #1 "RSA PUBLIC
	// KEY" and "CERTIFICATE" blocks are accepted; only the first block is
	// read.
	PublicKeyPEM []byte
	// Issuer, if set, must equal the token's iss.
	Issuer string
	// Audience, if set, must be among the token's aud.
	Audience string
	// Leeway is the clock skew allowed on exp and nbf. Zero means
	// DefaultLeeway; negative means none.
	Leeway time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Verifier checks JWTs against one key and one algorithm, both fixed by
// configuration. It is safe for concurrent use.
type Verifier struct {
	// Static after construction.
	key    any // []byte for HS256, else a crypto.PublicKey
	alg    string
	dev    bool
	issuer string
	aud    string
	now    func() time.Time
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for cfg. With neither HMACSecret nor
// PublicKeyPEM set it runs in dev mode, with a random 32-byte HS256 secret
// that lives as long as the Verifier. Setting both is an error, as is a
// key it cannot use.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{issuer: cfg.Issuer, aud: cfg.Audience, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	switch {
	case len(cfg.HMACSecret) > 0 && len(cfg.PublicKeyPEM) > 0:
		return nil, errors.New("auth: set either an HMAC secret or a public key, not both")
	case len(cfg.HMACSecret) > 0:
		v.key, v.alg = append([]byte(nil), cfg.HMACSecret...), AlgHS256
	case len(cfg.PublicKeyPEM) > 0:
		key, alg, err := parsePublicKeyPEM(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		v.key, v.alg = key, alg
	default:
		secret := make([]byte, 32)
		rand.Read(secret) // never fails: see crypto/rand.Read
		v.key, v.alg, v.dev = secret, AlgHS256, true
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	} else if leeway < 0 {
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(v.now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// DevMode reports whether v was built without a key and so signs its own
// tokens with a random secret (see IssueDev).
func (v *Verifier) DevMode() bool { return v.dev }

// Algorithm returns the one JWT algorithm v accepts: HS256, RS256, ES256,
// ES384, ES512 or EdDSA.
func (v *Verifier) Algorithm() string { return v.alg }

// Verify checks token's signature, algorithm and claims and returns the
// identity it carries. The algorithm is the configured one, never the
// header's (RFC 8725 section 3.1). exp and sub are required; iss and aud
// are checked when configured. exp, nbf and iat, when present, must be
// JSON numbers (RFC 7519 NumericDate) from 0 to the end of year 9999: a
// string or null is refused. sub must be a valid user id
// (protocol.ValidUser): 1 to protocol.MaxUserLen bytes of printable UTF-8
// with no space, control, format (Cf) or bidi-control rune. An expired but
// otherwise valid token gets code token_expired; every other failure gets
// unauthorized. Error messages never contain the token. The name claim
// becomes Identity.Name cleaned as a display name
// (protocol.CleanDisplayName); a name that is absent or not a valid
// display name is replaced by the sub, and does not refuse the token.
func (v *Verifier) Verify(token string) (Identity, error) {
	if token == "" {
		return Identity{}, protocol.Errorf(protocol.CodeUnauthorized, "missing token")
	}
	if len(token) > MaxTokenLen {
		return Identity{}, protocol.Errorf(protocol.CodeUnauthorized, "token too long")
	}
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyFunc); err != nil {
		return Identity{}, tokenError(err)
	}
	id := Identity{User: c.Subject, Name: c.Subject, Rooms: c.Rooms, Admin: c.Admin}
	if name, err := protocol.CleanDisplayName(c.Name); err == nil {
		id.Name = name // a name that is no display name (bidi, controls, too long) shows as the id
	}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	return id, nil
}

// keyFunc hands the parser the configured key. WithValidMethods has
// already pinned the algorithm; the check here is belt and braces. A
// header with crit is refused: it names extensions a recipient must
// understand or refuse the token (RFC 7515 section 4.1.11), such as
// RFC 7797's unencoded payload, and this verifier understands none.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if t.Method == nil || t.Method.Alg() != v.alg {
		return nil, errors.New("auth: unexpected signing method")
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, errCrit
	}
	return v.key, nil
}

// notOnlyExpired lists the failures that make a token unusable even after
// a refresh, so an expired token that also has one of them is unauthorized
// rather than token_expired.
var notOnlyExpired = []error{
	jwt.ErrTokenMalformed,
	jwt.ErrTokenUnverifiable,
	jwt.ErrTokenSignatureInvalid,
	jwt.ErrTokenRequiredClaimMissing,
	jwt.ErrTokenInvalidAudience,
	jwt.ErrTokenInvalidIssuer,
	jwt.ErrTokenNotValidYet,
	jwt.ErrTokenUsedBeforeIssued,
	jwt.ErrTokenInvalidSubject,
	jwt.ErrTokenInvalidId,
	jwt.ErrInvalidType,
	errNoSubject,
	errBadSubject,
}

// errCrit refuses a token whose header carries crit (keyFunc).
var errCrit = errors.New("auth: the token's header names critical extensions (crit)")

// tokenError maps a jwt parse error to a wire error. The message is a
// fixed phrase; the jwt error is kept as the cause, for the log.
func tokenError(err error) error {
	unauthorized := func(msg string) error {
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: msg, Cause: err}
	}
	switch {
	case errors.Is(err, errBadDate):
		return unauthorized("token exp, nbf or iat is not a valid date")
	case errors.Is(err, errCrit):
		return unauthorized("token header names critical extensions (crit), which this server does not support")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthorized("malformed token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return unauthorized("invalid token signature or algorithm")
	}
	for _, e := range notOnlyExpired {
		if errors.Is(err, e) {
			return unauthorized(claimsMessage(err))
		}
	}
	if errors.Is(err, jwt.ErrTokenExpired) {
		return &protocol.Error{Code: protocol.CodeTokenExpired, Message: "token expired", Cause: err}
	}
	return unauthorized("invalid token")
}

func claimsMessage(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token is missing a required claim"
	case errors.Is(err, errNoSubject):
		return "token has no subject"
	case errors.Is(err, errBadSubject):
		return "token subject is not a valid user id"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token issuer not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token audience not accepted"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	}
	return "invalid token claims"
}
