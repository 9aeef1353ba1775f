package core

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Display names. A user's name is, in order: the one they chose (PUT
// /v1/me), kept by the engine and winning over every token from then on;
// the name claim of the token in hand; for a user not in hand (the other
// side of a DM), the claim last seen in one of their tokens; their id.
//
// Each node caches what the engine keeps, per user, for nameTTL: a
// message or a presence change costs a map lookup, not an engine read. A
// chosen name is announced to every node (TopicName), which updates its
// cache at once and re-announces the user's presence, with the new name,
// in the rooms where the user is online on that node; the TTL bounds how
// long a node that missed the announcement (a pub/sub outage) shows the
// old name.

// TopicName is the control topic that carries a chosen name to every node.
const TopicName = "user.name"

// nameTTL is how long a node trusts a cached name.
const nameTTL = time.Minute

// maxCachedNames bounds the name cache; past it, lapsed entries go, and
// if that is not enough, all of them.
const maxCachedNames = 1 << 16

// Renames per user: one a second, in bursts of five.
const (
	renameRate  = 1
	renameBurst = 5
)

// Profile is a user as GET and PUT /v1/me show them.
type Profile struct {
	User string `json:"user"`
	Name string `json:"name"`
}

// names is the hub's cache of the engine's names.
type names struct {
	hub *Hub // Static after construction.

	mu      sync.Mutex
	cache   map[string]cachedName // by user; guarded by mu.
	renames bucket                // the rename limit per user; guarded by mu.
	swept   time.Time             // the last sweep of renames; guarded by mu.
}

type cachedName struct {
	UserNames
	at time.Time // when loaded or set
}

func newNames(h *Hub) *names {
	return &names{hub: h, cache: make(map[string]cachedName), renames: newBucket(renameRate, renameBurst),
		swept: h.cfg.Now()}
}

// lookup returns the stored names of users, from the cache where it is
// fresh and from the engine for the rest. ok is false when the engine
// failed; what the cache had is still returned.
func (n *names) lookup(ctx context.Context, users []string) (map[string]UserNames, bool) {
	now := n.hub.cfg.Now()
	out := make(map[string]UserNames, len(users))
	var missing []string
	n.mu.Lock()
	for _, u := range users {
		if c, hit := n.cache[u]; hit && now.Sub(c.at) < nameTTL {
			out[u] = c.UserNames
		} else {
			missing = append(missing, u)
		}
	}
	n.mu.Unlock()
	if len(missing) == 0 {
		return out, true
	}
	loaded, err := n.hub.people.UserNames(ctx, missing)
	if err != nil {
		n.hub.cfg.Logger.Debug("names: engine read failed", "users", len(missing), "err", err)
		return out, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range missing {
		out[u] = loaded[u]
		n.putLocked(u, loaded[u], now)
	}
	return out, true
}

// one is lookup for one user, without allocating when the cache has it:
// it runs on every send and join.
func (n *names) one(ctx context.Context, user string) (UserNames, bool) {
	now := n.hub.cfg.Now()
	n.mu.Lock()
	c, hit := n.cache[user]
	n.mu.Unlock()
	if hit && now.Sub(c.at) < nameTTL {
		return c.UserNames, true
	}
	got, ok := n.lookup(ctx, []string{user})
	return got[user], ok
}

// put caches user's names as of now.
func (n *names) put(user string, un UserNames) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.putLocked(user, un, n.hub.cfg.Now())
}

func (n *names) putLocked(user string, un UserNames, now time.Time) {
	if len(n.cache) >= maxCachedNames {
		for u, c := range n.cache {
			if now.Sub(c.at) >= nameTTL {
				delete(n.cache, u)
			}
		}
		if len(n.cache) >= maxCachedNames {
			clear(n.cache)
		}
	}
	n.cache[user] = cachedName{UserNames: un, at: now}
}

// allowRename takes a rename token for user, if there is one.
func (n *names) allowRename(user string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.hub.cfg.Now()
	if now.Sub(n.swept) >= sweepEvery {
		n.swept = now
		n.renames.sweep(now)
	}
	return n.renames.allow(user, now)
}

// withName returns id with the name the user shows as: their chosen name
// if they have one, else their token's. A token name the engine has not
// seen yet is recorded, so that others see it too (the other side of a
// DM). An engine failure leaves the token's name.
func (h *Hub) withName(ctx context.Context, id auth.Identity) auth.Identity {
	un, ok := h.names.one(ctx, id.User)
	if un.Chosen != "" {
		id.Name = un.Chosen
		return id
	}
	if ok && id.Name != "" && id.Name != id.User && un.Seen != id.Name {
		if err := h.people.SetUserName(ctx, id.User, id.Name, false); err != nil {
			h.cfg.Logger.Debug("names: recording a token's name failed", "user", id.User, "err", err)
		} else {
			un.Seen = id.Name
			h.names.put(id.User, un)
		}
	}
	return id
}

// nameOf returns the name user shows as to others: chosen, else last
// seen, else the id.
func nameOf(user string, un UserNames) string {
	switch {
	case un.Chosen != "":
		return un.Chosen
	case un.Seen != "":
		return un.Seen
	}
	return user
}

// Me returns the user as others see them: their id and display name.
func (h *Hub) Me(ctx context.Context, id auth.Identity) (Profile, error) {
	id = h.withName(ctx, id)
	return Profile{User: id.User, Name: id.Name}, nil
}

// SetName makes name (cleaned by protocol.CleanDisplayName; bad_request
// otherwise) the user's display name from now on, on every node and over
// every token's name claim. Messages sent from then on carry it, and the
// user's presence is announced again with it in the rooms where they are
// online. A user may rename once a second, in bursts of five
// (rate_limited).
func (h *Hub) SetName(ctx context.Context, id auth.Identity, name string) (Profile, error) {
	clean, err := protocol.CleanDisplayName(name)
	if err != nil {
		return Profile{}, err
	}
	if !h.names.allowRename(id.User) {
		return Profile{}, protocol.Errorf(protocol.CodeRateLimited, "renaming faster than %d times a second", renameRate)
	}
	if err := h.people.SetUserName(ctx, id.User, clean, true); err != nil {
		return Profile{}, internal(err)
	}
	un, _ := h.names.one(ctx, id.User)
	un.Chosen = clean
	h.names.put(id.User, un) // this node sees it at once; the others when the announcement comes
	data, _ := json.Marshal(renamed{User: id.User, Name: clean})
	h.broker.Announce(Control{Topic: TopicName, Data: data})
	return Profile{User: id.User, Name: clean}, nil
}

// renamed is the payload of a TopicName control event.
type renamed struct {
	User string `json:"u"`
	Name string `json:"n"`
}

// onRenamed applies a chosen name announced by any node (this one
// included): the cache takes it, and the user's presence is announced
// again with it. It runs on the broker's goroutine, so the work that may
// wait on the engine runs in a goroutine of the hub's.
func (h *Hub) onRenamed(data []byte) {
	var r renamed
	if json.Unmarshal(data, &r) != nil || protocol.ValidUser(r.User) != nil {
		return
	}
	clean, err := protocol.CleanDisplayName(r.Name)
	if err != nil || clean != r.Name {
		return
	}
	h.names.mu.Lock()
	c := h.names.cache[r.User]
	c.Chosen = r.Name
	h.names.putLocked(r.User, c.UserNames, h.cfg.Now())
	h.names.mu.Unlock()
	rooms := h.renameMember(r.User, r.Name)
	if len(rooms) == 0 {
		return
	}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return
	}
	h.bg.Add(1) // under mu while not closing: Shutdown waits for it
	h.mu.Unlock()
	go func() {
		defer h.bg.Done()
		h.announceRename(r.User, r.Name, rooms)
	}()
}

// renameMember gives user's presence in every local room name, and
// returns the rooms where the user is online here and presence is sent
// per user.
func (h *Hub) renameMember(user, name string) []*room {
	h.mu.Lock()
	all := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		all = append(all, r)
	}
	h.mu.Unlock()
	var out []*room
	for _, r := range all {
		r.mu.Lock()
		if m := r.online[user]; m != nil && !r.dead {
			m.name = name
			if c, ok := r.changes[user]; ok {
				c.name = name
				r.changes[user] = c
			}
			if r.counted == 0 {
				out = append(out, r)
			}
		}
		r.mu.Unlock()
	}
	return out
}

// announceRename tells rooms that user, online there, is now called name:
// a cluster engine renames this node's presence field first, so that the
// presence API shows it too.
func (h *Hub) announceRename(user, name string, rooms []*room) {
	if !h.cfg.Features(user, FeaturePresence) {
		return
	}
	for _, r := range rooms {
		r.mu.Lock()
		m := r.online[user]
		still := m != nil && m.name == name && !r.dead
		r.mu.Unlock()
		if !still {
			continue // gone, or renamed again meanwhile: that rename announces
		}
		if c := h.cluster; c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
			_, _, err := c.Presence(ctx, r.name, []PresenceChange{{User: user, Name: name, Online: true}})
			cancel()
			if err != nil {
				h.cfg.Logger.Debug("presence: cluster rename failed", "room", r.name, "err", err)
			}
		}
		h.broker.Broadcast(r.name, presenceEnvelope(r.name, user, name, true))
	}
}
