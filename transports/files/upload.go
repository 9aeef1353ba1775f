package files

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// Bounds on what an upload may carry besides the file.
const (
	// MaxOverhead bounds the bytes of a multipart body that are not the
	// file's: the preamble, every part's headers, the room field and any
	// other field, before the file and again after it.
	MaxOverhead = 64 << 10
	// maxField bounds one field other than the file; maxParts bounds how
	// many parts an upload may have in all.
	maxField = 1 << 10
	maxParts = 16
)

// Upload serves POST /v1/files: a multipart/form-data body with a "room"
// field, then one "file" part, which it streams to the Service (see
// files.Service.Put for the checks and limits). The room field must come
// before the file part, as browsers' FormData and curl -F send them in
// the order added, so that permission is checked before the file is
// read. It answers 201 with the files.File and a Location header; an
// upload past the size cap or the quota is 413 too_large, past the rate
// 429 rate_limited; a body that is not such a form is 400, as is one
// whose headers and fields pass MaxOverhead. The form's head is held to
// the body deadline (httpx.BodyLimits), the file, once the checks have let
// it through, to UploadTimeout from its first byte (408 timeout after). An error answer closes the
// connection, so an unread body is not read.
func (h *Handler) Upload(w http.ResponseWriter, r *http.Request) {
	f, err := h.upload(w, r)
	if err != nil {
		w.Header().Set("Connection", "close")
		httpx.WriteError(w, err)
		return
	}
	w.Header().Set("Location", f.URL)
	httpx.WriteJSON(w, http.StatusCreated, f)
}

func (h *Handler) upload(w http.ResponseWriter, r *http.Request) (files.File, error) {
	ctx := r.Context()
	who := httpx.IdentityFrom(ctx)
	if who.User == "" {
		return files.File{}, errNoIdentity
	}
	if h.cfg.Gate != nil {
		if err := h.cfg.Gate(ctx, who); err != nil {
			return files.File{}, err
		}
	}
	body, mr, err := formReader(r)
	if err != nil {
		return files.File{}, err
	}
	room, part, err := firstFile(mr, body)
	if err != nil {
		return files.File{}, err
	}
	body.extend(h.svc.Config().MaxSize + MaxOverhead)
	// The form's head came within the body deadline (httpx.BodyLimits);
	// the file gets UploadTimeout from its first byte, once Put's checks
	// (the room, the rate, the quota) have passed: set before them, a
	// stalled upload that no check would let through held its connection
	// for UploadTimeout (five minutes) at no cost to its rate.
	var file io.Reader = part
	if h.cfg.UploadTimeout > 0 {
		file = &onFirstRead{r: part, first: func() {
			// Fails only on a writer without deadlines (a test recorder).
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.cfg.UploadTimeout))
		}}
	}
	f, err := h.svc.PutSized(ctx, who, room, part.FileName(), file, r.ContentLength)
	if errors.Is(err, files.ErrBody) {
		return files.File{}, readError(err, body)
	}
	if err != nil {
		return files.File{}, err
	}
	body.extend(MaxOverhead)
	if err := rest(mr, body); err != nil {
		_ = h.svc.Delete(ctx, f.ID) // never answered, so never sent
		return files.File{}, err
	}
	return f, nil
}

// formReader checks that r is multipart/form-data and returns a reader of
// its parts over a body bounded to MaxOverhead until extended.
func formReader(r *http.Request) (*budget, *multipart.Reader, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, nil, protocol.Errorf(protocol.CodeBadRequest, "send the file as multipart/form-data with a boundary")
	}
	body := &budget{r: r.Body, limit: MaxOverhead}
	return body, multipart.NewReader(body, params["boundary"]), nil
}

// firstFile reads the parts up to the file part: the room field (which
// must come first) and any small field, ignored.
func firstFile(mr *multipart.Reader, body *budget) (string, *multipart.Part, error) {
	room := ""
	for n := 0; n < maxParts; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			return "", nil, protocol.Errorf(protocol.CodeBadRequest, "the form has no file part")
		}
		if err != nil {
			return "", nil, readError(err, body)
		}
		switch {
		case p.FormName() == "file":
			if room == "" {
				return "", nil, protocol.Errorf(protocol.CodeBadRequest, "the form needs a room field, before the file part")
			}
			return room, p, nil
		case p.FileName() != "":
			return "", nil, protocol.Errorf(protocol.CodeBadRequest, "the file part must be named \"file\"")
		case p.FormName() == "room":
			if room != "" {
				return "", nil, protocol.Errorf(protocol.CodeBadRequest, "the form has two room fields")
			}
			if room, err = field(p, protocol.MaxRoomLen, body); err != nil {
				return "", nil, err
			}
			if room == "" {
				return "", nil, protocol.Errorf(protocol.CodeBadRequest, "the room field is empty")
			}
		default:
			if _, err := field(p, maxField, body); err != nil {
				return "", nil, err
			}
		}
	}
	return "", nil, errManyParts
}

// rest reads what follows the file part: small fields only.
func rest(mr *multipart.Reader, body *budget) error {
	for n := 0; n < maxParts; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return readError(err, body)
		}
		if p.FormName() == "file" || p.FileName() != "" {
			return protocol.Errorf(protocol.CodeBadRequest, "an upload carries one file part; send each file on its own")
		}
		if _, err := field(p, maxField, body); err != nil {
			return err
		}
	}
	return errManyParts
}

var errManyParts = protocol.Errorf(protocol.CodeBadRequest, "the form has more than %d parts", maxParts)

// field reads a small form field of at most max bytes.
func field(p *multipart.Part, max int, body *budget) (string, error) {
	b, err := io.ReadAll(io.LimitReader(p, int64(max)+1))
	if err != nil {
		return "", readError(err, body)
	}
	if len(b) > max {
		return "", protocol.Errorf(protocol.CodeBadRequest, "the form field %q is longer than %d bytes", p.FormName(), max)
	}
	return string(b), nil
}

// readError is the answer to a failed read of the body.
func readError(err error, body *budget) error {
	switch {
	case body.over:
		return &protocol.Error{Code: protocol.CodeBadRequest,
			Message: fmt.Sprintf("the form's headers and fields pass %d bytes", MaxOverhead), Cause: err}
	case httpx.IsTimeout(err):
		return &protocol.Error{Code: protocol.CodeTimeout, Message: "the upload did not arrive in time", Cause: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: "the upload was cut short", Cause: err}
	}
	return &protocol.Error{Code: protocol.CodeBadRequest, Message: "the body is not a well-formed multipart form", Cause: err}
}

// budget reads the request body up to a limit that grows as the form is
// read: MaxOverhead for what precedes the file, then the file's cap, then
// MaxOverhead again. It bounds what mime/multipart reads for part headers
// (its own bound is 10 MiB). Owned by the handler goroutine.
type budget struct {
	r     io.Reader
	read  int64
	limit int64
	over  bool // the limit was reached
}

var errBudget = errors.New("transports/files: the form passes its size bound")

func (b *budget) Read(p []byte) (int, error) {
	if b.read >= b.limit {
		b.over = true
		return 0, errBudget
	}
	if left := b.limit - b.read; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// extend allows n more bytes from what was read so far.
func (b *budget) extend(n int64) { b.limit = b.read + n }

// onFirstRead calls first before its first read of r.
type onFirstRead struct {
	r     io.Reader
	first func() // nil once called
}

func (o *onFirstRead) Read(p []byte) (int, error) {
	if o.first != nil {
		o.first()
		o.first = nil
	}
	return o.r.Read(p)
}
