// Package files is file and image sharing (issue 11): it stores what users
// upload to a room, checks it, makes thumbnails, answers downloads for
// those who may read the room, and removes files with the messages that
// carry them. It knows nothing of HTTP; transports/files serves it.
//
// # Contract
//
//   - Put streams an upload to Storage. The uploader must be allowed to
//     write to the room (Authorizer.CanWrite); per user there is a rate
//     (rate_limited, on one node) and a quota of bytes stored (too_large,
//     across nodes: it is read from the bucket). A file past MaxSize, or
//     past what is left of the quota, is too_large, and nothing of it
//     stays in the bucket.
//   - The type is sniffed from the bytes (Sniff), never taken from the
//     client. Only PNG, JPEG, GIF and WebP display inline, and only once
//     their header decodes; they get their dimensions and a thumbnail
//     (fit in ThumbSize², JPEG, or PNG when transparent). Every other
//     file is an attachment with a type from a short list (PDF, plain
//     text, zip, gzip) or application/octet-stream: HTML, SVG and
//     scripts are octet-stream.
//   - An image is decoded only after its header says it is within
//     MaxSide per side and MaxPixels in all; a decompression bomb (a tiny
//     PNG that declares 100000×100000) is too_large without a pixel
//     decoded. An image that does not decode is bad_request.
//   - Ids are 128 random bits in base64url. Open answers only those who
//     may read the room (forbidden), not_found for an unknown id.
//   - Names are cleaned (CleanName): last path element, NFC, no control,
//     format or bidi-control runes, at most 255 bytes.
//   - Lifetime: an upload is pending until Resolve attaches it to a
//     message (by the send's client id). Sweep removes uploads never sent
//     within Grace; Delete removes one file; Prune removes the files of a
//     room that no kept message references.
//
// # Storage
//
// Everything lives in one bucket (gocloud.dev/blob: a directory by
// default, S3 for clusters; see OpenStorage) under the layout in ids.go;
// the metadata is a JSON object per file, so every node that opens the
// bucket answers for every file. The metadata is written last and
// removed last: it is the commit point. Build with -tags nos3 to leave
// the S3 driver (the AWS SDK) out.
//
// # Costs
//
//   - Memory per upload: one 32 KiB buffer and a SHA-256 state; the file
//     is never held whole. On S3 the driver buffers one 5 MiB part.
//   - Memory per image: the header read (bufio, 4 KiB), then, for at most
//     Decoders images per node at once, the decoded image: 4 bytes a
//     pixel for 8-bit RGBA, 8 for 16-bit PNG, up to about 16 for a
//     progressive JPEG's coefficients, so up to 640 MB at the default
//     40 megapixels; lower MaxPixels to bound it. The thumbnail is at
//     most ThumbSize² × 4 bytes.
//   - Time: an upload costs one listing of the user's files (the quota),
//     the copy, and for an image one header read, one decode and one
//     bilinear scale, linear in pixels (about a second at 40 MP). The
//     caller bounds the upload's time through ctx and the body's
//     deadline.
//   - Resolve: one metadata read and write per file. Prune: one listing
//     of the room's files and one metadata read each. Sweep: one listing
//     of the pending uploads.
//
// It imports core/auth and core/protocol, never net/http or a transport.
package files
