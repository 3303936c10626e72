/**
 * The Lua scripts of RedisStore. Each store operation is one script, so each is one round trip
 * and atomic: Redis runs a script with nothing interleaved.
 *
 * Keys (all under one hash tag, `{prefix}`, so that a Redis Cluster keeps them in one slot, where
 * scripts may touch several keys):
 * - `{p}m`       hash: `seq` (the sequence number), `floor`, `g` (the generation, see META), and
 *                `t:<tag>` = the tag's last invalidation point. Everything that decides validity lives in this one key, so an
 *                eviction or a flush loses all of it or none of it.
 * - `{p}z`       sorted set: tag → invalidation point, the age order used to bound `{p}m`.
 * - `{p}e:<key>` hash: `v` (the encoded entry), `s` (its sequence number), `t` (its tags, JSON),
 *                `i` (its fill id: unique, never reused, so that a process's copy can be checked),
 *                `c` (its encoded bodies, `StoredEntry.encodings`; absent when it has none).
 * - `{p}t:<tag>` set: keys of the entries carrying the tag, for eager freeing.
 * - `{p}v:<path>` sorted set: the query-string variants of a path (entries stored with
 *                `variant: true`), scored in storing order: the lowest is evicted when one more
 *                would pass `maxVariantsPerPath`. Plain entries are never in it.
 * - `{p}r:<seq>:<tag>` set: the index set of a tag invalidated at `<seq>` by an invalidation whose
 *                tags' index sets listed more than `LAZY_TAG_ENTRIES` entries together (one tag on
 *                many entries, or many paths on a few each), renamed then; its entries are freed a
 *                slice at a time (RECLAIM).
 * - `{p}rq`      list: those sets, oldest first, as `<seq> <key of the set>`.
 *
 * Sequence numbers are integers below 2^53; every number written goes through string.format('%d')
 * because Redis turns a Lua number argument into text with an exponent past 1e14.
 */

/**
 * Reads `seq`, `floor` and `g`, creating them when the meta hash is missing (first use, FLUSHALL, an
 * eviction, a restart without persistence). A new sequence starts at the server clock in
 * microseconds, above every number handed out before (one per invalidation cannot outrun the
 * clock), and becomes the floor: nothing stored or rendered under the lost numbers is valid again.
 *
 * `g` is the generation: a value no generation had before, replaced whenever the numbers may start
 * over (the meta hash re-created here, a raise after a lost connection). A fill sends the generation
 * it read its sequence number under, and is refused when it is no longer the current one: whatever
 * the clock says, a number read before a raise cannot be stored after it, even if the raise landed
 * on that same number (a clock behind, a Redis back from an older snapshot).
 */
const META = `
local function fmt(n) return string.format('%d', n) end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2]), t[1] .. '.' .. t[2]
end
local function meta(m)
  local v = redis.call('HMGET', m, 'seq', 'floor', 'g')
  if v[1] and v[2] and v[3] then return tonumber(v[1]), tonumber(v[2]), v[3] end
  local n, t = now()
  local g = 'm' .. t .. '.' .. (v[1] or '') .. '.' .. (v[3] or '')
  if v[1] and v[2] then
    -- Written by a release without generations: keep the numbers, add a generation.
    redis.call('HSET', m, 'g', g)
    return tonumber(v[1]), tonumber(v[2]), g
  end
  if v[1] and tonumber(v[1]) >= n then n = tonumber(v[1]) + 1 end
  redis.call('HSET', m, 'seq', fmt(n), 'floor', fmt(n), 'g', g)
  return n, n, g
end
`;

/**
 * get. KEYS: meta, entry. Answers `{encoded entry, fill id, encoded bodies or nil}` while the
 * entry is valid: its sequence number is at or above the floor, not above the current one (a Redis
 * that came back with an older sequence never vouches for numbers it did not hand out), and none of
 * its tags was invalidated after it. Otherwise frees the entry and answers `{seq, generation}`, which the fill that
 * follows a miss may use (it was read before the render started, which is all the fill protocol
 * asks of it).
 */
export const GET = `${META}
local function miss()
  local seq, _, g = meta(KEYS[1])
  return {seq, g}
end
local e = redis.call('HMGET', KEYS[2], 'v', 's', 't', 'i', 'c')
if not e[1] then return miss() end
local s = tonumber(e[2])
local tags = cjson.decode(e[3])
local fields = {'seq', 'floor'}
for i = 1, #tags do fields[i + 2] = 't:' .. tags[i] end
local v = redis.call('HMGET', KEYS[1], unpack(fields))
if v[1] and v[2] and s >= tonumber(v[2]) and s <= tonumber(v[1]) then
  local ok = true
  for i = 3, #v do
    if v[i] and tonumber(v[i]) > s then ok = false break end
  end
  if ok then return {e[1], e[4], e[5]} end
end
redis.call('UNLINK', KEYS[2])
return miss()
`;

/** sequence. KEYS: meta. Answers `{seq, generation}`. */
export const SEQUENCE = `${META}
local seq, _, g = meta(KEYS[1])
return {seq, g}
`;

/**
 * set. KEYS: meta, entry, the index set of the path tag, the path's variants (sorted set), then the
 * index sets of the other tags.
 * ARGV: encoded entry, seq, tags (JSON), ttl in ms (0 = none), max variants, fill id, '1' for a
 * query-string variant ('0' for the plain page), the generation seq was read under ('' when not
 * known), the encoded bodies ('' for none), the pub/sub channel of sets ('' for none), the message
 * to publish on it (`<store id> <key>`), then the tags. The entry replaces the key's hash whole: an
 * entry stored again without encoded bodies keeps none of the previous one's. Once stored, the
 * message tells the local tiers of other processes that the key holds another entry.
 * Answers 1 when stored, 0 when refused: a tag invalidated after seq, a floor above it, a seq above
 * the current one (handed out before Redis lost or rolled back its data), or a generation that is
 * no longer the current one (the meta hash lost or the floor raised since the render started). With a
 * ttl, the same entry stored again (same seq and encoded entry: its compressed copies added) keeps
 * the time it had left. A variant is never refused for the bound: the variant of the path
 * stored least recently makes room for it, and leaves every index set it is in (the keys of those
 * sets are made from the prefix of the meta key: they are in the same slot). A plain page is
 * neither counted nor evicted.
 */
export const SET = `
local s = tonumber(ARGV[2])
local fields = {'seq', 'floor', 'g'}
for i = 12, #ARGV do fields[#fields + 1] = 't:' .. ARGV[i] end
local v = redis.call('HMGET', KEYS[1], unpack(fields))
if not v[1] or not v[2] or s < tonumber(v[2]) or s > tonumber(v[1]) then return 0 end
if ARGV[8] ~= '' and v[3] ~= ARGV[8] then return 0 end
for i = 4, #v do
  if v[i] and tonumber(v[i]) > s then return 0 end
end
local ttl = tonumber(ARGV[4])
if ARGV[7] == '1' then
  local vz = KEYS[4]
  local order = 1
  local last = redis.call('ZRANGE', vz, -1, -1, 'WITHSCORES')
  if last[2] then order = tonumber(last[2]) + 1 end
  if not redis.call('ZSCORE', vz, KEYS[2]) then
    -- One more variant: evict in storing order until it fits. A variant that expired or was
    -- evicted by Redis still has its member here; popping it frees its place without a victim.
    local max = math.max(tonumber(ARGV[5]), 1)
    -- The victim leaves the index set of every tag it has (its tags are in its hash), so that a
    -- flood of junk variants cannot grow the sets of prefix tags or tags added during the render.
    local base = string.sub(KEYS[1], 1, -2)
    while redis.call('ZCARD', vz) >= max do
      local victim = redis.call('ZPOPMIN', vz)[1]
      local vt = redis.call('HGET', victim, 't')
      redis.call('UNLINK', victim)
      redis.call('SREM', KEYS[3], victim)
      if vt then
        for _, tag in ipairs(cjson.decode(vt)) do redis.call('SREM', base .. 't:' .. tag, victim) end
      end
    end
  end
  redis.call('ZADD', vz, string.format('%d', order), KEYS[2])
end
-- The same entry stored again (with its compressed copies) keeps the time it has left: ttl
-- counts from the render, not from the last time the entry was stored.
local keep = -1
if ttl > 0 then
  local old = redis.call('HMGET', KEYS[2], 's', 'v')
  if old[1] == ARGV[2] and old[2] == ARGV[1] then keep = redis.call('PTTL', KEYS[2]) end
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'v', ARGV[1], 's', ARGV[2], 't', ARGV[3], 'i', ARGV[6])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[2], 'c', ARGV[9]) end
redis.call('SADD', KEYS[3], KEYS[2])
for i = 5, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[2])
end
if ttl > 0 then
  -- Index sets are refreshed with every member, so they outlive the entries they list.
  for i = 3, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
  redis.call('PEXPIRE', KEYS[2], keep > 0 and keep or ttl)
end
if ARGV[10] ~= '' then redis.call('PUBLISH', ARGV[10], ARGV[11]) end
return 1
`;

/**
 * An invalidation whose tags' index sets list more entries than this, together, is lazy: the
 * entries are invalid at once (GET and SET check the tags' points anyway), and freed by RECLAIM,
 * a slice per call, instead of inside INVALIDATE, which would hold Redis (every client of it) for
 * about a second per 10,000 entries freed with their bodies, or per million listed by one tag.
 * Counted together, not per tag: 10,000 paths on one entry each cost as much to free as one tag
 * on 10,000 entries.
 */
export const LAZY_TAG_ENTRIES = 1000;

/**
 * invalidate. KEYS: meta, age order, then the index set of every tag, then the variants set of
 * every tag (a tag that is no path has none: the key is simply absent), then the reclaim queue.
 * ARGV: max tracked tags, pub/sub channel ('' for none), then the tags.
 * Bumps the sequence number once, records it as every tag's invalidation point, frees the entries
 * the index sets list, bounds the meta hash, and publishes `<seq> <tags as JSON>` for local tiers.
 * When the sets list more than LAZY_TAG_ENTRIES entries together, none is freed here: every
 * non-empty set is renamed and queued for RECLAIM, a constant amount of work per tag whatever the
 * number of entries. Answers `{seq, sets queued for RECLAIM}`.
 */
export const INVALIDATE = `${META}
meta(KEYS[1])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local s = fmt(seq)
local max = tonumber(ARGV[1])
local n = #ARGV - 2
local batch = 500
for from = 1, n, batch do
  local h, z = {}, {}
  for i = from, math.min(from + batch - 1, n) do
    local tag = ARGV[i + 2]
    h[#h + 1] = 't:' .. tag
    h[#h + 1] = s
    z[#z + 1] = s
    z[#z + 1] = tag
  end
  redis.call('HSET', KEYS[1], unpack(h))
  redis.call('ZADD', KEYS[2], unpack(z))
end
-- Free the entries listed by the index sets, and the sets, a few hundred keys per UNLINK; or,
-- past LAZY_TAG_ENTRIES entries together, leave them to RECLAIM.
local listed, sizes = 0, {}
for i = 1, n do
  sizes[i] = redis.call('SCARD', KEYS[i + 2])
  listed = listed + sizes[i]
end
local lazy = listed > ${LAZY_TAG_ENTRIES}
local renamed = {}
local doomed, queued = {}, {}
local rq = KEYS[#KEYS]
local base = string.sub(KEYS[1], 1, -2)
for i = 1, n do
  local idx = KEYS[i + 2]
  doomed[#doomed + 1] = KEYS[i + 2 + n]
  if lazy then
    -- Entries stored from now on go to a new index set; those listed are freed by RECLAIM. A tag
    -- named twice is renamed once.
    if sizes[i] > 0 and not renamed[idx] then
      renamed[idx] = true
      local r = base .. 'r:' .. s .. ':' .. ARGV[i + 2]
      redis.call('RENAME', idx, r)
      queued[#queued + 1] = s .. ' ' .. r
      if #queued >= batch then
        redis.call('RPUSH', rq, unpack(queued))
        queued = {}
      end
    end
  else
    doomed[#doomed + 1] = idx
    for _, k in ipairs(redis.call('SMEMBERS', idx)) do doomed[#doomed + 1] = k end
  end
  if #doomed >= batch then
    redis.call('UNLINK', unpack(doomed))
    doomed = {}
  end
end
if #doomed > 0 then redis.call('UNLINK', unpack(doomed)) end
if #queued > 0 then redis.call('RPUSH', rq, unpack(queued)) end
-- Bound the invalidation points: fold the oldest half into the floor. Entries older than the
-- folded points become invalid, which is safe (a re-render) and rare. The floor never goes down:
-- the age order can list points below it (it outlived a lost meta hash, or the floor was raised).
local tracked = redis.call('ZCARD', KEYS[2])
if tracked > max then
  local drop = tracked - math.floor(max / 2)
  local old = redis.call('ZRANGE', KEYS[2], 0, drop - 1, 'WITHSCORES')
  local f = {}
  for i = 1, #old, 2 do f[#f + 1] = 't:' .. old[i] end
  for from = 1, #f, batch do
    redis.call('HDEL', KEYS[1], unpack(f, from, math.min(from + batch - 1, #f)))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, drop - 1)
  local floor = tonumber(redis.call('HGET', KEYS[1], 'floor'))
  if tonumber(old[#old]) > floor then redis.call('HSET', KEYS[1], 'floor', fmt(tonumber(old[#old]))) end
elseif redis.call('HLEN', KEYS[1]) > 2 * max + 3 then
  -- The age order was lost (evicted apart from the meta hash): fold everything.
  local g = redis.call('HGET', KEYS[1], 'g')
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'seq', s, 'floor', s, 'g', g)
end
if ARGV[2] ~= '' and n > 0 then
  local list = {}
  for i = 1, n do list[i] = ARGV[i + 2] end
  redis.call('PUBLISH', ARGV[2], s .. ' ' .. cjson.encode(list))
end
return {seq, redis.call('LLEN', rq)}
`;

/**
 * reclaim. KEYS: the reclaim queue. ARGV: how many entries at most.
 * Frees up to that many entries of the sets queued by INVALIDATE, oldest first: those stored before
 * the invalidation (a sequence number below it); an entry stored again since under the same key is
 * valid and stays. Drops each set once empty. A set counts as one entry of the budget, so that a
 * queue of many small sets (many paths invalidated at once) goes as fast as one large set, and a
 * call stays as short. Answers the sets still queued.
 */
export const RECLAIM = `
local budget = tonumber(ARGV[1])
local doomed = {}
while budget > 0 do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local sp = string.find(head, ' ', 1, true)
  local seq = tonumber(string.sub(head, 1, sp - 1))
  local set = string.sub(head, sp + 1)
  local keys = redis.call('SPOP', set, budget)
  for _, k in ipairs(keys) do
    local s = redis.call('HGET', k, 's')
    if s and tonumber(s) < seq then doomed[#doomed + 1] = k end
  end
  if #keys < budget then
    redis.call('LPOP', KEYS[1])
    redis.call('DEL', set)
  end
  budget = budget - #keys - 1
end
for from = 1, #doomed, 500 do redis.call('UNLINK', unpack(doomed, from, math.min(from + 499, #doomed))) end
return redis.call('LLEN', KEYS[1])
`;

/**
 * clear. KEYS: meta, age order. ARGV: pub/sub channel ('' for none).
 * Raises the floor to a new sequence number: every entry and every render in flight is invalid at
 * once; the entries themselves are then deleted by a scan outside the script.
 */
export const CLEAR = `${META}
local _, _, g = meta(KEYS[1])
local s = fmt(redis.call('HINCRBY', KEYS[1], 'seq', 1))
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'seq', s, 'floor', s, 'g', g)
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], s .. ' *') end
return tonumber(s)
`;

/**
 * raise. KEYS: meta. ARGV: pub/sub channel ('' for none), a new generation (unique: the store's
 * random origin and a counter), the highest number the store handed out.
 * Run by a store whose connection to Redis was lost, once it is back and before it answers any get
 * with an entry. Moves the sequence number and the floor to the server clock in microseconds, or
 * one above the sequence number or the store's highest number if either is higher (so that the
 * store's numbers from before and after never overlap), and replaces the generation: every entry
 * stored and every render begun before is invalid, in every process, in constant time. The floor
 * makes the entries invalid; the generation refuses the renders, whatever number the floor lands
 * on (a Redis back from an older snapshot has a sequence number below numbers it handed out before
 * the loss, and its clock may be behind them too).
 * Publishes `<seq> *` so that local tiers empty themselves, as for clear().
 */
export const RAISE = `${META}
local s = meta(KEYS[1])
local n = now()
if n <= s then n = s + 1 end
local m = tonumber(ARGV[3])
if n <= m then n = m + 1 end
redis.call('HSET', KEYS[1], 'seq', fmt(n), 'floor', fmt(n), 'g', ARGV[2])
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], fmt(n) .. ' *') end
return n
`;

/**
 * The purge queue (`Store.queuePush` and the others). Keys, per queue, under the same hash tag:
 * - `{p}qz:<queue>` sorted set: item id → when it is due (ms since the epoch; a claimed item: the
 *                  end of its lease).
 * - `{p}qi:<queue>` sorted set: item id → item id, for the oldest id left (`queueStats`).
 * - `{p}qh:<queue>` hash: `n` (the last id handed out, never reused), `p<id>` (payload), `a<id>`
 *                  (attempts).
 * `clear()` leaves them alone: they hold work still to be done, not pages.
 */

/** push. KEYS: qz, qi, qh. ARGV: due, payloads... Answers the new ids, in order. */
export const QUEUE_PUSH = `
local count = #ARGV - 1
-- The counter is never behind the ids still queued, even if the hash was evicted (an id reused
-- would overwrite a queued purge).
local n = tonumber(redis.call('HGET', KEYS[3], 'n') or '0')
local top = redis.call('ZRANGE', KEYS[2], -1, -1)
if top[1] and tonumber(top[1]) > n then n = tonumber(top[1]) end
local last = n + count
redis.call('HSET', KEYS[3], 'n', last)
local ids = {}
for i = 1, count do
  local id = last - count + i
  redis.call('ZADD', KEYS[1], ARGV[1], id)
  redis.call('ZADD', KEYS[2], id, id)
  redis.call('HSET', KEYS[3], 'p' .. id, ARGV[i + 1])
  ids[i] = id
end
return ids
`;

/**
 * claim. KEYS: qz, qh, qi. ARGV: now, now + lease, max. The first element answered is the number of
 * items dropped because their payload was gone (evicted). Takes the items due at \`now\`, earliest due
 * first, makes them due at the end of the lease, counts the attempt; answers id, payload, attempts
 * for each, flat. Atomic: two processes never claim one item while its lease runs.
 */
export const QUEUE_CLAIM = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {0}
for _, id in ipairs(ids) do
  local p = redis.call('HGET', KEYS[2], 'p' .. id)
  if p then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    local a = redis.call('HINCRBY', KEYS[2], 'a' .. id, 1)
    out[#out + 1] = tonumber(id)
    out[#out + 1] = p
    out[#out + 1] = a
  else
    -- Its payload is gone (the hash was evicted): nothing to send; dropped, and counted.
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[2], 'a' .. id)
    out[1] = out[1] + 1
  end
end
return out
`;

/** ack. KEYS: qz, qi, qh. ARGV: ids... */
export const QUEUE_ACK = `
for i = 1, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[3], 'p' .. ARGV[i], 'a' .. ARGV[i])
end
return 0
`;

/** retry. KEYS: qz. ARGV: due, ids... Only ids still queued (XX): an acknowledged item stays gone. */
export const QUEUE_RETRY = `
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i]) end
return 0
`;

/** stats. KEYS: qz, qi. Answers size, the first and last ids (or false), the earliest due (or false). */
export const QUEUE_STATS = `
local size = redis.call('ZCARD', KEYS[1])
local first = redis.call('ZRANGE', KEYS[2], 0, 0)
local last = redis.call('ZRANGE', KEYS[2], -1, -1)
local due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {size, first[1] and tonumber(first[1]) or false, last[1] and tonumber(last[1]) or false, due[2] or false}
`;

/**
 * list. KEYS: meta, then entry keys (from a SCAN or an SSCAN). ARGV: path prefix ('' for none),
 * tag ('' for none), '1' to count only. For every key that holds an entry `get()` would answer
 * (its number between the floor and the current one, none of its tags invalidated after it) and
 * that passes the filters, answers, flat: the key, the entry's JSON head, the body's bytes, the
 * head of its encoded bodies ('' for none), the bytes of its fields. Counting only: `{entries,
 * bytes}`, without reading the bodies. Reads only; frees nothing (a get does that).
 */
export const LIST = `
local m = redis.call('HMGET', KEYS[1], 'seq', 'floor')
local count = ARGV[3] == '1'
local out, n, total = {}, 0, 0
if not m[1] or not m[2] then
  if count then return {0, 0} end
  return out
end
local seq, floor = tonumber(m[1]), tonumber(m[2])
local prefix, tag = ARGV[1], ARGV[2]
local function u32(s, at)
  local a, b, c, d = string.byte(s, at, at + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
for i = 2, #KEYS do
  local e = redis.call('HMGET', KEYS[i], 's', 't')
  local s = tonumber(e[1])
  local ok = s ~= nil and e[2] and s >= floor and s <= seq
  local tags
  if ok then
    tags = cjson.decode(e[2])
    -- The path is the first tag: a prefix is checked before the entry (and its body) is read.
    if prefix ~= '' then ok = tags[1] ~= nil and string.sub(tags[1], 1, #prefix) == prefix end
    if ok and tag ~= '' then
      ok = false
      for _, t in ipairs(tags) do if t == tag then ok = true break end end
    end
  end
  if ok and #tags > 0 then
    local fields = {}
    for j = 1, #tags do fields[j] = 't:' .. tags[j] end
    local points = redis.call('HMGET', KEYS[1], unpack(fields))
    for j = 1, #tags do
      if points[j] and tonumber(points[j]) > s then ok = false break end
    end
  end
  if ok and count then
    n = n + 1
    total = total + #KEYS[i] + #e[2] + redis.call('HSTRLEN', KEYS[i], 'v') + redis.call('HSTRLEN', KEYS[i], 'c')
  elseif ok then
    local f = redis.call('HMGET', KEYS[i], 'v', 'c')
    local v, c = f[1], f[2]
    if v then
      local hn = u32(v, 1)
      out[#out + 1] = KEYS[i]
      out[#out + 1] = string.sub(v, 5, 4 + hn)
      out[#out + 1] = #v - 4 - hn
      out[#out + 1] = c and string.sub(c, 1, 4 + u32(c, 1)) or ''
      out[#out + 1] = #KEYS[i] + #e[2] + #v + (c and #c or 0)
    end
  end
end
if count then return {n, total} end
return out
`;
