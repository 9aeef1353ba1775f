package files

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// Config configures a Handler. The zero value is valid.
type Config struct {
	// UploadTimeout is how long a whole upload may take to arrive. It
	// replaces, for POST /v1/files only, the server's body deadline
	// (httpx.BodyLimits), which is sized for JSON bodies. 0:
	// DefaultUploadTimeout; negative: keep the server's deadline.
	UploadTimeout time.Duration
	// Gate, when set, is asked before each upload; an error refuses it
	// (feature_disabled, say, when the files flag is off for who or the
	// degradation level turns files off). nil: uploads are always on.
	// Downloads are never gated: files already sent stay readable.
	Gate func(ctx context.Context, who auth.Identity) error
}

// DefaultUploadTimeout bounds an upload: 25 MiB at 100 KiB/s, with room.
const DefaultUploadTimeout = 5 * time.Minute

// Handler serves uploads and downloads of a files.Service. It expects
// httpx's Authenticator.Require in front of it, and answers 401 to a
// request without an identity. Static after construction; safe for
// concurrent use.
type Handler struct {
	svc *files.Service
	cfg Config
}

// New returns a Handler for svc.
func New(svc *files.Service, cfg Config) *Handler {
	if svc == nil {
		panic("transports/files: New with a nil Service")
	}
	if cfg.UploadTimeout == 0 {
		cfg.UploadTimeout = DefaultUploadTimeout
	}
	return &Handler{svc: svc, cfg: cfg}
}

// Routes registers the endpoints on r, relative to /v1, which must
// authenticate (httpx.Authenticator.Require):
//
//	POST /files             Upload
//	GET  /files/{id}        Download (and HEAD)
//	GET  /files/{id}/thumb  Thumb (and HEAD)
func (h *Handler) Routes(r chi.Router) {
	r.Post("/files", h.Upload)
	r.Get("/files/{id}", h.Download)
	r.Head("/files/{id}", h.Download)
	r.Get("/files/{id}/thumb", h.Thumb)
	r.Head("/files/{id}/thumb", h.Thumb)
}

// errNoIdentity answers a request that reached the handler without one.
var errNoIdentity = protocol.Errorf(protocol.CodeUnauthorized, "no credentials: send Authorization: Bearer <token>")

// Download serves GET /v1/files/{id}: the file, to a user who may read the
// room it was sent to (403 otherwise, 404 for an unknown id). Only PNG,
// JPEG, GIF and WebP are inline; everything else is an attachment. Every
// answer carries nosniff and a sandboxing Content-Security-Policy, and
// ranges and conditional requests (If-None-Match, If-Modified-Since) are
// honoured. It ends when the body is sent or the client leaves.
func (h *Handler) Download(w http.ResponseWriter, r *http.Request) { h.serve(w, r, false) }

// Thumb serves GET /v1/files/{id}/thumb: an image's thumbnail, inline, on
// the same terms as Download; 404 for a file that has none.
func (h *Handler) Thumb(w http.ResponseWriter, r *http.Request) { h.serve(w, r, true) }

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, thumb bool) {
	who := httpx.IdentityFrom(r.Context())
	if who.User == "" {
		httpx.WriteError(w, errNoIdentity)
		return
	}
	d, err := h.svc.Open(r.Context(), who, r.PathValue("id"), thumb)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	defer d.Body.Close()
	hd := w.Header()
	hd.Set("Content-Type", d.Type)
	hd.Set("Content-Disposition", Disposition(d.Inline, d.Name))
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	hd.Set("ETag", d.ETag)
	http.ServeContent(w, r, "", d.Created, d.Body)
}
