package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeEditDeleteFiles(t *testing.T) {
	good := []string{
		`{"type":"edit","room":"general","id":"e1","seq":4,"text":"fixed"}`,
		`{"type":"delete","room":"general","id":"d1","seq":4}`,
		`{"type":"send","room":"g","id":"s","text":"see","files":["f1","f2"]}`,
		`{"type":"send","room":"g","id":"s","files":[]}`,
		`{"type":"send","room":"g","id":"s","files":` + refs(MaxFiles) + `}`,
	}
	for _, s := range good {
		if _, err := DecodeClient([]byte(s)); err != nil {
			t.Errorf("DecodeClient(%s) = %v, want nil", s, err)
		}
	}
	bad := []string{
		`{"type":"edit","room":"g","seq":4,"text":"x"}`,                       // no id
		`{"type":"edit","room":"g","id":"e","text":"x"}`,                      // no seq
		`{"type":"edit","id":"e","seq":1,"text":"x"}`,                         // no room
		`{"type":"delete","room":"g","id":"a b","seq":1}`,                     // bad id
		`{"type":"delete","room":"g","id":"d","seq":-1}`,                      // negative seq
		`{"type":"edit","room":"g","id":"e","seq":1,"files":["f"]}`,           // files on an edit
		`{"type":"send","room":"g","id":"s","files":["f","f"]}`,               // twice
		`{"type":"send","room":"g","id":"s","files":[""]}`,                    // empty id
		`{"type":"send","room":"g","id":"s","files":["a b"]}`,                 // space
		`{"type":"send","room":"g","id":"s","files":[{"id":"f","url":"/x"}]}`, // not by id
		`{"type":"send","room":"g","id":"s","files":[1]}`,
		`{"type":"send","room":"g","id":"s","files":"f"}`,
		`{"type":"send","room":"g","id":"s","files":[null]}`,
		`{"type":"send","room":"g","id":"s","files":` + refs(MaxFiles+1) + `}`,
		`{"type":"send","room":"g","id":"s","files":["` + strings.Repeat("f", MaxIDLen+1) + `"]}`,
	}
	for _, s := range bad {
		_, err := DecodeClient([]byte(s))
		if c, _ := CodeOf(err); err == nil || c != CodeBadRequest {
			t.Errorf("DecodeClient(%s) = %v, want bad_request", s, err)
		}
	}
}

func refs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprint("f", i))
	}
	return "[" + strings.Join(ids, ",") + "]"
}

// A bare reference travels as its id string, a resolved file as an
// object, and each decodes back to itself.
func TestFileJSON(t *testing.T) {
	full := File{ID: "f1", Name: "cat.png", Size: 1234, Type: "image/png", URL: "/v1/files/f1",
		ThumbURL: "/v1/files/f1/thumb", Width: 640, Height: 480}
	for _, c := range []struct {
		f    File
		want string
	}{
		{File{ID: "f1"}, `"f1"`},
		{full, `{"id":"f1","name":"cat.png","size":1234,"type":"image/png","url":"/v1/files/f1","thumb_url":"/v1/files/f1/thumb","width":640,"height":480}`},
		{File{ID: "f2", Name: "empty.txt", Type: "text/plain", URL: "/v1/files/f2"}, `{"id":"f2","name":"empty.txt","size":0,"type":"text/plain","url":"/v1/files/f2"}`},
	} {
		b, err := json.Marshal(c.f)
		if err != nil || string(b) != c.want {
			t.Fatalf("Marshal(%+v) = %s, %v; want %s", c.f, b, err, c.want)
		}
		var got File
		if err := json.Unmarshal(b, &got); err != nil || got != c.f {
			t.Fatalf("Unmarshal(%s) = %+v, %v; want %+v", b, got, err, c.f)
		}
	}
}

// Message.Envelope gives each kind its frame, and Equal sees every field.
func TestMessageEnvelopeKinds(t *testing.T) {
	files := []File{{ID: "f", Name: "n", Type: "text/plain", URL: "/u"}}
	m := Message{Room: "r", Seq: 3, ID: "m", From: "ann", Name: "Ann", Text: "hi", TS: 7, Files: files, Edited: 9}
	e := m.Envelope()
	if e.Type != TypeMessage || e.Edited != 9 || len(e.Files) != 1 || e.Target != 0 {
		t.Fatalf("message envelope %+v", e)
	}
	ed := Message{Room: "r", Seq: 4, ID: "e", From: "ann", Text: "hey", TS: 8, Kind: TypeEdit, Target: 3}
	if e := ed.Envelope(); e.Type != TypeEdit || e.Target != 3 || e.Text != "hey" || e.Seq != 4 {
		t.Fatalf("edit envelope %+v", e)
	}
	del := Message{Room: "r", Seq: 5, ID: "d", From: "ann", TS: 9, Kind: TypeDelete, Target: 3}
	if e := del.Envelope(); e.Type != TypeDelete || e.Target != 3 || e.Text != "" {
		t.Fatalf("delete envelope %+v", e)
	}
	if r := m.Redacted(); r.Text != "" || r.Files != nil || !r.Deleted || r.Edited != 0 || r.Seq != 3 || r.From != "ann" {
		t.Fatalf("redacted %+v", r)
	}
	same := m
	same.Files = append([]File(nil), files...)
	if !m.Equal(same) {
		t.Fatal("Equal: copies differ")
	}
	for _, change := range []func(*Message){
		func(x *Message) { x.Text = "x" }, func(x *Message) { x.Edited = 1 }, func(x *Message) { x.Deleted = true },
		func(x *Message) { x.Kind = TypeEdit }, func(x *Message) { x.Target = 1 }, func(x *Message) { x.Files = nil },
		func(x *Message) { x.Files = []File{{ID: "g"}} },
	} {
		other := same
		change(&other)
		if m.Equal(other) {
			t.Fatalf("Equal missed a change: %+v", other)
		}
	}
}
