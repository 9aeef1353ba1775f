package featureflags

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The vectors from LIBRARIES.md, which are Unleash's: (userId, groupId).
// Unleash hashes "<groupId>:<userId>", and our group id is the flag name,
// so the second element is the flag and the first the user.
func TestBucketUnleashVectors(t *testing.T) {
	for _, v := range []struct {
		user, group string
		want        int
	}{
		{"123", "gr1", 73},
		{"999", "groupX", 25},
	} {
		if got := Bucket(v.group, v.user); got != v.want {
			t.Errorf("Bucket(%q, %q) = %d, want %d", v.group, v.user, got, v.want)
		}
	}
}

// Reference MurmurHash3 x86_32, seed 0 (checked against
// github.com/twmb/murmur3 v1.2.2 Sum32). Lengths 0–4 cover every tail case.
func TestMurmur3Reference(t *testing.T) {
	for _, v := range []struct {
		in   string
		want uint32
	}{
		{"", 0},
		{"a", 0x3c2569b2},
		{"ab", 0x9bbfd75f},
		{"abc", 0xb3dd93fa},
		{"abcd", 0x43ed676a},
		{"hello", 0x248bfa47},
		{"Hello, world!", 0xc0363e43},
		{"The quick brown fox jumps over the lazy dog", 0x2e4ff723},
	} {
		var h murmur32
		h.writeString(v.in)
		if got := h.sum(); got != v.want {
			t.Errorf("murmur3(%q) = %#08x, want %#08x", v.in, got, v.want)
		}
	}
}

// Streaming in pieces must equal hashing the concatenation, whatever the
// split points, since Bucket feeds flag, ":" and user separately.
func TestMurmur3Streaming(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		s := string(b)
		var whole murmur32
		whole.writeString(s)
		i := r.IntN(len(s) + 1)
		j := i + r.IntN(len(s)-i+1)
		var parts murmur32
		parts.writeString(s[:i])
		parts.writeString(s[i:j])
		parts.writeString(s[j:])
		if whole.sum() != parts.sum() {
			t.Fatalf("split %d/%d of %q: %#x != %#x", i, j, s, parts.sum(), whole.sum())
		}
	}
}

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user-%d", i)
	}
	return out
}

func TestBucketRange(t *testing.T) {
	for _, u := range users(10000) {
		if b := Bucket(Typing, u); b < 1 || b > 100 {
			t.Fatalf("Bucket(%q) = %d, outside 1–100", u, b)
		}
	}
}

// Raising the rollout hits the target share and only adds users.
func TestRolloutGrowsSticky(t *testing.T) {
	us := users(10000)
	s := NewStore(Config{Logger: discard()})
	var prev map[string]bool
	for _, pct := range []int{10, 50, 100} {
		if _, err := s.Update(Typing, true, pct, "test"); err != nil {
			t.Fatal(err)
		}
		snap := s.Snapshot()
		in := make(map[string]bool, len(us))
		for _, u := range us {
			if snap.On(Typing, u) {
				in[u] = true
			}
		}
		share := float64(len(in)) * 100 / float64(len(us))
		if share < float64(pct)-2 || share > float64(pct)+2 {
			t.Errorf("rollout %d%%: %.2f%% of users are in", pct, share)
		}
		for u := range prev {
			if !in[u] {
				t.Errorf("rollout %d%%: %s was in at a lower rollout and is now out", pct, u)
			}
		}
		prev = in
	}
}

func TestOnExtremes(t *testing.T) {
	us := users(10000)
	for _, c := range []struct {
		name    string
		f       Flag
		wantAll bool
	}{
		{"disabled at 100", Flag{Name: Typing, Enabled: false, Rollout: 100}, false},
		{"disabled at 50", Flag{Name: Typing, Enabled: false, Rollout: 50}, false},
		{"enabled at 0", Flag{Name: Typing, Enabled: true, Rollout: 0}, false},
		{"enabled at 100", Flag{Name: Typing, Enabled: true, Rollout: 100}, true},
	} {
		set := newSet([]Flag{c.f})
		for _, u := range us {
			if got := set.On(Typing, u); got != c.wantAll {
				t.Errorf("%s: On(%q) = %v", c.name, u, got)
				break
			}
		}
	}
	if defaultSet.On("no.such.flag", "user-1") {
		t.Error("an unknown flag is on")
	}
}
