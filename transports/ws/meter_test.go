package ws

import (
	"encoding/binary"
	"testing"
)

// FuzzFrameMeter: however a stream of frames is cut into reads, the
// meter counts each frame once, at its first byte, and each ping as one,
// and skips every payload, of any length form (7-bit, 16-bit, 64-bit),
// masked or not.
func FuzzFrameMeter(f *testing.F) {
	f.Add([]byte{0, 0, 5, 1, 200, 0, 130, 1}, []byte{1, 2, 3})
	f.Add([]byte{0, 0, 0, 0, 0, 0}, []byte{0})
	f.Add([]byte{126, 1, 127, 0}, []byte{7, 1, 1})
	f.Fuzz(func(t *testing.T, shape, cuts []byte) {
		// Each pair of shape bytes is a frame: a payload length (its form
		// chosen by the value) and whether it is masked.
		var stream []byte
		frames, pings := 0, 0
		for i := 0; i+1 < len(shape) && frames < 64; i += 2 {
			n := int(shape[i])
			switch {
			case n >= 250: // a 64-bit length
				n = 65536 + int(shape[i+1])
			case n >= 200: // a 16-bit length
				n = 126 + int(shape[i+1])*7
			}
			masked := shape[i+1]&1 == 1
			b1 := byte(0)
			if masked {
				b1 = 0x80
			}
			op := byte(0x01) // text
			if shape[i]%7 == 3 {
				op = 0x89 // a ping, final
				pings++
			}
			stream = append(stream, op)
			switch {
			case n < 126:
				stream = append(stream, b1|byte(n))
			case n <= 0xffff:
				stream = append(stream, b1|126)
				stream = binary.BigEndian.AppendUint16(stream, uint16(n))
			default:
				stream = append(stream, b1|127)
				stream = binary.BigEndian.AppendUint64(stream, uint64(n))
			}
			if masked {
				stream = append(stream, 9, 9, 9, 9)
			}
			stream = append(stream, make([]byte, n)...)
			frames++
		}
		var m frameMeter
		got, gotPings := 0, 0
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			k := len(rest)
			if i < len(cuts) {
				k = min(k, int(cuts[i])+1)
			}
			b, p := m.frames(rest[:k])
			got, gotPings = got+b, gotPings+p
			rest = rest[k:]
		}
		if got != frames || gotPings != pings || m.hn != 0 || m.skip != 0 {
			t.Fatalf("counted %d frames of %d, %d pings of %d (header at %d, %d to skip)", got, frames, gotPings, pings, m.hn, m.skip)
		}
	})
}
