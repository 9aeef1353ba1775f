package bolt

import (
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// DefaultBoundsCache is how many rooms' bounds a Store keeps in memory by
// default (about 100 bytes each).
const DefaultBoundsCache = 65536

// bounds is a room's head and first retained seq as of a committed
// transaction.
type bounds struct {
	head, first uint64
}

// boundsCache keeps rooms' bounds in memory, so that a join's or a
// catch-up's question "what is this room's head?" (Since with nothing
// after the position, which every reconnecting client asks for each room
// it resumes, and a WebSocket client once more for its own stream) costs
// a map lookup instead of a bbolt read transaction (tens of µs under a
// reconnect storm, much of it growing the asking goroutine's stack).
//
// It is never ahead of what the store's own read transactions see (bbolt
// lets a reader see a commit while its fdatasync is still running, cache
// or no cache), and no caller sees a room's bounds go back, whether its
// answers come from the cache or from read transactions:
//   - The writer, inside each write transaction and just before it
//     commits, drops the rooms whose bounds the transaction changed
//     (appends, prunes; not read positions) and raises the fence to the
//     transaction's id: from then on only a read transaction that sees
//     that commit may put them back.
//   - Once the commit is durable, and before anyone is answered or
//     anything published, the writer sets those rooms' bounds. A room new
//     to a full cache takes an arbitrary one's place (and the cache is no
//     longer complete, below).
//   - A reader that had to read the store puts what its snapshot saw in
//     the cache if the room is absent (whatever is there is as new or
//     newer), its snapshot is at or past the fence, and the cache is not
//     full (readers never evict).
//
// A room evicted, or dropped by a commit that then failed, is absent
// with the fence at or past its last commit, so what a reader puts back
// is current. A room whose bounds a commit changes is absent from the
// cache while that commit is written and synced, so a room under steady
// appends is often read from a transaction.
//
// Complete. Open fills the cache with every room of the store that has
// bounds of its own (a message stored, ever), if they fit. While no room
// with bounds of its own has been evicted or lost to a failed commit
// since, a room that is neither cached nor being committed has none:
// its bounds are an empty room's, head 0 and first 1, the same as a room
// the store has never seen. So after a restart a join to a room, or to a
// user's stream that never had a message, is answered from memory too.
type boundsCache struct {
	mu       sync.RWMutex
	max      int                 // Static; 0 or less: no cache.
	m        map[string]bounds   // Guarded by mu.
	fence    int                 // the oldest transaction id whose snapshot may fill the cache; guarded by mu
	complete bool                // every room with bounds of its own is in m or in flight; guarded by mu
	inFlight map[string]struct{} // rooms dropped by a commit not yet set again; guarded by mu
}

// emptyBounds are the bounds of a room with no message stored, ever.
var emptyBounds = bounds{head: 0, first: 1}

func newBoundsCache(max int) *boundsCache {
	return &boundsCache{max: max, m: make(map[string]bounds), inFlight: make(map[string]struct{})}
}

// load fills the cache with tx's rooms that have bounds of their own, and
// marks it complete if they all fit. It looks at no more than 4×max rooms
// (with messages or not), so that Open stays quick on a store of many
// rooms (about 2 µs a room on a warm page cache); past that, or at a
// room whose buckets are missing, the cache is simply not complete. Open
// calls it before any reader or writer runs.
func (c *boundsCache) load(tx *bolt.Tx) error {
	if c.max <= 0 {
		return nil
	}
	c.fence = tx.ID()
	rooms, seen := tx.Bucket(bucketRooms), 0
	err := rooms.ForEachBucket(func(name []byte) error {
		if seen++; seen > 4*c.max || rooms.Bucket(name).Bucket(bucketMsgs) == nil {
			return errIncomplete
		}
		if b := viewRoom(tx, string(name)).bounds(); b != emptyBounds {
			if len(c.m) >= c.max {
				return errIncomplete
			}
			c.m[string(name)] = b
		}
		return nil
	})
	if err == errIncomplete {
		return nil
	}
	c.complete = err == nil
	return err
}

// errIncomplete stops load: the cache will not be complete.
var errIncomplete = errors.New("bounds cache not complete")

// get returns room's bounds if they are cached, or an empty room's if the
// cache is complete and the room is neither cached nor being committed.
func (c *boundsCache) get(room string) (bounds, bool) {
	if c.max <= 0 {
		return bounds{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if b, ok := c.m[room]; ok {
		return b, true
	}
	if _, busy := c.inFlight[room]; c.complete && !busy {
		return emptyBounds, true
	}
	return bounds{}, false
}

// offer puts what a read transaction with id txid saw of room in the
// cache, under the rules above.
func (c *boundsCache) offer(room string, b bounds, txid int) {
	if c.max <= 0 {
		return
	}
	c.mu.RLock()
	_, ok := c.m[room]
	skip := ok || txid < c.fence || len(c.m) >= c.max
	c.mu.RUnlock()
	if skip {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[room]; ok || txid < c.fence || len(c.m) >= c.max {
		return
	}
	c.m[room] = b
}

// writing drops the rooms whose bounds the write transaction txid
// changed and raises the fence to txid, before that transaction commits.
func (c *boundsCache) writing(rooms map[string]*room, txid int) {
	if c.max <= 0 || len(rooms) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range rooms {
		delete(c.m, name)
		c.inFlight[name] = struct{}{}
	}
	c.fence = max(c.fence, txid)
}

// failed is told that the commit writing was told of did not happen:
// its rooms are not in the cache and may not be empty, so it is no
// longer complete.
func (c *boundsCache) failed(rooms map[string]*room) {
	if c.max <= 0 || len(rooms) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range rooms {
		delete(c.inFlight, name)
	}
	c.complete = false
}

// committed sets the bounds of the rooms whose bounds the write
// transaction changed, once it has committed.
func (c *boundsCache) committed(rooms map[string]*room) {
	if c.max <= 0 || len(rooms) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, r := range rooms {
		if _, ok := c.m[name]; !ok && len(c.m) >= c.max {
			for k := range c.m {
				delete(c.m, k) // the fence is already past its last commit
				c.complete = false
				break
			}
		}
		c.m[name] = r.bounds()
		delete(c.inFlight, name)
	}
}
