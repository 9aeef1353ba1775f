package files

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// idBytes is the entropy of a file id: 128 bits, unguessable.
const idBytes = 16

// idLen is the length of a file id: idBytes in unpadded base64url.
var idLen = base64.RawURLEncoding.EncodedLen(idBytes)

// newID returns a random, URL-safe file id of 128 bits.
func newID() string {
	b := make([]byte, idBytes)
	rand.Read(b) // never fails: see crypto/rand.Read
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidID reports whether id has the shape newID gives: idLen characters
// of the base64url alphabet. Anything else is refused before it becomes
// part of a storage key.
func ValidID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// The storage key layout. Ids are checked by ValidID and user ids and
// room names are hashed, so no key part comes verbatim from a client.
//
//	meta/<id>                  the metadata (JSON); written last, so it is the commit point
//	data/<user hash>/<id>      the file's bytes; one prefix per user, so a listing sums the quota
//	thumb/<id>                 the thumbnail of an image
//	rooms/<room hash>/<id>     an empty marker: the room's files, for Prune
//	pending/<unix ns>.<user hash>.<id>  an empty marker while no message references the file, for Sweep
const (
	prefixMeta    = "meta/"
	prefixData    = "data/"
	prefixThumb   = "thumb/"
	prefixRooms   = "rooms/"
	prefixPending = "pending/"
)

// hashKey names a user or a room in a key: 128 bits of SHA-256, in hex.
func hashKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

func metaKey(id string) string           { return prefixMeta + id }
func dataKey(userHash, id string) string { return prefixData + userHash + "/" + id }
func thumbKey(id string) string          { return prefixThumb + id }
func roomKey(roomHash, id string) string { return prefixRooms + roomHash + "/" + id }

// pendingKey is the marker of an upload no message references yet. The
// time comes first, zero-padded, so the markers list oldest first.
func pendingKey(created time.Time, userHash, id string) string {
	return fmt.Sprintf("%s%019d.%s.%s", prefixPending, created.UnixNano(), userHash, id)
}

// parsePendingKey splits a pending marker's key; ok is false for a key
// that is not one.
func parsePendingKey(key string) (created time.Time, userHash, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, prefixPending)
	if !ok || len(rest) != 19+1+32+1+idLen || rest[19] != '.' || rest[52] != '.' {
		return time.Time{}, "", "", false
	}
	ns, err := strconv.ParseInt(rest[:19], 10, 64)
	userHash, id = rest[20:52], rest[53:]
	if _, herr := hex.DecodeString(userHash); err != nil || herr != nil || ns < 0 || !ValidID(id) {
		return time.Time{}, "", "", false
	}
	return time.Unix(0, ns), userHash, id, true
}
