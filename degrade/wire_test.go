package degrade

import (
	"bytes"
	"hash/fnv"
	"strconv"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// ControlWire gives every user the encoding of their own Control envelope
// at every level, whatever mix of flags they get, from its cache as from
// a fresh build; and equal tags mean equal bytes.
func TestControlWireMatchesControl(t *testing.T) {
	// Each user gets each flag by a hash of the two, so the users cover
	// many of the 64 combinations.
	flags := flagsFunc(func(name, user string) bool {
		h := fnv.New32a()
		h.Write([]byte(name + "/" + user))
		return h.Sum32()%3 != 0
	})
	ctl := New(Config{})
	p := &Policy{Controller: ctl, Flags: flags, Transports: []string{WebSocket, Poll}, PollInterval: 7 * time.Second}
	tags := map[uint64][]byte{}
	for l := LevelNormal; l <= MaxLevel; l++ {
		if err := ctl.SetManual(l, 0, "test"); err != nil {
			t.Fatal(err)
		}
		for round := range 2 { // the second round answers from the cache
			for i := range 200 {
				user := "u" + strconv.Itoa(i)
				e := p.Offer(user).Control()
				want := protocol.Encode(e)
				w := p.ControlWire(user)
				if !bytes.Equal(w.Data, want) {
					t.Fatalf("level %d round %d %s: ControlWire %s, Control %s", l, round, user, w.Data, want)
				}
				if w.Tag == 0 {
					t.Fatalf("tag 0 for %s", w.Data)
				}
				if seen, ok := tags[w.Tag]; ok && !bytes.Equal(seen, w.Data) {
					t.Fatalf("tag %x names %s and %s", w.Tag, seen, w.Data)
				}
				tags[w.Tag] = w.Data
			}
		}
	}
	if len(tags) < 8 {
		t.Fatalf("only %d distinct control envelopes: the users do not cover the flags", len(tags))
	}
	var nilPolicy *Policy
	if w := nilPolicy.ControlWire("u"); !bytes.Contains(w.Data, []byte(`"level":0`)) {
		t.Fatalf("nil policy: %s", w.Data)
	}
}
