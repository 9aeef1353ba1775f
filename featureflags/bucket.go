package featureflags

import (
	"encoding/binary"
	"math/bits"
)

// Bucket returns the user's bucket for the flag, 1–100: murmur3 (32-bit,
// seed 0) of "<flag>:<user>", mod 100, plus 1. This is Unleash's
// normalizedValue with the flag name as the group id, so buckets match what
// Unleash users expect. A user is in when the bucket is at most the
// rollout, which makes raising the rollout only ever add users.
//
// It hashes the three parts in a stream rather than concatenating them, so
// it never allocates.
func Bucket(flag, user string) int {
	var h murmur32
	h.writeString(flag)
	h.writeString(":")
	h.writeString(user)
	return int(h.sum()%100) + 1
}

// murmur32 is a streaming MurmurHash3 x86_32 with seed 0, the variant
// Unleash uses. It is written here rather than imported so the package
// stays free of dependencies; bucket_test.go pins it to reference values.
type murmur32 struct {
	h    uint32
	n    int     // bytes written so far
	tail [4]byte // bytes not yet mixed in
	nt   int     // len of tail in use
}

const (
	mC1 = 0xcc9e2d51
	mC2 = 0x1b873593
)

func (m *murmur32) block(k uint32) {
	k *= mC1
	k = bits.RotateLeft32(k, 15)
	k *= mC2
	m.h ^= k
	m.h = bits.RotateLeft32(m.h, 13)
	m.h = m.h*5 + 0xe6546b64
}

func (m *murmur32) writeString(s string) {
	m.n += len(s)
	for m.nt > 0 && len(s) > 0 { // top up a partial block
		m.tail[m.nt] = s[0]
		m.nt, s = m.nt+1, s[1:]
		if m.nt == 4 {
			m.block(binary.LittleEndian.Uint32(m.tail[:]))
			m.nt = 0
		}
	}
	for len(s) >= 4 {
		m.block(uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24)
		s = s[4:]
	}
	m.nt += copy(m.tail[m.nt:], s)
}

func (m *murmur32) sum() uint32 {
	h := m.h
	var k uint32
	switch m.nt {
	case 3:
		k ^= uint32(m.tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(m.tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(m.tail[0])
		k *= mC1
		k = bits.RotateLeft32(k, 15)
		k *= mC2
		h ^= k
	}
	h ^= uint32(m.n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
