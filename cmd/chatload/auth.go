package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenTTL is how long the tool's own tokens live: longer than any run.
const tokenTTL = 2 * time.Hour

// authority hands out bearer tokens: signed here with the server's HS256
// secret, or asked of a dev-mode server (POST /v1/dev/login).
type authority struct {
	base   string       // the server's URL without a trailing slash; static
	secret []byte       // HS256 secret; nil in dev mode; static
	http   *http.Client // for dev logins; static
	now    func() time.Time
}

// token returns a token for user id (ASCII, such as u00001, so that a
// dev login derives the same id), with admin: true when admin is set.
func (a *authority) token(ctx context.Context, user string, admin bool) (string, error) {
	if a.secret != nil {
		claims := jwt.MapClaims{"sub": user, "name": user, "exp": a.now().Add(tokenTTL).Unix()}
		if admin {
			claims["admin"] = true
		}
		return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
	}
	return a.devLogin(ctx, user, admin)
}

// devLogin asks a dev-mode server for a token.
func (a *authority) devLogin(ctx context.Context, user string, admin bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"name": user, "admin": admin})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/v1/dev/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("dev login: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusNotFound {
			hint = " (is the server running with a key? then give --jwt-secret)"
		}
		return "", fmt.Errorf("dev login: %s: %s%s", resp.Status, strings.TrimSpace(string(b)), hint)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("dev login: no token in %q", b)
	}
	return out.Token, nil
}
