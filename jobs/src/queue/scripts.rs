//! The Lua scripts of the queue. Each touches the keys of one queue only (one hash tag, one
//! cluster slot) and is atomic.
//!
//! Entry fields: `i` job id (stable across retries), `a` attempts made so far, `p` payload,
//! `d` dedupe key name (when it is released at the end of the job), `e` last error, `o`
//! the stream id the entry had before it was dead-lettered.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: stream, delayed, delayed_data, dedupe (or unused).
/// ARGV: job id, payload, dedupe name or '', dedupe ttl ms, '1' to release the dedupe key when
/// the job ends, run_at ms or ''.
/// Returns `{'enqueued', stream id}`, `{'scheduled', job id}` or `{'duplicate', job id}`.
pub(crate) static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local uid = ARGV[1]
if ARGV[3] ~= '' then
  if not redis.call('SET', KEYS[4], uid, 'NX', 'PX', ARGV[4]) then
    return {'duplicate', redis.call('GET', KEYS[4]) or ''}
  end
end
local f = {'i', uid, 'a', '0', 'p', ARGV[2]}
if ARGV[3] ~= '' and ARGV[5] == '1' then
  f[#f + 1] = 'd'
  f[#f + 1] = ARGV[3]
end
if ARGV[6] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local due = tonumber(ARGV[6])
  if due > now then
    redis.call('HSET', KEYS[3], uid, cmsgpack.pack(f))
    redis.call('ZADD', KEYS[2], due, uid)
    return {'scheduled', uid}
  end
end
return {'enqueued', redis.call('XADD', KEYS[1], '*', unpack(f))}
",
    )
});

/// KEYS: stream, dedupe (or unused). ARGV: group, stream id, job id.
/// Acknowledges and deletes the entry, releases the dedupe key it holds.
/// Returns 1, or 0 when the entry was no longer ours (reclaimed meanwhile).
pub(crate) static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return acked
",
    )
});

/// KEYS: stream, delayed, delayed_data.
/// ARGV: group, stream id, job id, attempts made, error, delay ms.
/// Moves the entry to the delayed set (or back to the stream when the delay is 0).
/// Returns 1, or 0 when the entry was no longer ours.
pub(crate) static RETRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if #e == 0 then
  return 0
end
local src, f = e[1][2], {}
for k = 1, #src, 2 do
  if src[k] ~= 'a' and src[k] ~= 'e' then
    f[#f + 1] = src[k]
    f[#f + 1] = src[k + 1]
  end
end
f[#f + 1] = 'a'
f[#f + 1] = ARGV[4]
f[#f + 1] = 'e'
f[#f + 1] = ARGV[5]
local delay = tonumber(ARGV[6])
if delay <= 0 then
  redis.call('XADD', KEYS[1], '*', unpack(f))
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[3], ARGV[3], cmsgpack.pack(f))
redis.call('ZADD', KEYS[2], now + delay, ARGV[3])
return 1
",
    )
});

/// KEYS: stream, dead, dedupe (or unused).
/// ARGV: group, stream id, job id, attempts made, error, dead-letter max length.
/// Returns `{dead id, {fields...}}`, or nil when the entry was no longer ours.
pub(crate) static DEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return false
end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('DEL', KEYS[3])
end
if #e == 0 then
  return false
end
local src, f = e[1][2], {}
for k = 1, #src, 2 do
  if src[k] ~= 'a' and src[k] ~= 'e' and src[k] ~= 'o' then
    f[#f + 1] = src[k]
    f[#f + 1] = src[k + 1]
  end
end
f[#f + 1] = 'a'
f[#f + 1] = ARGV[4]
f[#f + 1] = 'e'
f[#f + 1] = ARGV[5]
f[#f + 1] = 'o'
f[#f + 1] = ARGV[2]
return {redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(f)), f}
",
    )
});

/// KEYS: stream, delayed, delayed_data. ARGV: max entries to move.
/// Moves due delayed entries to the stream.
/// Returns `{moved, ms until the next one is due or -1}` (server clock).
pub(crate) static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, uid in ipairs(due) do
  local packed = redis.call('HGET', KEYS[3], uid)
  if packed then
    redis.call('XADD', KEYS[1], '*', unpack(cmsgpack.unpack(packed)))
    redis.call('HDEL', KEYS[3], uid)
  end
  redis.call('ZREM', KEYS[2], uid)
end
local wait = -1
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt > 0 then
  wait = math.max(0, tonumber(nxt[2]) - now)
end
return {#due, wait}
",
    )
});

/// KEYS: stream, dead.
/// ARGV: group, claiming consumer, min idle ms, cursor, count, max attempts, dead max length.
/// Claims entries idle longer than min idle (their consumer died or hung), counts the lost
/// attempt, and puts them back at the end of the stream, or dead-letters them when no attempt
/// is left. Returns `{next cursor, requeued, {{dead id, {fields...}}...}}` (nothing yet
/// when the group does not exist).
pub(crate) static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.pcall('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
if type(r) == 'table' and r.err then
  if string.find(r.err, 'NOGROUP', 1, true) then
    return {'0-0', 0, {}}
  end
  return r
end
local tag = string.sub(KEYS[1], 1, #KEYS[1] - 7)
local requeued, dead = 0, {}
for _, entry in ipairs(r[2]) do
  local id, src = entry[1], entry[2]
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
  if src then
    local a, uid, dedupe, f = 0, '', nil, {}
    for k = 1, #src, 2 do
      local name, value = src[k], src[k + 1]
      if name == 'a' then
        a = tonumber(value)
      elseif name ~= 'e' and name ~= 'o' then
        if name == 'i' then uid = value end
        if name == 'd' then dedupe = value end
        f[#f + 1] = name
        f[#f + 1] = value
      end
    end
    a = a + 1
    f[#f + 1] = 'a'
    f[#f + 1] = tostring(a)
    f[#f + 1] = 'e'
    f[#f + 1] = 'worker lost during attempt ' .. a .. ': no heartbeat for ' .. ARGV[3] .. ' ms'
    if a >= tonumber(ARGV[6]) then
      f[#f + 1] = 'o'
      f[#f + 1] = id
      local did = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', unpack(f))
      if dedupe then
        local dk = tag .. ':dedupe:' .. dedupe
        if redis.call('GET', dk) == uid then redis.call('DEL', dk) end
      end
      dead[#dead + 1] = {did, f}
    else
      redis.call('XADD', KEYS[1], '*', unpack(f))
      requeued = requeued + 1
    end
  end
end
return {r[1], requeued, dead}
",
    )
});

/// KEYS: stream. ARGV: group, consumer, max entries.
/// Hands a consumer's pending entries back: each goes to the end of the stream unchanged
/// (the interrupted attempt does not count), then the consumer is deleted.
/// Returns the number of entries handed back.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[3]), ARGV[2])
if type(p) ~= 'table' or p.err then
  return 0
end
local n = 0
for _, row in ipairs(p) do
  local id = row[1]
  local e = redis.call('XRANGE', KEYS[1], id, id)
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
  if #e > 0 then
    redis.call('XADD', KEYS[1], '*', unpack(e[1][2]))
    n = n + 1
  end
end
if #p < tonumber(ARGV[3]) then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return n
",
    )
});

/// KEYS: stream, dead. ARGV: dead entry id or '' for the oldest ones, max entries.
/// Re-drives dead entries: back to the stream with a fresh attempt count.
/// Returns the number re-driven.
pub(crate) static DEAD_RETRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local entries
if ARGV[1] ~= '' then
  entries = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
else
  entries = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', tonumber(ARGV[2]))
end
for _, e in ipairs(entries) do
  local src, f = e[2], {}
  for k = 1, #src, 2 do
    local name = src[k]
    if name ~= 'a' and name ~= 'e' and name ~= 'o' then
      f[#f + 1] = name
      f[#f + 1] = src[k + 1]
    end
  end
  f[#f + 1] = 'a'
  f[#f + 1] = '0'
  redis.call('XADD', KEYS[1], '*', unpack(f))
  redis.call('XDEL', KEYS[2], e[1])
end
return #entries
",
    )
});

/// KEYS: stream, delayed, dead. ARGV: group.
/// Returns `{stream length, pending, delayed, dead}`.
pub(crate) static STATS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local pending = 0
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if type(p) == 'table' and not p.err then
  pending = p[1]
end
return {redis.call('XLEN', KEYS[1]), pending, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3])}
",
    )
});

/// KEYS: stream. ARGV: group, idle ms.
/// Deletes consumers with nothing pending that have not read for longer than idle ms
/// (processes that are gone). Returns how many were deleted.
pub(crate) static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(cs) ~= 'table' or cs.err then
  return 0
end
local n = 0
for _, c in ipairs(cs) do
  local name, pending, idle
  for k = 1, #c, 2 do
    if c[k] == 'name' then name = c[k + 1]
    elseif c[k] == 'pending' then pending = c[k + 1]
    elseif c[k] == 'idle' then idle = c[k + 1] end
  end
  if name and pending == 0 and idle and idle > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    n = n + 1
  end
end
return n
",
    )
});
