package files

import "strings"

// Disposition returns a Content-Disposition value (RFC 6266) for a file
// called name: "inline" or "attachment", then an ASCII fallback name in
// quotes (every rune outside printable ASCII, and '"', '\' and '%', as
// '_') and the exact name as RFC 8187 UTF-8 in filename*, which browsers
// prefer. Nothing of name can end the header or add a parameter.
func Disposition(inline bool, name string) string {
	var b strings.Builder
	if inline {
		b.WriteString("inline")
	} else {
		b.WriteString("attachment")
	}
	b.WriteString(`; filename="`)
	for _, r := range name {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			r = '_'
		}
		b.WriteRune(r)
	}
	b.WriteString(`"; filename*=UTF-8''`)
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		if c := name[i]; attrChar(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// attrChar reports whether c may stand unencoded in an RFC 8187 value.
func attrChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
