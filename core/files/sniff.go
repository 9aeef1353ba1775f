package files

import (
	"bytes"
	"unicode/utf8"
)

// SniffLen is how many leading bytes decide a file's type.
const SniffLen = 512

// Content types a file may be served with. Only the four image types
// display inline, and only once their header decodes; everything else is
// an attachment.
const (
	TypePNG    = "image/png"
	TypeJPEG   = "image/jpeg"
	TypeGIF    = "image/gif"
	TypeWebP   = "image/webp"
	TypePDF    = "application/pdf"
	TypeText   = "text/plain; charset=utf-8"
	TypeZip    = "application/zip"
	TypeGzip   = "application/x-gzip"
	TypeBinary = "application/octet-stream"
)

// Inline reports whether a file of content type t displays in the page
// rather than downloading: PNG, JPEG, GIF and WebP only.
func Inline(t string) bool {
	switch t {
	case TypePNG, TypeJPEG, TypeGIF, TypeWebP:
		return true
	}
	return false
}

// Sniff returns the content type of a file from its first SniffLen bytes:
// one of the Type constants, TypeBinary for anything else. It never looks
// at a name or a client's claim.
//
// It follows the signatures of the WHATWG sniffing algorithm that
// http.DetectContentType implements (core may not import net/http), for
// the few types above: whenever it names a type other than TypeBinary,
// http.DetectContentType names the same one (the tests and the fuzz test
// check it). HTML, XML and SVG (text that starts with '<'), scripts and
// every type outside the list are TypeBinary.
func Sniff(head []byte) string {
	if len(head) > SniffLen {
		head = head[:SniffLen]
	}
	for _, s := range signatures {
		if bytes.HasPrefix(head, s.prefix) {
			return s.typ
		}
	}
	if len(head) >= 14 && string(head[:4]) == "RIFF" && string(head[8:14]) == "WEBPVP" {
		return TypeWebP
	}
	// What the standard table puts between the images and the archives
	// and could match an archive's bytes: the embedded OpenType font
	// signature, "LP" at offset 34.
	if len(head) >= 36 && string(head[34:36]) == "LP" {
		return TypeBinary
	}
	for _, s := range archives {
		if bytes.HasPrefix(head, s.prefix) {
			return s.typ
		}
	}
	if len(head) > 0 && isText(head) {
		return TypeText
	}
	return TypeBinary
}

type signature struct {
	prefix []byte
	typ    string
}

// signatures are matched at offset 0, before anything else; none of them
// can begin an HTML or XML document, which the standard table tries first.
var signatures = []signature{
	{[]byte("%PDF-"), TypePDF},
	{[]byte("GIF87a"), TypeGIF},
	{[]byte("GIF89a"), TypeGIF},
	{[]byte("\x89PNG\r\n\x1a\n"), TypePNG},
	{[]byte("\xff\xd8\xff"), TypeJPEG},
}

var archives = []signature{
	{[]byte("\x1f\x8b\x08"), TypeGzip},
	{[]byte("PK\x03\x04"), TypeZip},
}

// textPrefixes are the signatures of the standard table made only of text
// bytes that name a type other than plain text (PostScript, BMP, RIFF
// media, AIFF, MP3, fonts); text that starts with one is TypeBinary.
var textPrefixes = []string{"%!PS-Adobe-", "BM", "RIFF", "FORM", "ID3", "OTTO", "ttcf", "wOFF", "wOF2"}

// isText reports whether head is plain text: valid UTF-8 (a rune cut by
// the SniffLen limit aside), none of the bytes the standard calls binary,
// not markup (its first byte past white space is not '<') and no other
// type's signature.
func isText(head []byte) bool {
	i := 0
	for i < len(head) && isWS(head[i]) {
		i++
	}
	if i < len(head) && head[i] == '<' {
		return false
	}
	for _, b := range head {
		if b <= 0x08 || b == 0x0b || 0x0e <= b && b <= 0x1a || 0x1c <= b && b <= 0x1f {
			return false
		}
	}
	for _, p := range textPrefixes {
		if bytes.HasPrefix(head, []byte(p)) {
			return false
		}
	}
	return validUTF8Head(head)
}

// validUTF8Head reports whether head is valid UTF-8, allowing a rune cut
// short at its end when head fills SniffLen.
func validUTF8Head(head []byte) bool {
	if utf8.Valid(head) {
		return true
	}
	if len(head) < SniffLen {
		return false
	}
	for cut := 1; cut <= utf8.UTFMax-1; cut++ {
		if utf8.Valid(head[:len(head)-cut]) && !utf8.FullRune(head[len(head)-cut:]) {
			return true
		}
	}
	return false
}

func isWS(b byte) bool {
	switch b {
	case '\t', '\n', '\x0c', '\r', ' ':
		return true
	}
	return false
}
