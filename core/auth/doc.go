// Package auth turns credentials into an Identity and answers whether that
// identity may use a room.
//
// It owns three things:
//
//   - Verifier checks a JWT (the contract's "Identity" section). The
//     algorithm is pinned by configuration, never read from the token
//     header: an HMAC secret means HS256; a PEM public key means RS256,
//     ES256 (ES384/ES512 for P-384/P-521 keys) or EdDSA, by key type. exp
//     and sub are required; sub must be a valid user id
//     (protocol.ValidUser) and exp, nbf and iat must be JSON numbers. iss
//     and aud are checked when configured, and DefaultLeeway (30 s) of
//     clock skew is allowed. With no key configured the Verifier is in dev
//     mode: it makes a random secret and IssueDev signs tokens for POST
//     /v1/dev/login, for any display name, with a stable ASCII user id
//     derived from it (DevUserID).
//   - Tickets issues and redeems the short-lived, stateless tickets of
//     POST /v1/ticket, used as ?ticket= on the streaming endpoints so that
//     long-lived JWTs stay out of URLs. A cluster must share the ticket key.
//   - Identity.CanAccess applies the room rules: the rooms claim (exact
//     names, or prefixes ending in "*") and the dm:<a>:<b> rule.
//
// Every error a client may see is a *protocol.Error with code
// unauthorized, token_expired, forbidden or bad_request. token_expired is
// used only when expiry is the sole fault, so a client that refreshes and
// retries can succeed. Messages are fixed phrases and never contain the
// token or ticket; the underlying cause, for the log, is in Error.Cause.
//
// The package reads no HTTP headers or query strings: transports extract
// the credential and hand over a string. It imports only the standard
// library, core/protocol, golang-jwt/jwt/v5 and x/text/unicode/norm (dev
// ids transliterate display names), and must not import net/http.
package auth
