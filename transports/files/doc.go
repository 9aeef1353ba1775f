// Package files serves core/files over HTTP: POST /v1/files (upload),
// GET /v1/files/{id} and GET /v1/files/{id}/thumb (download).
//
// Uploads are multipart/form-data with a room field, then one file part.
// The part is streamed to the Service as it arrives, never parsed into
// memory or a temporary file (no ParseMultipartForm): what is not the
// file (headers, fields) is bounded by MaxOverhead, the file by the
// Service's size cap and quota, the whole by UploadTimeout. Memory per
// upload: the Service's 32 KiB buffer plus mime/multipart's 4 KiB reader.
//
// Downloads go through http.ServeContent over a seekable blob reader, so
// ranges and conditional requests work, with Cache-Control private,
// immutable. Every download carries X-Content-Type-Options: nosniff and
// Content-Security-Policy: default-src 'none'; sandbox; only PNG, JPEG,
// GIF and WebP are inline, everything else an attachment, and the name
// travels as RFC 6266 filename*.
//
// Errors are written with httpx.WriteError, so the code-to-status table
// stays in httpx. It imports core/files, core/protocol and
// transports/httpx, never another transport.
package files
