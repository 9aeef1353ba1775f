package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"golang.org/x/time/rate"

	"github.com/chatd/chatd/core/files"
)

// FilesConfig is where shared files go and what they may cost.
type FilesConfig struct {
	URL     string  // a gocloud.dev/blob bucket URL; "": <data>/files alone, off on a cluster
	MaxSize int64   // bytes per file; 0: files.DefaultMaxSize
	Quota   int64   // bytes stored per user; 0: files.DefaultQuota; negative: none
	Rate    float64 // uploads per second per user on a node; 0: files.DefaultRate; negative: none
}

func filesFlags(fs *flag.FlagSet, c *Config, envs map[string]string) {
	fs.StringVar(&c.Files.URL, "files", "", "where shared files are kept: a bucket URL, file:///dir or s3://bucket?region=...; "+
		"default <data>/files on one node; a cluster needs a store every node reaches, or file sharing is off (env CHAT_FILES)")
	envs["files"] = "CHAT_FILES"
	fs.Int64Var(&c.Files.MaxSize, "files-max-size", files.DefaultMaxSize, "largest file accepted, in bytes (env CHAT_FILES_MAX_SIZE)")
	envs["files-max-size"] = "CHAT_FILES_MAX_SIZE"
	fs.Int64Var(&c.Files.Quota, "files-quota", files.DefaultQuota, "bytes of files one user may keep; negative: no quota (env CHAT_FILES_QUOTA)")
	envs["files-quota"] = "CHAT_FILES_QUOTA"
	fs.Float64Var(&c.Files.Rate, "files-rate", float64(files.DefaultRate), "uploads per second one user may start on a node; negative: no limit (env CHAT_FILES_RATE)")
	envs["files-rate"] = "CHAT_FILES_RATE"
}

// openFiles opens the file store: --files, or a directory under --data
// on a node alone. A cluster without --files has no file sharing (nil),
// because a file one node keeps on its own disk is missing on the others.
func (m *Main) openFiles(ctx context.Context, clustered bool) (*files.Service, files.Storage, error) {
	c := m.Config.Files
	url := c.URL
	if url == "" {
		if clustered {
			m.log.Warn("file sharing is off: a cluster needs --files naming a store every node reaches (s3://..., or file:/// on a shared mount)")
			return nil, nil, nil
		}
		var err error
		if url, err = files.DirURL(filepath.Join(m.Config.Data, "files")); err != nil {
			return nil, nil, err
		}
	}
	store, err := files.OpenStorage(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("--files: %w", err)
	}
	svc := files.New(store, files.Config{MaxSize: c.MaxSize, Quota: c.Quota, Rate: rate.Limit(c.Rate)})
	return svc, store, nil
}

// sweepEvery is how often a node removes uploads never sent in a message.
const sweepEvery = time.Hour

// sweepFiles removes, every sweepEvery until ctx ends, the uploads that
// were never sent in a message. Several nodes may sweep one store.
func sweepFiles(ctx context.Context, svc *files.Service, log *slog.Logger) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := svc.Sweep(ctx); err != nil {
				log.Warn("files: sweep failed", "err", err)
			} else if n > 0 {
				log.Info("files: removed uploads never sent", "count", n)
			}
		}
	}
}
