package files_test

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/files/filestest"
	"github.com/chatd/chatd/core/protocol"
)

var sniffSamples = []struct {
	data string
	want string
}{
	{string(filestest.PNG(4, 4, false)), files.TypePNG},
	{string(filestest.JPEG(4, 4)), files.TypeJPEG},
	{string(filestest.GIF(4, 4)), files.TypeGIF},
	{"GIF87a....", files.TypeGIF},
	{"RIFF\x10\x00\x00\x00WEBPVP8 ", files.TypeWebP},
	{"%PDF-1.4", files.TypePDF},
	{"PK\x03\x04rest", files.TypeZip},
	{"\x1f\x8b\x08\x00", files.TypeGzip},
	{"hello, world\n", files.TypeText},
	{"\xef\xbb\xbfwith a BOM", files.TypeText},
	{"Grüße, 世界", files.TypeText},
	{"", files.TypeBinary},
	{"<!DOCTYPE html><p>hi", files.TypeBinary},
	{"  \n<html>", files.TypeBinary},
	{"<svg onload=alert(1)>", files.TypeBinary},
	{"<?xml version='1.0'?>", files.TypeBinary},
	{"<b>bold</b>", files.TypeBinary},
	{"%!PS-Adobe-3.0", files.TypeBinary},
	{"BM not text", files.TypeBinary},
	{"ID3 a tune", files.TypeBinary},
	{"RIFF....WAVE", files.TypeBinary},
	{"\xfe\xff\x00h\x00i", files.TypeBinary},
	{"bad utf-8 \xff\xfe here", files.TypeBinary},
	{"\x00\x00\x00\x18ftypmp42", files.TypeBinary},
	{"MZ\x90\x00", files.TypeBinary},
	{"text\x00with a NUL", files.TypeBinary},
	{strings.Repeat("x", 34) + "LP and a zip? no", files.TypeBinary},
}

func TestSniff(t *testing.T) {
	webp, err := os.ReadFile("testdata/blue-purple-pink.lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	if got := files.Sniff(webp); got != files.TypeWebP {
		t.Errorf("Sniff(webp) = %q", got)
	}
	for _, s := range sniffSamples {
		got := files.Sniff([]byte(s.data))
		if got != s.want {
			t.Errorf("Sniff(%q) = %q; want %q", s.data, got, s.want)
		}
		if std := http.DetectContentType([]byte(s.data)); got != files.TypeBinary && got != std {
			t.Errorf("Sniff(%q) = %q; http.DetectContentType says %q", s.data, got, std)
		}
	}
	// Only the first SniffLen bytes count, and a rune cut there is fine.
	long := strings.Repeat("a", files.SniffLen-1) + "é" + "\x00"
	if got := files.Sniff([]byte(long)); got != files.TypeText {
		t.Errorf("Sniff(long text with a cut rune) = %q", got)
	}
}

// FuzzSniff checks that Sniff never names a type the standard sniffer
// would not: anything it does not recognise as one of its few types is
// application/octet-stream.
func FuzzSniff(f *testing.F) {
	for _, s := range sniffSamples {
		f.Add([]byte(s.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := files.Sniff(data)
		if got == files.TypeBinary {
			return
		}
		if std := http.DetectContentType(data); got != std {
			t.Fatalf("Sniff(%q) = %q; http.DetectContentType says %q", data, got, std)
		}
	})
}

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"photo.png", "photo.png"},
		{"C:\\Users\\eve\\report final.pdf", "report final.pdf"},
		{"../../etc/passwd", "passwd"},
		{"a/b/", "file"},
		{"..", "file"},
		{"", "file"},
		{"  spaced\t\tout  .txt ", "spaced out .txt"},
		{"evil\u202Egnp.exe", "evil_gnp.exe"},
		{"zero\u200Bwidth", "zero_width"},
		{"line\nbreak", "line break"},
		{"bell\x07", "bell_"},
		{"bad\xffutf8", "bad_utf8"},
		{"quote\"semi;colon:.txt", "quote_semi;colon_.txt"},
		{"cafe\u0301.txt", "café.txt"},
		{"...hidden", "hidden"},
		{"emoji 👍🏽.png", "emoji 👍🏽.png"},
		{strings.Repeat("é", 300) + ".jpeg", strings.Repeat("é", 125) + ".jpeg"},
	} {
		if got := files.CleanName(tc.in); got != tc.want {
			t.Errorf("CleanName(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzCleanName checks what CleanName promises for any input.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "C:\\a\\b", "\u202E", " . ", strings.Repeat("ab.", 200), "x\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := files.CleanName(in)
		switch {
		case got == "" || len(got) > files.MaxNameLen:
			t.Fatalf("CleanName(%q) = %q: length %d", in, got, len(got))
		case !utf8.ValidString(got):
			t.Fatalf("CleanName(%q) = %q: invalid UTF-8", in, got)
		case strings.ContainsAny(got, "/\\\"\x00\r\n"):
			t.Fatalf("CleanName(%q) = %q: a separator, quote or control", in, got)
		case got != strings.Trim(got, " ."), got == "..":
			t.Fatalf("CleanName(%q) = %q: untrimmed", in, got)
		case files.CleanName(got) != got:
			t.Fatalf("CleanName is not idempotent on %q: %q then %q", in, got, files.CleanName(got))
		}
		for _, r := range got {
			if r != ' ' && !protocol.NameRune(r) {
				t.Fatalf("CleanName(%q) = %q: rune %U", in, got, r)
			}
		}
	})
}
