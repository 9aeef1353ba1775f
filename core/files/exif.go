package files

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"image"
	"io"
)

// Orientation is an EXIF orientation, 1 to 8: how a camera says its JPEG
// must be turned for display. Browsers apply it to <img>, so the
// thumbnail and the dimensions a client lays out with must too.
type Orientation int

// maxSegments bounds how many JPEG segments are walked to find the EXIF
// one, which cameras put first or second.
const maxSegments = 16

// jpegOrientation returns the EXIF orientation of the JPEG r, or 1 when
// it has none or anything is amiss. It reads segment headers up to the
// first frame or scan, and at most one APP1 segment (64 KiB) into memory.
func jpegOrientation(r io.Reader) Orientation {
	br := bufio.NewReader(r)
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:2]); err != nil || hdr[0] != 0xff || hdr[1] != 0xd8 {
		return 1
	}
	for range maxSegments {
		if _, err := io.ReadFull(br, hdr[:4]); err != nil || hdr[0] != 0xff {
			return 1
		}
		marker, n := hdr[1], int(binary.BigEndian.Uint16(hdr[2:]))-2
		if marker == 0xda || marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc || n < 0 {
			return 1 // a frame or the scan: no EXIF before the image
		}
		if marker != 0xe1 {
			if _, err := br.Discard(n); err != nil {
				return 1
			}
			continue
		}
		seg := make([]byte, n)
		if _, err := io.ReadFull(br, seg); err != nil {
			return 1
		}
		if tiff, ok := bytes.CutPrefix(seg, []byte("Exif\x00\x00")); ok {
			return tiffOrientation(tiff)
		}
	}
	return 1
}

// tiffOrientation reads tag 0x0112 of IFD0 of a TIFF block.
func tiffOrientation(b []byte) Orientation {
	if len(b) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(b[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int64(bo.Uint32(b[4:]))
	if ifd < 8 || ifd+2 > int64(len(b)) {
		return 1
	}
	count := int64(bo.Uint16(b[ifd:]))
	for i := int64(0); i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > int64(len(b)) {
			return 1
		}
		if bo.Uint16(b[e:]) != 0x0112 {
			continue
		}
		// SHORT (3), one value, held in the entry itself.
		if bo.Uint16(b[e+2:]) != 3 || bo.Uint32(b[e+4:]) != 1 {
			return 1
		}
		if o := Orientation(bo.Uint16(b[e+8:])); o >= 1 && o <= 8 {
			return o
		}
		return 1
	}
	return 1
}

// swaps reports whether o turns the image a quarter, so its displayed
// width is its stored height.
func (o Orientation) swaps() bool { return o >= 5 && o <= 8 }

// apply returns src turned as o says (src itself for 1).
func (o Orientation) apply(src *image.NRGBA) *image.NRGBA {
	if o <= 1 || o > 8 {
		return src
	}
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	dw, dh := w, h
	if o.swaps() {
		dw, dh = h, w
	}
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			sx, sy := o.source(x, y, dw, dh)
			copy(dst.Pix[dst.PixOffset(x, y):][:4], src.Pix[src.PixOffset(sx, sy):][:4])
		}
	}
	return dst
}

// source maps a displayed pixel (x, y) of a dw × dh result to the stored
// pixel it shows.
func (o Orientation) source(x, y, dw, dh int) (int, int) {
	switch o {
	case 2: // mirrored
		return dw - 1 - x, y
	case 3: // upside down
		return dw - 1 - x, dh - 1 - y
	case 4: // upside down, mirrored
		return x, dh - 1 - y
	case 5: // transposed
		return y, x
	case 6: // stored turned left: turn right
		return y, dw - 1 - x
	case 7: // transversed
		return dh - 1 - y, dw - 1 - x
	case 8: // stored turned right: turn left
		return dh - 1 - y, x
	}
	return x, y
}
