package protocol

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits of edits, deletes and attachments.
const (
	// MaxFiles is how many files one message may carry.
	MaxFiles = 10
	// MaxEdits is how many times one message may be edited. Each edit is
	// an entry of the room's log, and the stores keep the seqs of a
	// message's edits with it (to redact them when it is deleted), so the
	// bound keeps that record small.
	MaxEdits = 100
)

// File is an attachment of a message. A client's send names files by id
// only, and on the wire such a bare reference is the id string itself
// ("files":["f1","f2"]); the hub resolves each into the whole object
// ({"id","name","size","type","url","thumb_url"?,"width"?,"height"?}),
// which the stored message and its envelope carry.
type File struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	Type     string `json:"type"` // the sniffed media type
	URL      string `json:"url"`
	ThumbURL string `json:"thumb_url,omitempty"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
}

// fileObject is File without its JSON methods.
type fileObject File

// Ref reports whether f is a bare reference: an id and nothing else.
func (f File) Ref() bool { return f == File{ID: f.ID} }

// MarshalJSON writes a bare reference as its id string and a resolved
// file as an object.
func (f File) MarshalJSON() ([]byte, error) {
	if f.Ref() {
		return json.Marshal(f.ID)
	}
	return json.Marshal(fileObject(f))
}

// UnmarshalJSON reads either form MarshalJSON writes.
func (f *File) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*f = File{}
		return json.Unmarshal(b, &f.ID)
	}
	var o fileObject
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*f = File(o)
	return nil
}

// FileIDs returns the ids of files.
func FileIDs(files []File) []string {
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = f.ID
	}
	return ids
}

// FileRefs returns bare references to ids, for a send's Files.
func FileRefs(ids []string) []File {
	if len(ids) == 0 {
		return nil
	}
	files := make([]File, len(ids))
	for i, id := range ids {
		files[i] = File{ID: id}
	}
	return files
}

// validFileRefs checks a send's files: at most MaxFiles bare references,
// each a valid id, none twice.
func validFileRefs(files []File) error {
	if len(files) > MaxFiles {
		return Errorf(CodeBadRequest, "a message may carry at most %d files", MaxFiles)
	}
	for i, f := range files {
		if !f.Ref() {
			return Errorf(CodeBadRequest, "files are sent by id only")
		}
		if err := validID(f.ID, "a file"); err != nil {
			return err
		}
		for _, g := range files[:i] {
			if g.ID == f.ID {
				return Errorf(CodeBadRequest, "file %q is listed twice", truncate(f.ID, MaxIDLen))
			}
		}
	}
	return nil
}

// validID checks a client id (a send's, an edit's, a delete's or a
// file's): 1 to MaxIDLen bytes, no space or control character.
func validID(id, what string) error {
	if id == "" || len(id) > MaxIDLen {
		return Errorf(CodeBadRequest, "%s needs an id of 1 to %d bytes", what, MaxIDLen)
	}
	if !isPrintable(id) {
		return Errorf(CodeBadRequest, "id has control or space characters")
	}
	return nil
}

// validAmend checks an edit or a delete frame: a room, an id of its own,
// the target seq in seq, and no files. An edit's text is checked by the
// hub, as a send's is.
func validAmend(e *Envelope) error {
	if err := ValidRoom(e.Room); err != nil {
		return err
	}
	if err := validID(e.ID, e.Type); err != nil {
		return err
	}
	if e.Seq == 0 {
		return Errorf(CodeBadRequest, "%s needs the seq of the message, 1 or more", e.Type)
	}
	if len(e.Files) > 0 {
		return Errorf(CodeBadRequest, "%s carries no files", e.Type)
	}
	return nil
}

// IsMessage reports whether m is a chat message, not an edit or a delete.
func (m Message) IsMessage() bool { return m.Kind == "" }

// Redacted returns m deleted: no text, no files, no edit stamp, Deleted
// set. A store serves a deleted message, and every edit of it, this way.
func (m Message) Redacted() Message {
	m.Text, m.Files, m.Edited, m.Deleted = "", nil, 0, true
	return m
}

// Equal reports whether m and o are the same entry in the same state.
func (m Message) Equal(o Message) bool {
	return m.Room == o.Room && m.Seq == o.Seq && m.ID == o.ID && m.From == o.From && m.Name == o.Name &&
		m.Text == o.Text && m.TS == o.TS && m.Kind == o.Kind && m.Target == o.Target &&
		m.Edited == o.Edited && m.Deleted == o.Deleted && slices.Equal(m.Files, o.Files)
}

// CleanCaption is CleanText for the text of a message with files, which
// may be empty: text that is empty, or only white space and control
// characters, is "".
func CleanCaption(s string, max int) (string, error) {
	if utf8.ValidString(s) && strings.TrimSpace(dropControls(s)) == "" {
		return "", nil
	}
	return CleanText(s, max)
}
