package files

import (
	"bytes"
	"image"
	"testing"

	"github.com/chatd/chatd/core/files/filestest"
)

func TestJPEGOrientation(t *testing.T) {
	jpg := filestest.JPEG(8, 8)
	for o := uint16(1); o <= 8; o++ {
		if got := jpegOrientation(bytes.NewReader(filestest.WithOrientation(jpg, o))); got != Orientation(o) {
			t.Errorf("orientation %d read as %d", o, got)
		}
	}
	for _, b := range [][]byte{jpg, nil, []byte("\xff\xd8"), filestest.WithOrientation(jpg, 9), filestest.PNG(2, 2, false)} {
		if got := jpegOrientation(bytes.NewReader(b)); got != 1 {
			t.Errorf("jpegOrientation(%.20q) = %d; want 1", b, got)
		}
	}
}

// TestOrientationApply turns a 3 × 2 image whose pixels are numbered and
// checks where the stored top-left pixel (0) and top-right pixel (2)
// land for each orientation.
func TestOrientationApply(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	for i := range 6 {
		src.Pix[4*i] = uint8(i)
	}
	// Displayed rows, top to bottom, of the numbered pixels.
	want := map[Orientation][]uint8{
		1: {0, 1, 2, 3, 4, 5},
		2: {2, 1, 0, 5, 4, 3},
		3: {5, 4, 3, 2, 1, 0},
		4: {3, 4, 5, 0, 1, 2},
		5: {0, 3, 1, 4, 2, 5},
		6: {3, 0, 4, 1, 5, 2},
		7: {5, 2, 4, 1, 3, 0},
		8: {2, 5, 1, 4, 0, 3},
	}
	for o, w := range want {
		dst := o.apply(src)
		got := make([]uint8, 0, 6)
		for i := 0; i < len(dst.Pix); i += 4 {
			got = append(got, dst.Pix[i])
		}
		if !bytes.Equal(got, w) || (o.swaps() != (dst.Bounds().Dx() == 2)) {
			t.Errorf("orientation %d: %v (%v); want %v", o, got, dst.Bounds(), w)
		}
	}
}

// FuzzJPEGOrientation: any bytes give an orientation from 1 to 8, without
// a panic.
func FuzzJPEGOrientation(f *testing.F) {
	jpg := filestest.JPEG(4, 4)
	f.Add(jpg)
	f.Add(filestest.WithOrientation(jpg, 6))
	f.Add([]byte("\xff\xd8\xff\xe1\x00\x10Exif\x00\x00II*\x00\x08\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := jpegOrientation(bytes.NewReader(b)); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}
