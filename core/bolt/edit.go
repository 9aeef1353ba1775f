package bolt

import (
	"encoding/binary"
	"fmt"

	"github.com/chatd/chatd/core/protocol"
)

// recordV2 is the record of anything but a plain message. After the
// version 1 fields (stamp, id, from, name, text) it holds:
//
//	flags    1 byte: bit 0 deleted
//	kind     1 byte: 0 message, 1 edit, 2 delete
//	target   uvarint: an edit's or a delete's message seq
//	edited   varint: a message's latest edit stamp
//	edits    uvarint count, then each seq as a uvarint: the message's edits
//	files    uvarint count, then each file: id, name, type, url, thumb
//	         url (uvarint length and bytes), size, width, height (varints)
const recordV2 = 2

const flagDeleted = 1

// kinds maps a Message.Kind to its byte in a record, and back.
var kinds = [...]string{"", protocol.TypeEdit, protocol.TypeDelete}

func kindByte(kind string) byte {
	for i, k := range kinds {
		if k == kind {
			return byte(i)
		}
	}
	panic("bolt: unknown message kind " + kind) // the hub only stores these
}

// encodeRecord appends the stored form of m, whose edits are at edits:
// version 1 when m is a plain message, else version 2.
func encodeRecord(dst []byte, m protocol.Message, edits []uint64) []byte {
	if m.IsMessage() && len(m.Files) == 0 && m.Edited == 0 && !m.Deleted && len(edits) == 0 {
		return encodeV1(dst, m)
	}
	start := len(dst)
	dst = encodeV1(dst, m)
	dst[start] = recordV2
	var flags byte
	if m.Deleted {
		flags |= flagDeleted
	}
	dst = append(dst, flags, kindByte(m.Kind))
	dst = binary.AppendUvarint(dst, m.Target)
	dst = binary.AppendVarint(dst, m.Edited)
	dst = binary.AppendUvarint(dst, uint64(len(edits)))
	for _, e := range edits {
		dst = binary.AppendUvarint(dst, e)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Files)))
	for _, f := range m.Files {
		for _, s := range [...]string{f.ID, f.Name, f.Type, f.URL, f.ThumbURL} {
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		}
		dst = binary.AppendVarint(dst, f.Size)
		dst = binary.AppendVarint(dst, int64(f.Width))
		dst = binary.AppendVarint(dst, int64(f.Height))
	}
	return dst
}

// extraSize bounds what version 2 adds to a record.
func extraSize(m protocol.Message, edits []uint64) int {
	n := 2 + binary.MaxVarintLen64*(4+len(edits))
	for _, f := range m.Files {
		n += binary.MaxVarintLen64*8 + len(f.ID) + len(f.Name) + len(f.Type) + len(f.URL) + len(f.ThumbURL)
	}
	return n
}

// extra reads the version 2 fields into m and returns the edits. A
// count larger than the bytes left is corrupt, so a record cannot make
// the decoder allocate more than its own size.
func (d *decoder) extra(m *protocol.Message) []uint64 {
	flags, kind := d.byte(), d.byte()
	if d.err == nil && (flags&^flagDeleted != 0 || int(kind) >= len(kinds)) {
		d.fail()
	}
	if d.err != nil {
		return nil
	}
	m.Deleted, m.Kind = flags&flagDeleted != 0, kinds[kind]
	m.Target = d.uvarint()
	m.Edited = d.varint()
	var edits []uint64
	if n := d.count(1); n > 0 {
		edits = make([]uint64, n)
		for i := range edits {
			edits[i] = d.uvarint()
		}
	}
	if n := d.count(8); n > 0 {
		m.Files = make([]protocol.File, n)
		for i := range m.Files {
			f := &m.Files[i]
			f.ID, f.Name, f.Type, f.URL, f.ThumbURL = d.str(), d.str(), d.str(), d.str(), d.str()
			f.Size, f.Width, f.Height = d.varint(), int(d.varint()), int(d.varint())
		}
	}
	return edits
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items of at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.fail()
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// decodeFiles returns the files of a record that still carries some:
// a version 2 message that is not deleted. Pruning reports them.
func decodeFiles(b []byte, room string, seq uint64) ([]protocol.File, error) {
	if len(b) == 0 || b[0] != recordV2 {
		return nil, nil
	}
	m, _, err := decodeRecord(b, room, seq)
	return m.Files, err
}

// refuse is how an edit or a delete the store cannot apply is answered:
// a wire error for its caller, not a failure of the transaction.
func refuse(code protocol.Code, format string, args ...any) error {
	return protocol.Errorf(code, format, args...)
}

// target reads and checks the message that op (an edit or a delete)
// changes: a retained message that is not deleted and, for an edit, has
// room for one more. It writes nothing.
func (r *room) target(op protocol.Message) (protocol.Message, []uint64, error) {
	if op.Target < r.first || op.Target > r.head {
		return protocol.Message{}, nil, refuse(protocol.CodeNotFound, "no message %d in the room", op.Target)
	}
	raw := r.msgs.Get(u64(op.Target))
	if raw == nil {
		return protocol.Message{}, nil, refuse(protocol.CodeNotFound, "no message %d in the room", op.Target)
	}
	m, edits, err := decodeRecord(raw, r.name, op.Target)
	switch {
	case err != nil:
		return m, nil, err
	case !m.IsMessage():
		return m, nil, refuse(protocol.CodeBadRequest, "seq %d is %s, not a message", op.Target, m.Kind)
	case m.Deleted:
		return m, nil, refuse(protocol.CodeNotFound, "message %d was deleted", op.Target)
	case op.Kind == protocol.TypeEdit && len(edits) >= protocol.MaxEdits:
		return m, nil, refuse(protocol.CodeBadRequest, "a message may be edited at most %d times", protocol.MaxEdits)
	}
	return m, edits, nil
}

// amend applies the stored op to its message, read by target: an edit
// replaces the text, stamps Edited and records its own seq; a delete
// removes the text and files, and the text of every edit. It returns
// the files a delete removed.
func (r *room) amend(m protocol.Message, edits []uint64, op protocol.Message) ([]protocol.File, error) {
	if op.Kind == protocol.TypeEdit {
		m.Text, m.Edited = op.Text, op.TS
		return nil, r.put(m, append(edits, op.Seq))
	}
	files := m.Files
	if err := r.put(m.Redacted(), nil); err != nil {
		return nil, err
	}
	for _, seq := range edits {
		raw := r.msgs.Get(u64(seq))
		if raw == nil {
			continue
		}
		e, err := decodeMessage(raw, r.name, seq)
		if err != nil {
			return nil, err
		}
		if err := r.put(e.Redacted(), nil); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// put rewrites the record of m.
func (r *room) put(m protocol.Message, edits []uint64) error {
	rec := encodeRecord(make([]byte, 0, recordSize(m)+extraSize(m, edits)), m, edits)
	if err := r.msgs.Put(u64(m.Seq), rec); err != nil {
		return fmt.Errorf("room %q seq %d: %w", r.name, m.Seq, err)
	}
	return nil
}

// release records files to report once the transaction has committed.
func (w *writeTx) release(room string, files []protocol.File) {
	if len(files) == 0 {
		return
	}
	if w.released == nil {
		w.released = map[string][]protocol.File{}
	}
	w.released[room] = append(w.released[room], files...)
}

// validKind checks what Append stores: a message, or an edit or a
// delete of a message (Target at least 1).
func validKind(m protocol.Message) error {
	switch m.Kind {
	case "":
		return nil
	case protocol.TypeEdit, protocol.TypeDelete:
		if m.Target == 0 {
			return fmt.Errorf("%w: %s without a target", ErrInvalid, m.Kind)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind %q", ErrInvalid, m.Kind)
}
