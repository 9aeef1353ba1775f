package protocol

import (
	"bytes"
	"math"
	"slices"
	"unicode/utf8"
)

// DecodeFrameFast decodes a server frame, appending to dst, without
// reflection when it has the plain shape the server writes: an envelope,
// or an array of them, whose members are known keys with unescaped
// strings, unsigned integers and booleans. It reports false for anything
// else (escapes, nulls, nested values, unknown keys, signs, fractions,
// invalid UTF-8, odd syntax), and the caller then decodes with
// encoding/json, so a frame always decodes to what encoding/json makes of
// it. Messages (without files), edits, deletes, acks, joined, receipts,
// presence, typing and control envelopes take the fast path.
//
// A client receives every envelope of every room it follows, so this is
// where a busy client (or the load tool's thousands) spends its time.
// Each envelope starts from zero; on false, dst's array past its length
// may have been written.
func DecodeFrameFast(dst []Envelope, data []byte) ([]Envelope, bool) {
	return DecodeFrameFastWith(dst, data, FastOptions{})
}

// FastOptions change what the fast decoders make of some fields.
type FastOptions struct {
	// CountReads leaves a batched receipt's read positions undecoded:
	// Reads stays nil and Count holds how many positions the "reads"
	// object carried (its entries are still checked). For a reader that
	// only counts them, the load tool: building each receipt's map was
	// half of its decoding and an eighth of its CPU in the chat at 10k.
	// A user named twice counts twice (the server names each once). An
	// envelope with both "reads" and "count" is refused; a caller's
	// encoding/json fallback then applies CountReads.
	CountReads bool
	// CountChanges leaves a presence envelope's changes undecoded:
	// Changes holds as many entries as the "changes" list carried (each
	// still checked), all of them zero, in an array shared, read-only, by
	// every envelope so decoded (see BlankChanges). For a reader that only
	// counts them, the load tool: in a reconnect storm of 10,000 clients in
	// rooms of 100, each client hears of about a hundred others coming
	// back, and building those entries' strings was a seventh of its CPU
	// in the storm's first 2 s.
	CountChanges bool
}

// CountChanges makes decoded envelopes what FastOptions.CountChanges
// makes of them: an envelope with Changes gets as many blank ones.
func CountChanges(envs []Envelope) {
	for i := range envs {
		if envs[i].Changes != nil {
			envs[i].Changes = BlankChanges(len(envs[i].Changes))
		}
	}
}

// blankChanges backs the change lists of FastOptions.CountChanges.
var blankChanges [256]PresenceChange

// BlankChanges returns n zero changes: a slice of a shared array, which
// must not be written (its capacity is n, so append copies), or a new
// one past the array's 256.
func BlankChanges(n int) []PresenceChange {
	if n <= len(blankChanges) {
		return blankChanges[:n:n]
	}
	return make([]PresenceChange, n)
}

// CountReads makes decoded envelopes what FastOptions.CountReads makes of
// them: an envelope with Reads gets Count, how many, and Reads nil.
func CountReads(envs []Envelope) {
	for i := range envs {
		if envs[i].Reads != nil {
			n := len(envs[i].Reads)
			envs[i].Count, envs[i].Reads = &n, nil
		}
	}
}

// DecodeFrameFastWith is DecodeFrameFast with options.
func DecodeFrameFastWith(dst []Envelope, data []byte, o FastOptions) ([]Envelope, bool) {
	p := fastParser{b: data, countReads: o.CountReads, countChanges: o.CountChanges}
	p.ws()
	if p.peek() != '[' {
		dst = append(dst, Envelope{})
		if !p.envelope(&dst[len(dst)-1]) || !p.end() {
			return nil, false
		}
		return dst, true
	}
	list, ok := p.list(dst)
	return list, ok && p.end()
}

// PollAnswer is the body of a poll answer.
type PollAnswer struct {
	Events  []Envelope `json:"events"`
	Cursor  string     `json:"cursor"`
	Control *Envelope  `json:"control"` // the offer now, when the server says
	// ControlTag names Control's content, for the next poll's
	// control_tag=: an answer to a poll that names the control now
	// leaves Control out.
	ControlTag string `json:"control_tag,omitempty"`
}

// DecodePollAnswerFast decodes a poll answer as DecodeFrameFast decodes a
// frame: an object with "events" (a list DecodeFrameFast takes), "cursor"
// (an unescaped string), "control" (null, or an envelope DecodeFrameFast
// takes) and "control_tag" (an unescaped string), each once at most. It
// reports false for anything else.
func DecodePollAnswerFast(data []byte) (PollAnswer, bool) {
	return DecodePollAnswerFastInto(nil, data, FastOptions{})
}

// DecodePollAnswerFastInto is DecodePollAnswerFast with options for its
// events, appending them to dst, as DecodeFrameFastWith appends a
// frame's: a poll client that keeps its array from answer to answer
// decodes without a new one each time. On false, dst's array past its
// length may have been written.
func DecodePollAnswerFastInto(dst []Envelope, data []byte, o FastOptions) (PollAnswer, bool) {
	var a PollAnswer
	p := fastParser{b: data, countReads: o.CountReads, countChanges: o.CountChanges}
	p.ws()
	var events, cursor, control, tag bool // seen: a repeated key goes to encoding/json
	ok := p.object(func(key []byte) bool {
		switch string(key) {
		case "events":
			if events || p.peek() != '[' {
				return false
			}
			events = true
			var ok bool
			a.Events, ok = p.list(dst)
			return ok
		case "cursor":
			if cursor || !p.str(&a.Cursor) {
				return false
			}
			cursor = true
			return true
		case "control":
			if control {
				return false
			}
			control = true
			if p.null() {
				return true
			}
			a.Control = new(Envelope)
			// The options are for the events: the control envelope
			// decodes as encoding/json alone would decode it.
			reads, changes := p.countReads, p.countChanges
			p.countReads, p.countChanges = false, false
			ok := p.envelope(a.Control)
			p.countReads, p.countChanges = reads, changes
			return ok
		case "control_tag":
			if tag || !p.str(&a.ControlTag) {
				return false
			}
			tag = true
			return true
		}
		return false
	})
	return a, ok && p.end()
}

// list reads an array of envelopes.
func (p *fastParser) list(list []Envelope) ([]Envelope, bool) {
	// Each envelope has one "type" (a file's too, so this may overcount):
	// make room once rather than grow by doubling, which copies
	// everything decoded so far each time.
	if n := min(bytes.Count(p.b[p.i:], typeKey), maxListHint); cap(list)-len(list) < n {
		list = slices.Grow(list, n)
	}
	ok := p.array(func() bool {
		list = append(list, Envelope{})
		return p.envelope(&list[len(list)-1])
	})
	if !ok {
		return nil, false
	}
	return list, true
}

// array reads an array, elem reading each element.
func (p *fastParser) array(elem func() bool) bool {
	if p.next() != '[' {
		return false
	}
	p.ws()
	if p.peek() == ']' {
		p.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		p.ws()
		switch p.next() {
		case ',':
			p.ws()
		case ']':
			return true
		default:
			return false
		}
	}
}

// typeKey is the key every envelope has; maxListHint bounds the room
// made for a list from counting it.
var typeKey = []byte(`"type":`)

const maxListHint = 1024

// skip moves past the JSON value that starts here, checking its
// structure (brackets and strings; encoding/json checks the rest of a
// value skip is used on). depth bounds nesting.
func (p *fastParser) skip(depth int) bool {
	if depth > 64 {
		return false
	}
	switch p.peek() {
	case '"':
		return p.skipString()
	case '{', '[':
		closer := byte('}')
		if p.next() == '[' {
			closer = ']'
		}
		p.ws()
		if p.peek() == closer {
			p.i++
			return true
		}
		for {
			if closer == '}' {
				if !p.skipString() {
					return false
				}
				p.ws()
				if p.next() != ':' {
					return false
				}
				p.ws()
			}
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			switch p.next() {
			case ',':
				p.ws()
			case closer:
				return true
			default:
				return false
			}
		}
	}
	// A literal or a number: up to the next delimiter.
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return p.i > start
		}
		p.i++
	}
	return p.i > start
}

// skipString moves past a string, escapes included.
func (p *fastParser) skipString() bool {
	if p.next() != '"' {
		return false
	}
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
			continue
		case '"':
			p.i++
			return true
		}
		p.i++
	}
	return false
}

// null reads the literal null, if it is next.
func (p *fastParser) null() bool {
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

// fastParser reads JSON from b at i.
type fastParser struct {
	b            []byte
	i            int
	countReads   bool // FastOptions.CountReads; static
	countChanges bool // FastOptions.CountChanges; static
	counted      bool // the envelope being read has its Count from "reads"
}

func (p *fastParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *fastParser) next() byte {
	c := p.peek()
	p.i++
	return c
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// end reports whether only whitespace is left.
func (p *fastParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// envelope reads one flat object into e.
func (p *fastParser) envelope(e *Envelope) bool {
	p.counted = false
	return p.object(func(key []byte) bool { return p.member(e, key) })
}

// object reads an object whose keys are unescaped strings, value reading
// each key's value.
func (p *fastParser) object(value func(key []byte) bool) bool {
	if p.next() != '{' {
		return false
	}
	p.ws()
	if p.peek() == '}' {
		p.i++
		return true
	}
	for {
		key, ok := p.rawString()
		if !ok {
			return false
		}
		p.ws()
		if p.next() != ':' {
			return false
		}
		p.ws()
		if !value(key) {
			return false
		}
		p.ws()
		switch p.next() {
		case ',':
			p.ws()
		case '}':
			return true
		default:
			return false
		}
	}
}

// member reads the value of key into e. Unknown keys, and keys of maps
// and lists, are left to encoding/json.
func (p *fastParser) member(e *Envelope, key []byte) bool {
	switch string(key) {
	case "type":
		s, ok := p.rawString()
		e.Type = typeName(s)
		return ok
	case "ref":
		return p.str(&e.Ref)
	case "room":
		return p.str(&e.Room)
	case "id":
		return p.str(&e.ID)
	case "text":
		return p.str(&e.Text)
	case "token":
		return p.str(&e.Token)
	case "from":
		return p.str(&e.From)
	case "name":
		return p.str(&e.Name)
	case "user":
		return p.str(&e.User)
	case "code":
		return p.str(&e.Code)
	case "message":
		return p.str(&e.Message)
	case "reason":
		return p.str(&e.Reason)
	case "seq":
		return p.uint(&e.Seq)
	case "target":
		return p.uint(&e.Target)
	case "edited":
		return p.int64Field(&e.Edited)
	case "deleted":
		return p.boolField(&e.Deleted)
	case "ts":
		return p.int64Field(&e.TS)
	case "since":
		return p.uintPtr(&e.Since)
	case "head":
		return p.uintPtr(&e.Head)
	case "recovered":
		return p.boolPtr(&e.Recovered)
	case "online":
		return p.boolPtr(&e.Online)
	case "close_code":
		return p.intField(&e.CloseCode)
	case "reconnect_ms":
		return p.intField(&e.ReconnectMS)
	case "poll_interval_ms":
		return p.intField(&e.PollIntervalMS)
	case "count":
		if p.counted {
			return false // after "reads": encoding/json decides
		}
		var n int
		ok := p.intField(&n)
		e.Count = &n
		return ok
	case "reads":
		if p.countReads {
			if e.Count != nil {
				return false // after "count", or twice: encoding/json decides
			}
			p.counted = true
			return p.countEntries(&e.Count)
		}
		return e.Reads == nil && p.reads(&e.Reads)
	case "changes":
		return e.Changes == nil && p.changes(&e.Changes)
	case "level":
		var n int
		ok := p.intField(&n)
		e.Level = &n
		return ok
	case "transports":
		return e.Transports == nil && p.strings(&e.Transports)
	case "features":
		return e.Features == nil && p.flags(&e.Features)
	case "rtt_ms": // a whole number only: a fraction goes to encoding/json
		var ms uint64
		ok := p.uint(&ms)
		e.RTTMS = float64(ms)
		return ok
	}
	return false
}

// countEntries reads a receipt's reads object as reads does, keeping only
// how many positions it holds.
func (p *fastParser) countEntries(dst **int) bool {
	n := 0
	ok := p.object(func([]byte) bool {
		var seq uint64
		n++
		return p.uint(&seq)
	})
	*dst = &n
	return ok
}

// reads reads a batched receipt's positions: an object of user → seq,
// each user an unescaped string.
func (p *fastParser) reads(dst *map[string]uint64) bool {
	m := make(map[string]uint64, p.entries(MaxBatch))
	*dst = m
	return p.object(func(user []byte) bool {
		var seq uint64
		ok := p.uint(&seq)
		m[string(user)] = seq
		return ok
	})
}

// entries guesses how many members the object at the cursor has, at most
// limit, so that a map made for them never grows: a comma and one more,
// up to the first '}' (a key holding ',' or '}' makes it a guess, never
// an error; the parse that follows checks everything).
func (p *fastParser) entries(limit int) int {
	n := 1
	for _, c := range p.b[p.i:] {
		if c == '}' || n >= limit {
			break
		}
		if c == ',' {
			n++
		}
	}
	return n
}

// changes reads a batched presence envelope's changes: a list of flat
// objects with user, name and online.
func (p *fastParser) changes(dst *[]PresenceChange) bool {
	var out []PresenceChange
	if !p.countChanges {
		out = []PresenceChange{} // encoding/json makes [] an empty list, not nil
	}
	n := 0
	ok := p.array(func() bool {
		var c PresenceChange
		ok := p.object(func(key []byte) bool {
			switch string(key) {
			case "user", "name":
				if p.countChanges {
					_, ok := p.rawString() // checked as str checks it, not kept
					return ok
				}
				if string(key) == "user" {
					return p.str(&c.User)
				}
				return p.str(&c.Name)
			case "online":
				return p.boolField(&c.Online)
			}
			return false
		})
		n++
		if !p.countChanges {
			out = append(out, c)
		}
		return ok
	})
	if p.countChanges {
		out = BlankChanges(n)
	}
	*dst = out
	return ok
}

// strings reads a list of unescaped strings (a control envelope's
// transports).
func (p *fastParser) strings(dst *[]string) bool {
	out := []string{} // encoding/json makes [] an empty list, not nil
	ok := p.array(func() bool {
		var s string
		ok := p.str(&s)
		out = append(out, s)
		return ok
	})
	*dst = out
	return ok
}

// flags reads an object of name → true or false (a control envelope's
// features), each name an unescaped string; a name given twice takes its
// last value, as encoding/json does.
func (p *fastParser) flags(dst *map[string]bool) bool {
	m := make(map[string]bool, p.entries(64))
	*dst = m
	return p.object(func(name []byte) bool {
		var v bool
		ok := p.boolField(&v)
		m[string(name)] = v
		return ok
	})
}

// rawString reads a string without escapes or control characters, whose
// bytes are valid UTF-8, and returns its bytes.
func (p *fastParser) rawString() ([]byte, bool) {
	if p.next() != '"' {
		return nil, false
	}
	start, ascii := p.i, true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

func (p *fastParser) str(dst *string) bool {
	s, ok := p.rawString()
	if ok {
		*dst = string(s)
	}
	return ok
}

// uint reads an unsigned integer in JSON's form (no leading zeros),
// refusing one that overflows.
func (p *fastParser) uint(dst *uint64) bool {
	start := p.i
	var n uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if n > (1<<64-1-d)/10 {
			return false
		}
		n = n*10 + d
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 1 && p.b[start] == '0' {
		return false
	}
	*dst = n
	return true
}

// int reads a non-negative integer up to max.
func (p *fastParser) int(max uint64) (uint64, bool) {
	var n uint64
	if !p.uint(&n) || n > max {
		return 0, false
	}
	return n, true
}

// int64Field reads a non-negative integer that fits an int64 into dst.
func (p *fastParser) int64Field(dst *int64) bool {
	v, ok := p.int(math.MaxInt64)
	*dst = int64(v)
	return ok
}

// boolField reads true or false into dst.
func (p *fastParser) boolField(dst *bool) bool {
	var v *bool
	ok := p.boolPtr(&v)
	*dst = ok && *v
	return ok
}

func (p *fastParser) intField(dst *int) bool {
	v, ok := p.int(math.MaxInt)
	*dst = int(v)
	return ok
}

func (p *fastParser) uintPtr(dst **uint64) bool {
	var n uint64
	if !p.uint(&n) {
		return false
	}
	*dst = &n
	return true
}

func (p *fastParser) boolPtr(dst **bool) bool {
	var v bool
	switch {
	case hasPrefix(p.b[p.i:], "true"):
		v, p.i = true, p.i+4
	case hasPrefix(p.b[p.i:], "false"):
		p.i += 5
	default:
		return false
	}
	*dst = &v
	return true
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

// typeName returns the envelope type named by s, sharing the constant's
// storage for the server's types instead of allocating.
func typeName(s []byte) string {
	switch string(s) {
	case TypeMessage:
		return TypeMessage
	case TypeAck:
		return TypeAck
	case TypeJoined:
		return TypeJoined
	case TypeReceipt:
		return TypeReceipt
	case TypePresence:
		return TypePresence
	case TypeTyping:
		return TypeTyping
	case TypePing:
		return TypePing
	case TypeError:
		return TypeError
	case TypeEdit:
		return TypeEdit
	case TypeDelete:
		return TypeDelete
	case TypeSend:
		return TypeSend
	case TypeRead:
		return TypeRead
	case TypeJoin:
		return TypeJoin
	case TypeLeave:
		return TypeLeave
	case TypePong:
		return TypePong
	}
	return string(s)
}
