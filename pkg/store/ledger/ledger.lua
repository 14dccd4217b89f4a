-- ledger.lua: the one script that changes a container's safety ledger (pkg/store/ledger).
-- A compare-and-set on the ledger's revision field ({{rev}}, schema.FieldRev), so a decision taken on a snapshot is committed only if
-- nothing changed since, together with the lease of the container. All keys share the {host/name} tag.
--
-- KEYS[1] ledger hash, KEYS[2] lease string
-- ARGV[1] expected rev ("" when absent, "*" to skip the check)
-- ARGV[2] lease op: "" keep, "take" (fails when held), "release" (only the token's own lease)
-- ARGV[3] lease token, ARGV[4] lease ttl in ms
-- ARGV[5] n: number of field/value pairs that follow; the rest are fields to delete
-- returns {1, new rev} | {0, current rev} on conflict | {-1, current rev} when the lease is held
local rev = redis.call('HGET', KEYS[1], '{{rev}}') or ''
local cur = tonumber(rev) or 0
if ARGV[1] ~= '*' and ARGV[1] ~= rev then return {0, cur} end
local op = ARGV[2]
if op == 'take' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, cur} end
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
elseif op == 'release' then
  if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
end
local n = tonumber(ARGV[5])
cur = cur + 1
if n > 0 then
  redis.call('HSET', KEYS[1], '{{rev}}', cur, unpack(ARGV, 6, 5 + 2 * n))
else
  redis.call('HSET', KEYS[1], '{{rev}}', cur)
end
if #ARGV > 5 + 2 * n then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 6 + 2 * n, #ARGV))
end
return {1, cur}
