package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// presenceScript applies one node's presence changes in a room. KEYS:
// pres, presn. ARGV: node, then user, name, '1' (online) or '0' (offline)
// per change. An online change adds the node's field for the user (or
// renames it); if the field is new the user's node count goes up, and a
// count of 1 is a change across the cluster. An offline change removes
// the field; if there was one the count goes down, and at 0 the user is
// offline everywhere. It returns {online users in the room, then user,
// name, flag of each change across the cluster}; an offline change
// without a name takes the stored one.
var presenceScript = goredis.NewScript(`
local pres, presn, node = KEYS[1], KEYS[2], ARGV[1]
local out = {0}
for i = 2, #ARGV, 3 do
  local user, name, on = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local f = node .. '\0' .. user
  if on == '1' then
    if redis.call('HSET', pres, f, name) == 1 and redis.call('HINCRBY', presn, user, 1) == 1 then
      out[#out + 1] = user; out[#out + 1] = name; out[#out + 1] = on
    end
  else
    local had = redis.call('HGET', pres, f)
    if had then
      redis.call('HDEL', pres, f)
      if redis.call('HINCRBY', presn, user, -1) <= 0 then
        redis.call('HDEL', presn, user)
        if name == '' then name = had end
        out[#out + 1] = user; out[#out + 1] = name; out[#out + 1] = on
      end
    end
  end
end
out[1] = redis.call('HLEN', presn)
return out
`)

// presenceBatch bounds the changes one presenceScript applies, so that a
// room filling up at once, or a big room's cleanup, does not hold Redis
// for long: each batch is atomic, the batches go in one pipeline.
const presenceBatch = 256

// maxPresenceEvents is the most per-user presence envelopes the engine
// publishes for one room at once (cleaning up after a node); beyond it,
// one envelope with the room's count.
const maxPresenceEvents = 100

// presence is this node's presence as the hub gave it: the truth its
// fields in Redis follow. A room whose write failed is dirty: the keeper
// settles it (rewrites the node's fields in the room from here, and
// publishes what that changed) once Redis answers; every room is dirty
// after this node was reaped.
type presence struct {
	mu    sync.Mutex
	rooms map[string]*heldRoom // guarded by mu: rooms that may be in the node's rooms set
	idx   index                // the node's rooms set
}

// heldRoom is this node's presence in one room. Guarded by presence.mu.
type heldRoom struct {
	users map[string]string // user -> name, online here
	ver   uint64            // bumped by every change, so that a settle sees it was overtaken
	dirty bool              // the node's fields in Redis may differ from users
}

func newPresence() presence { return presence{rooms: map[string]*heldRoom{}, idx: newIndex()} }

// apply records changes in room and reports whether one is online.
func (p *presence) apply(room string, changes []core.PresenceChange) (online bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rooms[room]
	if r == nil {
		if !slices.ContainsFunc(changes, func(c core.PresenceChange) bool { return c.Online }) {
			return false // nothing held here, nothing to hold
		}
		r = &heldRoom{users: map[string]string{}}
		p.rooms[room] = r
	}
	for _, c := range changes {
		if c.Online {
			r.users[c.User], online = c.Name, true
		} else {
			delete(r.users, c.User)
		}
	}
	r.ver++
	return online
}

func (p *presence) markDirty(room string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.rooms[room]; r != nil {
		r.dirty = true
	}
}

func (p *presence) dirtyAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rooms {
		r.dirty = r.dirty || len(r.users) > 0
	}
}

// idle returns the rooms (of only, or of all when only is nil) where
// this node holds nothing and has nothing to settle; forget drops those of
// rooms removed from the node's rooms set that are still idle.
func (p *presence) idle(only []string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return idleOf(p.rooms, only, p.isIdle)
}

func (p *presence) forget(rooms []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	forgetIdle(p.rooms, rooms, p.isIdle)
}

// isIdle is idle's test. Called with p.mu held.
func (p *presence) isIdle(room string) bool {
	r := p.rooms[room]
	return r != nil && len(r.users) == 0 && !r.dirty
}

// Presence implements core.Cluster: one pipeline adds room to this node's
// rooms set (when a change is online) and applies the changes with
// presenceScript. The changes are recorded here first, so that when Redis
// cannot be reached the keeper settles the room later and publishes what
// the hub could not.
func (e *Engine) Presence(ctx context.Context, room string, changes []core.PresenceChange) ([]core.PresenceChange, int, error) {
	if err := validKey("room", room); err != nil {
		return nil, 0, err
	}
	for _, c := range changes {
		if err := validKey("user", c.User); err != nil {
			return nil, 0, err
		}
	}
	if err := e.enter(); err != nil {
		return nil, 0, err
	}
	defer e.leave()
	p := &e.cl.pres
	p.idx.begin(room)
	defer p.idx.end(room)
	online := p.apply(room, changes)
	changed, n, err := e.applyPresence(ctx, "presence", e.cfg.Node, room, changes, online)
	if err != nil {
		p.markDirty(room)
		return nil, 0, err
	}
	return changed, n, nil
}

// applyPresence applies node's changes in room, in batches of
// presenceBatch within one pipeline, led by a SADD of room to the node's
// rooms set when add. It returns the changes across the cluster and the
// room's online count.
func (e *Engine) applyPresence(ctx context.Context, op, node, room string, changes []core.PresenceChange, add bool) ([]core.PresenceChange, int, error) {
	k := e.keys.room(room)
	var cmds []*goredis.Cmd
	err := e.call(ctx, op, func(ctx context.Context) error {
		return e.pipeScripts(ctx, func(p goredis.Pipeliner) {
			if add {
				p.SAdd(ctx, e.keys.nodeRooms(node), room)
			}
			cmds = cmds[:0]
			for batch := range slices.Chunk(changes, presenceBatch) {
				cmds = append(cmds, presenceScript.EvalSha(ctx, p, []string{k.pres, k.presn}, presenceArgs(node, batch)...))
			}
			if len(changes) == 0 {
				cmds = append(cmds, presenceScript.EvalSha(ctx, p, []string{k.pres, k.presn}, node))
			}
		}, presenceScript)
	})
	if err != nil {
		return nil, 0, err
	}
	var out []core.PresenceChange
	online := 0
	for _, c := range cmds {
		res, err := c.Slice()
		if err != nil || len(res) == 0 || (len(res)-1)%3 != 0 {
			return nil, 0, fmt.Errorf("%w: presence answered %v, %v", errCorrupt, res, err)
		}
		n, _ := res[0].(int64)
		online = int(n)
		for i := 1; i < len(res); i += 3 {
			user, _ := res[i].(string)
			name, _ := res[i+1].(string)
			flag, _ := res[i+2].(string)
			out = append(out, core.PresenceChange{User: user, Name: name, Online: flag == "1"})
		}
	}
	return out, online, nil
}

func presenceArgs(node string, changes []core.PresenceChange) []any {
	args := make([]any, 0, 1+3*len(changes))
	args = append(args, node)
	for _, c := range changes {
		flag := "0"
		if c.Online {
			flag = "1"
		}
		args = append(args, c.User, c.Name, flag)
	}
	return args
}

// Members implements core.Cluster: the users with a presence field in
// room from a node not known to be dead (its lease had not ended at this
// node's last heartbeat), sorted by user. A user online on several nodes
// is listed once, with the name of this node's field if there is one,
// else that of the node whose id sorts first.
func (e *Engine) Members(ctx context.Context, room string) ([]core.Member, error) {
	if err := validKey("room", room); err != nil {
		return nil, err
	}
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	dead := e.cl.deadNodes()
	type named struct{ name, node string }
	users := map[string]named{}
	err := e.scanAll(ctx, "members", e.hscan(e.keys.room(room).pres, ""), func(kv []string) error {
		for i := 0; i+1 < len(kv); i += 2 {
			node, user, ok := strings.Cut(kv[i], "\x00")
			if !ok || dead[node] {
				continue
			}
			if cur, seen := users[user]; !seen || node == e.cfg.Node || (cur.node != e.cfg.Node && node < cur.node) {
				users[user] = named{kv[i+1], node}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]core.Member, 0, len(users))
	for user, n := range users {
		out = append(out, core.Member{User: user, Name: n.name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// settle makes node's presence fields in room be want (none for nil):
// it finds the node's fields (HSCAN MATCH <node>\x00*), then applies an
// offline change for each user not in want and an online change for each
// one in want. It returns what that changed across the cluster and the
// room's online count.
func (e *Engine) settle(ctx context.Context, node, room string, want map[string]string) ([]core.PresenceChange, int, error) {
	have := map[string]bool{}
	err := e.scanAll(ctx, "presence_settle", e.hscan(e.keys.room(room).pres, globEscape(node)+"\x00*"), func(kv []string) error {
		for i := 0; i < len(kv); i += 2 {
			if _, user, ok := strings.Cut(kv[i], "\x00"); ok {
				have[user] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	var changes []core.PresenceChange
	for user := range have {
		if _, ok := want[user]; !ok {
			changes = append(changes, core.PresenceChange{User: user})
		}
	}
	for user, name := range want {
		changes = append(changes, core.PresenceChange{User: user, Name: name, Online: true})
	}
	if len(changes) == 0 {
		return nil, 0, nil
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].User < changes[j].User })
	return e.applyPresence(ctx, "presence_settle", node, room, changes, len(want) > 0)
}

// publishPresence publishes changes in room as presence envelopes, for
// changes the hub did not announce (a dead node's users going offline, a
// settle after a failed write): one per change, or past maxPresenceEvents
// one with the room's online count.
func (e *Engine) publishPresence(ctx context.Context, room string, changes []core.PresenceChange, online int) error {
	if len(changes) == 0 {
		return nil
	}
	var envs []protocol.Envelope
	if len(changes) > maxPresenceEvents {
		envs = []protocol.Envelope{{Type: protocol.TypePresence, Room: room, Count: protocol.Ptr(online)}}
	} else {
		for _, c := range changes {
			envs = append(envs, protocol.Envelope{Type: protocol.TypePresence, Room: room, User: c.User, Name: c.Name,
				Online: protocol.Ptr(c.Online)})
		}
	}
	ch := e.keys.channel(room)
	return e.call(ctx, "presence_publish", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, env := range envs {
				payload, err := encodeEphemeral(env)
				if err != nil {
					return err
				}
				p.Publish(ctx, ch, payload)
			}
			return nil
		})
		return err
	})
}

// settleDirty settles this node's presence in every dirty room and
// publishes what that changed. A room changed meanwhile, or whose settle
// failed, stays dirty.
func (e *Engine) settleDirty(ctx context.Context) error {
	p := &e.cl.pres
	p.mu.Lock()
	var dirty []string
	for room, r := range p.rooms {
		if r.dirty {
			dirty = append(dirty, room)
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, room := range p.idx.guard(dirty) {
		errs = append(errs, e.settleOwn(ctx, room))
	}
	return errors.Join(errs...)
}

// settleOwn settles this node's presence in room, which the caller has
// guarded in the rooms index.
func (e *Engine) settleOwn(ctx context.Context, room string) error {
	p := &e.cl.pres
	p.mu.Lock()
	r := p.rooms[room]
	if r == nil {
		p.mu.Unlock()
		p.idx.release([]string{room})
		return nil
	}
	want, ver := maps.Clone(r.users), r.ver
	r.dirty = false
	p.mu.Unlock()
	changed, online, err := e.settle(ctx, e.cfg.Node, room, want)
	if err == nil {
		err = e.publishPresence(ctx, room, changed, online)
	}
	touched := p.idx.release([]string{room})
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.rooms[room]; r != nil && (err != nil || touched[room] || r.ver != ver) {
		r.dirty = true
	}
	return err
}
