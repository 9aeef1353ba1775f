package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Each touches the keys of one room only (one Cluster
// slot) and runs atomically; goredis.Script runs them by EVALSHA and falls
// back to EVAL when Redis has forgotten them (after a restart).

// luaLib is prepended to the scripts that need it.
const luaLib = `
local function s(n) return string.format('%d', n) end
local function seqOf(id) return tonumber(string.match(id, '^(%d+)')) end

-- forget removes the idempotency entry of a pruned stream entry, if it
-- still points at that entry.
local function forget(ids, e)
  local ok, r = pcall(cjson.decode, e[2][2])
  if ok and type(r) == 'table' and type(r.i) == 'string' then
    if redis.call('HGET', ids, r.i) == s(seqOf(e[1])) then
      redis.call('HDEL', ids, r.i)
    end
  end
end

-- drop forgets a stream entry about to be pruned: its idempotency entry
-- and its state in cur; and if it is a message that still has files (not
-- deleted), it adds its record to out, for the files to be released.
local function drop(ids, cur, e, out)
  local seq = s(seqOf(e[1]))
  local st = redis.call('HGET', cur, seq)
  redis.call('HDEL', cur, seq)
  local ok, r = pcall(cjson.decode, e[2][2])
  if not ok or type(r) ~= 'table' then return end
  if type(r.i) == 'string' and redis.call('HGET', ids, r.i) == seq then
    redis.call('HDEL', ids, r.i)
  end
  if r.k or type(r.a) ~= 'table' or #r.a == 0 then return end
  if st and string.find(st, '"d":true', 1, true) then return end
  out[#out + 1] = e[2][2]
end

-- ensure reads the room's head and first, creating the room (with a new
-- epoch) if it has no meta. If floor, the highest seq this node has seen,
-- is beyond the head, Redis has lost data: the head is raised to floor so
-- that no seq is handed out twice, and what is left of the history (and
-- of its edit state) is dropped so that the retained range stays
-- contiguous and older resumes answer recovered:false. It returns head,
-- first and the head before a raise (-1 when there was none).
local function ensure(meta, log, ids, cur, epoch, floor)
  local m = redis.call('HMGET', meta, 'head', 'first')
  local head, first = tonumber(m[1]), tonumber(m[2])
  if not head then
    head, first = 0, 1
    redis.call('HSET', meta, 'head', '0', 'first', '1', 'epoch', epoch)
  end
  if floor <= head then
    return head, first, -1
  end
  local raised = head
  for _, e in ipairs(redis.call('XRANGE', log, '-', '+')) do
    forget(ids, e)
  end
  redis.call('DEL', log, cur)
  head, first = floor, floor + 1
  redis.call('HSET', meta, 'head', s(head), 'first', s(first))
  return head, first, raised
end
`

// appendScript stores one entry: a message, or an edit or a delete of
// one (see amendLib). KEYS: meta, log, ids, cur. ARGV: id, record, max
// retained (negative: no limit), channel, epoch for a new room, floor,
// kind (” for a message, 'edit', 'delete'), target seq, most edits of
// one message, an edit's text as a JSON string, the entry's stamp. It
// returns {1, seq, record, state or nil} for a duplicate id; {2, code,
// message} for an edit or a delete it refuses, having written nothing
// but the room's meta; else {0, seq, head before a raise or -1, record…}
// where the records are those whose files were released: a deleted
// message's and pruned messages' that still had some. It prunes at most
// trimBatch of the oldest at once, so that an append after MaxMessages
// was lowered does not hold Redis for long: the next appends go on.
var appendScript = goredis.NewScript(luaLib + amendLib + `
local meta, log, ids, cur = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, rec, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local kind, target = ARGV[7], tonumber(ARGV[8])
local known = redis.call('HGET', ids, id)
if known then
  local e = redis.call('XRANGE', log, known, known)
  if e[1] then
    return {1, tonumber(known), e[1][2][2], redis.call('HGET', cur, known)}
  end
  redis.call('HDEL', ids, id)
end
local head, first, raised = ensure(meta, log, ids, cur, ARGV[5], tonumber(ARGV[6]))
local out = {0, 0, raised}
local trec, tstate
if kind ~= '' then
  local refusal
  trec, tstate, refusal = checkTarget(log, cur, kind, target, first, head, tonumber(ARGV[9]))
  if refusal then return refusal end
end
head = head + 1
redis.call('XADD', log, s(head) .. '-0', 'm', rec)
redis.call('HSET', ids, id, s(head))
redis.call('HSET', meta, 'head', s(head))
if kind ~= '' then
  applyTarget(cur, kind, target, trec, tstate, head, ARGV[10], ARGV[11], out)
end
if max >= 0 and head - first + 1 > max then
  for _, e in ipairs(redis.call('XRANGE', log, '-', '+', 'COUNT', math.min(head - first + 1 - max, 256))) do
    drop(ids, cur, e, out)
    first = seqOf(e[1]) + 1
  end
  redis.call('XTRIM', log, 'MINID', s(first))
  redis.call('HSET', meta, 'first', s(first))
end
redis.call('PUBLISH', ARGV[4], 'm' .. s(head) .. ' ' .. rec)
out[2] = head
return out
`)

// raiseScript raises a room's head to at least floor (see ensure).
// KEYS: meta, log, ids, cur. ARGV: epoch for a new room, floor. It
// returns {head, head before a raise or -1}.
var raiseScript = goredis.NewScript(luaLib + `
local head, first, raised = ensure(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], tonumber(ARGV[2]))
return {head, raised}
`)

// lookupScript finds a retained message by id. KEYS: ids, log, cur.
// ARGV: id. It returns {seq, record, state or nil}, or nil.
var lookupScript = goredis.NewScript(`
local seq = redis.call('HGET', KEYS[1], ARGV[1])
if not seq then return false end
local e = redis.call('XRANGE', KEYS[2], seq, seq)
if not e[1] then return false end
return {tonumber(seq), e[1][2][2], redis.call('HGET', KEYS[3], seq)}
`)

// readScript reads a room's bounds and epoch and a range of its log, with
// the state in cur of each entry read: one snapshot. KEYS: meta, log,
// cur. ARGV: 'f' (XRANGE) or 'r' (XREVRANGE), start, end, count (0: the
// bounds only). It returns {{head, first, epoch}, entries, states}.
var readScript = goredis.NewScript(`
local xs = {}
local n = tonumber(ARGV[4])
if n > 0 then
  local cmd = 'XRANGE'
  if ARGV[1] == 'r' then cmd = 'XREVRANGE' end
  xs = redis.call(cmd, KEYS[2], ARGV[2], ARGV[3], 'COUNT', n)
end
local st = {}
if #xs > 0 then
  local seqs = {}
  for i, e in ipairs(xs) do seqs[i] = string.match(e[1], '^(%d+)') end
  st = redis.call('HMGET', KEYS[3], unpack(seqs))
end
return {redis.call('HMGET', KEYS[1], 'head', 'first', 'epoch'), xs, st}
`)

// readsScript raises read positions in one room, never lowering one.
// KEYS: reads. ARGV: user, seq, user, seq… It returns the stored
// positions, in order.
var readsScript = goredis.NewScript(`
local out = {}
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  local want = tonumber(ARGV[i + 1])
  if want > cur then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    cur = want
  end
  out[#out + 1] = cur
end
return out
`)

// sweepScript prunes a room's messages stamped before a cutoff, at most
// limit of them at once. Stamps follow seq order (one clock, assumed not
// to go back), so it stops at the first message young enough to keep, or
// at one it cannot read, and trims the stream up to it with one XTRIM
// MINID (no per-entry tombstones). KEYS: meta, log, ids, cur. ARGV:
// cutoff (Unix ms), limit. It returns {how many it pruned, 1 if there
// may be more to prune, record…}, the records those of pruned messages
// whose files are released.
var sweepScript = goredis.NewScript(luaLib + `
local meta, log, ids, cur = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cutoff, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if not redis.call('HGET', meta, 'head') then return {0, 0} end
local batch = redis.call('XRANGE', log, '-', '+', 'COUNT', limit)
local n, last = 0, 0
local out = {0, 0}
for _, e in ipairs(batch) do
  local ok, r = pcall(cjson.decode, e[2][2])
  if not ok or type(r) ~= 'table' or type(r.s) ~= 'number' or r.s >= cutoff then
    break
  end
  drop(ids, cur, e, out)
  last, n = seqOf(e[1]), n + 1
end
if n == 0 then return {0, 0} end
redis.call('XTRIM', log, 'MINID', s(last + 1))
redis.call('HSET', meta, 'first', s(last + 1))
out[1] = n
if n == limit then out[2] = 1 end
return out
`)
