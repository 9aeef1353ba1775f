package httpx

import (
	"context"
	"net/http"
	"strings"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Authenticator finds the identity behind a request.
type Authenticator struct {
	Verifier *auth.Verifier
	Tickets  *auth.Tickets
}

// Identify reads, in order, the Authorization bearer header, the ticket
// query parameter and the token query parameter. Browsers cannot set
// headers on WebSocket or EventSource, hence the query forms.
func (a *Authenticator) Identify(r *http.Request) (auth.Identity, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return auth.Identity{}, protocol.Errorf(protocol.CodeUnauthorized, "authorization header must be Bearer")
		}
		return a.Verifier.Verify(strings.TrimSpace(tok))
	}
	q := r.URL.Query()
	if t := q.Get("ticket"); t != "" {
		return a.Tickets.Redeem(t)
	}
	if t := q.Get("token"); t != "" {
		return a.Verifier.Verify(t)
	}
	return auth.Identity{}, protocol.Errorf(protocol.CodeUnauthorized, "no credentials: send a bearer token or a ticket")
}

type identityKey struct{}

// Require is middleware that rejects unauthenticated requests and puts the
// identity in the request context.
func (a *Authenticator) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Identify(r)
		if err != nil {
			WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// IdentityFrom returns the identity Require stored.
func IdentityFrom(ctx context.Context) auth.Identity {
	id, _ := ctx.Value(identityKey{}).(auth.Identity)
	return id
}
