package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	// file:// (a directory, the default, under --data); s3:// is
	// registered in s3.go.
	_ "gocloud.dev/blob/fileblob"
)

// Storage is where files, thumbnails and their metadata live: a flat
// key/value store of blobs. OpenStorage gives one on gocloud.dev/blob; any
// node that opens the same bucket can serve every file in it.
type Storage interface {
	// Create starts writing the blob at key. Nothing is visible at key
	// until the Writer's Close returns nil; Abort discards the write.
	Create(ctx context.Context, key, contentType string) (Writer, error)
	// Open reads the blob at key. A missing key is ErrNotFound.
	Open(ctx context.Context, key string) (Reader, error)
	// Delete removes the blob at key. A missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn with every key under prefix and its size, in
	// lexical order, until fn returns an error.
	List(ctx context.Context, prefix string, fn func(key string, size int64) error) error
	// Close releases the storage.
	Close() error
}

// Writer writes one blob. Close commits it; Abort, or a Close after
// Abort, discards it.
type Writer interface {
	io.Writer
	Close() error
	Abort()
}

// Reader reads one blob. It seeks, so downloads serve ranges.
type Reader interface {
	io.ReadSeekCloser
	Size() int64
}

// ErrNotFound is what Storage.Open returns for a key that holds nothing.
var ErrNotFound = errors.New("files: not found")

// OpenStorage opens the bucket at a gocloud.dev/blob URL: "file:///abs/dir"
// (see DirURL) or "s3://bucket?region=...".
func OpenStorage(ctx context.Context, bucketURL string) (Storage, error) {
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("files: open bucket: %w", err)
	}
	return &bucket{b: b}, nil
}

// DirURL returns the URL of a bucket in the directory dir (the file://
// driver), creating the directory if needed. Temporary files go next to
// the final ones (so a commit is a rename on one file system), and no
// attribute sidecar files are written: the metadata is ours.
func DirURL(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("files: %w", err)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "create_dir=1&no_tmp_dir=1&metadata=skip"}
	return u.String(), nil
}

// bucket is Storage on a gocloud.dev/blob Bucket. Static after
// construction; safe for concurrent use.
type bucket struct {
	b *blob.Bucket
}

// s3PartSize bounds what an s3blob upload buffers: one part of the
// minimum S3 size, sent one at a time. The file driver ignores both.
const s3PartSize = 5 << 20

func (s *bucket) Create(ctx context.Context, key, contentType string) (Writer, error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := s.b.NewWriter(ctx, key, &blob.WriterOptions{
		ContentType:    contentType,
		BufferSize:     s3PartSize,
		MaxConcurrency: 1,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("files: create %s: %w", key, err)
	}
	return &writer{w: w, cancel: cancel}, nil
}

func (s *bucket) Open(ctx context.Context, key string) (Reader, error) {
	r, err := s.b.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("files: open %s: %w", key, err)
	}
	return r, nil
}

func (s *bucket) Delete(ctx context.Context, key string) error {
	err := s.b.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("files: delete %s: %w", key, err)
	}
	return nil
}

func (s *bucket) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	it := s.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("files: list %s: %w", prefix, err)
		}
		if obj.IsDir {
			continue
		}
		if err := fn(obj.Key, obj.Size); err != nil {
			return err
		}
	}
}

func (s *bucket) Close() error { return s.b.Close() }

// writer is a blob.Writer whose context it can cancel, which is how
// gocloud aborts a write. Owned by the uploading goroutine.
type writer struct {
	w      *blob.Writer
	cancel context.CancelFunc
}

func (w *writer) Write(p []byte) (int, error) { return w.w.Write(p) }

func (w *writer) Close() error {
	defer w.cancel()
	return w.w.Close()
}

func (w *writer) Abort() {
	w.cancel()
	_ = w.w.Close()
}
