package auth

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// decodeTicketPayload decodes a ticket's payload into p. A payload is
// what Issue wrote, json.Marshal's form of a ticketPayload, and is read
// by decodeTicket without encoding/json when it has exactly that form and
// its strings need no unescaping; anything else goes to json.Unmarshal.
// In a reconnect storm, where every ticket is new to the node, decoding
// the payload with encoding/json took 4% of the node's CPU (its
// reflection, and the stack its recursion grows on each new connection's
// goroutine).
func decodeTicketPayload(b []byte, p *ticketPayload) error {
	if decodeTicket(b, p) {
		return nil
	}
	*p = ticketPayload{}
	return json.Unmarshal(b, p)
}

// decodeTicket reads
//
//	{"u":S[,"n":S],"r":null|[S,...][,"a":true][,"e":N],"x":N}
//
// into p, where S is a string with no escape, control character or
// invalid UTF-8, and N an integer as strconv writes it. It reports false,
// leaving p in any state, for anything else.
func decodeTicket(b []byte, p *ticketPayload) bool {
	d := ticketDecoder{b: b}
	var ok bool
	if !d.lit(`{"u":`) {
		return false
	}
	if p.User, ok = d.str(); !ok {
		return false
	}
	if d.lit(`,"n":`) {
		if p.Name, ok = d.str(); !ok {
			return false
		}
	}
	if !d.lit(`,"r":`) {
		return false
	}
	if !d.lit("null") {
		if !d.lit("[") {
			return false
		}
		p.Rooms = []string{}
		for !d.lit("]") {
			if len(p.Rooms) > 0 && !d.lit(",") {
				return false
			}
			room, ok := d.str()
			if !ok {
				return false
			}
			p.Rooms = append(p.Rooms, room)
		}
	}
	if d.lit(`,"a":true`) {
		p.Admin = true
	}
	if d.lit(`,"e":`) {
		if p.Expires, ok = d.int(); !ok {
			return false
		}
	}
	if !d.lit(`,"x":`) {
		return false
	}
	if p.Until, ok = d.int(); !ok {
		return false
	}
	return d.lit("}") && d.i == len(d.b)
}

// ticketDecoder walks a payload for decodeTicket.
type ticketDecoder struct {
	b []byte
	i int
}

// lit consumes s if the input goes on with it.
func (d *ticketDecoder) lit(s string) bool {
	if !bytes.HasPrefix(d.b[d.i:], []byte(s)) {
		return false
	}
	d.i += len(s)
	return true
}

// str consumes a string that needs no unescaping.
func (d *ticketDecoder) str() (string, bool) {
	if !d.lit(`"`) {
		return "", false
	}
	rest := d.b[d.i:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return "", false
	}
	v := rest[:end]
	for _, c := range v {
		if c < 0x20 || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(v) {
		return "", false
	}
	d.i += end + 1
	return string(v), true
}

// int consumes an integer in JSON's form (no leading zeros, no plus).
func (d *ticketDecoder) int() (int64, bool) {
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if n := d.i - digits; n == 0 || n > 1 && d.b[digits] == '0' {
		return 0, false
	}
	v, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	return v, err == nil
}
