package files

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"

	"github.com/chatd/chatd/core/protocol"
)

// picture is what inspecting an image found: its size and its thumbnail.
type picture struct {
	width, height int
	thumb         []byte
	thumbType     string
}

// codec decodes one image format.
type codec struct {
	name         string
	decodeConfig func(io.Reader) (image.Config, error)
	decode       func(io.Reader) (image.Image, error)
}

// codecs are the formats that display inline, by sniffed type. Each is
// called directly, not through image.Decode's registry, so no other
// registered format is ever tried.
var codecs = map[string]codec{
	TypePNG:  {"PNG", png.DecodeConfig, png.Decode},
	TypeJPEG: {"JPEG", jpeg.DecodeConfig, jpeg.Decode},
	TypeGIF:  {"GIF", gif.DecodeConfig, gif.Decode},
	TypeWebP: {"WebP", webp.DecodeConfig, webp.Decode},
}

// inspect checks the stored image at key, of sniffed type typ, and makes
// its thumbnail. A JPEG's EXIF orientation turns the thumbnail and the
// dimensions, as browsers turn the image. It reads the header first (image.DecodeConfig, a few
// bytes to a few KiB) and refuses, too_large, an image whose declared
// size passes MaxSide or MaxPixels, before a single pixel is decoded: a
// decompression bomb costs a header read. Only then, holding one of the
// Decoders slots, does it decode the image. An image that does not decode
// is bad_request.
func (s *Service) inspect(ctx context.Context, key, typ string) (picture, error) {
	c := codecs[typ]
	r, err := s.store.Open(ctx, key)
	if err != nil {
		return picture{}, err
	}
	defer r.Close()
	orient := Orientation(1)
	if typ == TypeJPEG {
		orient = jpegOrientation(r)
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return picture{}, fmt.Errorf("files: rewind %s: %w", key, err)
		}
	}
	cfg, err := c.decodeConfig(bufio.NewReader(r))
	if err != nil {
		s.stats.badImages.Add(1)
		return picture{}, &protocol.Error{Code: protocol.CodeBadRequest,
			Message: fmt.Sprintf("the file starts like a %s image but its header does not decode", c.name), Cause: err}
	}
	if err := s.checkSize(cfg.Width, cfg.Height); err != nil {
		s.stats.badImages.Add(1)
		return picture{}, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return picture{}, fmt.Errorf("files: rewind %s: %w", key, err)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return picture{}, ctx.Err()
	}
	defer func() { <-s.sem }()
	s.stats.decodes.Add(1)
	img, err := c.decode(bufio.NewReader(r))
	if err != nil {
		s.stats.badImages.Add(1)
		return picture{}, &protocol.Error{Code: protocol.CodeBadRequest,
			Message: fmt.Sprintf("the %s image does not decode", c.name), Cause: err}
	}
	thumb, thumbType, err := s.thumbnail(img, orient)
	if err != nil {
		return picture{}, err
	}
	pic := picture{width: cfg.Width, height: cfg.Height, thumb: thumb, thumbType: thumbType}
	if orient.swaps() {
		pic.width, pic.height = pic.height, pic.width
	}
	return pic, nil
}

// checkSize refuses an image whose declared size is empty or passes the
// caps: too_large, since the file is fine, only too big to decode.
func (s *Service) checkSize(w, h int) error {
	if w <= 0 || h <= 0 {
		return protocol.Errorf(protocol.CodeBadRequest, "the image declares a size of %d×%d pixels", w, h)
	}
	if w > s.cfg.MaxSide || h > s.cfg.MaxSide || int64(w)*int64(h) > s.cfg.MaxPixels {
		return protocol.Errorf(protocol.CodeTooLarge,
			"the image is %d×%d pixels; the limit is %d pixels a side and %d in all", w, h, s.cfg.MaxSide, s.cfg.MaxPixels)
	}
	return nil
}

// thumbnail scales img to fit in ThumbSize × ThumbSize (never up), turns
// it as its EXIF orientation says, and encodes it: JPEG when it is
// opaque, PNG when it has transparency.
func (s *Service) thumbnail(img image.Image, orient Orientation) ([]byte, string, error) {
	b := img.Bounds()
	w, h := fit(b.Dx(), b.Dy(), s.cfg.ThumbSize)
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.BiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	dst = orient.apply(dst)
	var buf bytes.Buffer
	if dst.Opaque() {
		if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 82}); err != nil {
			return nil, "", fmt.Errorf("files: encode thumbnail: %w", err)
		}
		return buf.Bytes(), TypeJPEG, nil
	}
	if err := png.Encode(&buf, dst); err != nil {
		return nil, "", fmt.Errorf("files: encode thumbnail: %w", err)
	}
	return buf.Bytes(), TypePNG, nil
}

// fit returns the size of a w × h image scaled to fit in box × box,
// keeping its aspect ratio, never scaled up, at least 1 × 1.
func fit(w, h, box int) (int, int) {
	if w <= box && h <= box {
		return w, h
	}
	if w >= h {
		return box, max(1, int(int64(h)*int64(box)/int64(w)))
	}
	return max(1, int(int64(w)*int64(box)/int64(h))), box
}
