namespace Oncely.StackExchangeRedis;

/// <summary>
/// Every transition of the store, as one Lua script that Redis runs atomically (no other command runs in between, on
/// the record's primary). Time is the server's: <c>TIME</c> inside the script, in microseconds, never the application's.
/// </summary>
/// <remarks>
/// <para>A record is a hash with short field names: <c>f</c> fingerprint, <c>s</c> state (0 InProgress, 1 Completed),
/// <c>t</c> fencing token, <c>l</c> lease end, <c>e</c> expiry, <c>c</c> creation (all three in microseconds since the
/// Unix epoch, server clock), <c>p</c> recovery point, <c>a</c> attempts (how many executions have held the record: 1 when created, one more
/// per take-over; a record written before the field existed has none and counts as 1), and for a Completed record <c>h</c> status code, <c>H</c> headers
/// (<see cref="StoredHeaders"/> JSON), <c>b</c> body bytes, <c>o</c> body omitted (1/0).</para>
/// <para>The record's own expiry (<c>e</c>) decides whether it counts; the key's Redis TTL only frees the memory and is
/// never earlier: <c>max(e, l)</c> for an InProgress record (so a lease that outlives the expiry still finds its record),
/// <c>e</c> for a Completed one. No sweeper is needed.</para>
/// <para>Fencing tokens: the bucket's counter key (same hash slot, never expires) holds the last token handed out; the
/// next is the larger of that plus one and the server's time in microseconds. So tokens only grow within a bucket, over a
/// record's whole life and across expiry and re-creation, and a counter lost in a failover (asynchronous replication)
/// is made up for by the clock, which has moved on since the lost token was issued.</para>
/// <para>Numbers are written with <c>string.format('%.0f', …)</c>: Lua 5.1 numbers are doubles, exact to 2^53 (about
/// 285 years of microseconds), and their default text form would switch to exponent notation.</para>
/// </remarks>
internal static class RedisScripts
{
    // Shared prelude: the server's clock in microseconds, and the number formatter.
    private const string Clock = """
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local function n(x) return string.format('%.0f', x) end
        local function expireat(key, us) redis.call('PEXPIREAT', key, n(math.ceil(us / 1000))) end
        """;

    /// <summary>
    /// Reserve. KEYS: record, fence. ARGV: fingerprint, lease (ms), expiration (ms).
    /// Returns <c>{numbers, f, p}</c>, followed by <c>h, H, b, o</c> for a Completed record with the caller's fingerprint.
    /// <c>numbers</c> is one string of seven decimal integers separated by spaces: outcome (<see cref="ReservationOutcome"/>),
    /// <c>s</c>, <c>t</c>, <c>l</c>, <c>e</c>, <c>c</c>, <c>a</c>; one bulk string rather than seven array elements, because
    /// the client allocates an object per element. <c>f</c> is the stored fingerprint only for a reused key (outcome 4);
    /// every other outcome holds the caller's own, so the script answers <c>false</c> there rather than send it back.
    /// A replay, an in-progress duplicate and a reused key only read: the script writes nothing for them (decision-table
    /// row 20).
    /// </summary>
    public const string Reserve = Clock + """

        local r = redis.call('HMGET', KEYS[1], 'f', 's', 't', 'l', 'e', 'c', 'p', 'a')
        local lease = tonumber(ARGV[2]) * 1000
        local function token()
          local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
          local nextToken = now
          if nextToken <= last then nextToken = last + 1 end
          redis.call('SET', KEYS[2], n(nextToken))
          return nextToken
        end
        local function numbers(outcome, s, t, l, e, c, a)
          return table.concat({n(outcome), n(s), n(t), n(l), n(e), n(c), n(a)}, ' ')
        end
        if r[1] then
          local e = tonumber(r[5]) or 0
          if e > now then
            local s, t, l, c = tonumber(r[2]) or 0, tonumber(r[3]) or 0, tonumber(r[4]) or 0, tonumber(r[6]) or 0
            local a = tonumber(r[8]) or 1
            local p = r[7] or false
            if r[1] ~= ARGV[1] then
              return {numbers(4, s, t, l, e, c, a), r[1], p}
            end
            if r[2] == '1' then
              local answer = redis.call('HMGET', KEYS[1], 'h', 'H', 'b', 'o')
              return {numbers(2, s, t, l, e, c, a), false, p, answer[1], answer[2], answer[3], answer[4]}
            end
            if l > now then
              return {numbers(3, s, t, l, e, c, a), false, p}
            end
            local next = token()
            local lease_end = now + lease
            redis.call('HSET', KEYS[1], 't', n(next), 'l', n(lease_end), 'a', n(a + 1))
            expireat(KEYS[1], math.max(e, lease_end))
            return {numbers(1, 0, next, lease_end, e, c, a + 1), false, p}
          end
          redis.call('DEL', KEYS[1])
        end
        local t = token()
        local l = now + lease
        local e = now + tonumber(ARGV[3]) * 1000
        redis.call('HSET', KEYS[1], 'f', ARGV[1], 's', '0', 't', n(t), 'l', n(l), 'e', n(e), 'c', n(now), 'a', '1')
        expireat(KEYS[1], math.max(e, l))
        return {numbers(0, 0, t, l, e, now, 1), false, false}
        """;

    /// <summary>
    /// Complete. KEYS: record. ARGV: token, status, headers, body, omitted (1/0), expiration (ms).
    /// Returns 1 when the InProgress record carried the token and is Completed now; 2 when it is already Completed by this
    /// token with exactly this answer (a completion repeated after a lost reply or a missing replica acknowledgement);
    /// 0 otherwise (stale token, other answer, record gone), and then nothing changed.
    /// </summary>
    public const string Complete = """
        local r = redis.call('HMGET', KEYS[1], 's', 't')
        if r[2] ~= ARGV[1] then return 0 end
        if r[1] == '0' then
          local clock = redis.call('TIME')
          local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
          local e = now + tonumber(ARGV[6]) * 1000
          redis.call('HSET', KEYS[1], 's', '1', 'h', ARGV[2], 'H', ARGV[3], 'b', ARGV[4], 'o', ARGV[5], 'e', string.format('%.0f', e))
          redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(e / 1000)))
          return 1
        end
        if r[1] == '1' then
          local c = redis.call('HMGET', KEYS[1], 'h', 'H', 'b', 'o')
          if c[1] == ARGV[2] and c[2] == ARGV[3] and c[3] == ARGV[4] and c[4] == ARGV[5] then return 2 end
        end
        return 0
        """;

    /// <summary>
    /// Release. KEYS: record. ARGV: token. Deletes the InProgress record that carries the token, or, when it has a
    /// recovery point, keeps it and ends its lease now. Returns 1, or 0 when nothing changed.
    /// </summary>
    public const string Release = Clock + """

        local r = redis.call('HMGET', KEYS[1], 's', 't', 'p', 'e')
        if r[1] ~= '0' or r[2] ~= ARGV[1] then return 0 end
        if not r[3] then
          redis.call('DEL', KEYS[1])
          return 1
        end
        redis.call('HSET', KEYS[1], 'l', n(now))
        expireat(KEYS[1], math.max(tonumber(r[4]) or now, now))
        return 1
        """;

    /// <summary>
    /// Recovery point. KEYS: record. ARGV: token, recovery point, lease (ms). Only for the live InProgress record that
    /// carries the token: stores the phase and renews the lease. Returns 1, or 0 when nothing changed.
    /// </summary>
    public const string SetRecoveryPoint = Clock + """

        local r = redis.call('HMGET', KEYS[1], 's', 't', 'e')
        if r[1] ~= '0' or r[2] ~= ARGV[1] then return 0 end
        local e = tonumber(r[3]) or 0
        if e <= now then return 0 end
        local l = now + tonumber(ARGV[3]) * 1000
        redis.call('HSET', KEYS[1], 'p', ARGV[2], 'l', n(l))
        expireat(KEYS[1], math.max(e, l))
        return 1
        """;

    /// <summary>
    /// Renew the lease. KEYS: record. ARGV: token, lease (ms). Only for the live InProgress record that carries the token.
    /// Returns 1, or 0 when nothing changed.
    /// </summary>
    public const string RenewLease = Clock + """

        local r = redis.call('HMGET', KEYS[1], 's', 't', 'e')
        if r[1] ~= '0' or r[2] ~= ARGV[1] then return 0 end
        local e = tonumber(r[3]) or 0
        if e <= now then return 0 end
        local l = now + tonumber(ARGV[2]) * 1000
        redis.call('HSET', KEYS[1], 'l', n(l))
        expireat(KEYS[1], math.max(e, l))
        return 1
        """;

    /// <summary>
    /// Read. KEYS: record. Returns nil for a missing or expired record, else <c>{5, now, f, s, t, l, e, c, p, a, h, H, b, o}</c>
    /// (the same layout as <see cref="Reserve"/>'s answer). Writes nothing.
    /// </summary>
    public const string Get = """
        local r = redis.call('HMGET', KEYS[1], 'f', 's', 't', 'l', 'e', 'c', 'p', 'a', 'h', 'H', 'b', 'o')
        if not r[1] then return false end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local e = tonumber(r[5]) or 0
        if e <= now then return false end
        return {5, now, r[1], tonumber(r[2]), tonumber(r[3]), tonumber(r[4]), e, tonumber(r[6]), r[7] or false, tonumber(r[8]) or 1, r[9] or false, r[10] or false, r[11] or false, r[12] or false}
        """;

    /// <summary>
    /// Erase. KEYS: record. Deletes the record when it is Completed or past its expiry (<c>e</c>, server clock) and returns
    /// 1; returns 0 when there is no record; keeps a live InProgress record (its operation may be running) and returns
    /// <c>{2, f, s, t, l, e, c, p, h, a}</c> to report it. The check and the delete are one step: no reservation, take-over or
    /// completion runs in between.
    /// </summary>
    public const string Erase = """
        local r = redis.call('HMGET', KEYS[1], 'f', 's', 't', 'l', 'e', 'c', 'p', 'h', 'a')
        if not r[1] then return 0 end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        if r[2] == '1' or (tonumber(r[5]) or 0) <= now then
          redis.call('DEL', KEYS[1])
          return 1
        end
        return {2, r[1], r[2], r[3], r[4], r[5], r[6], r[7] or false, r[8] or false, r[9] or false}
        """;

    /// <summary>
    /// Audit retention. KEYS: audit stream. ARGV: retention (ms), batch size. Deletes at most the batch's oldest entries
    /// that were added more than the retention ago (a stream id is the server's time at <c>XADD</c>). Returns how many.
    /// </summary>
    public const string PurgeAudit = """
        local clock = redis.call('TIME')
        local cutoff = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) - tonumber(ARGV[1])
        if cutoff <= 0 then return 0 end
        local old = redis.call('XRANGE', KEYS[1], '-', string.format('%.0f', cutoff - 1), 'COUNT', ARGV[2])
        if #old == 0 then return 0 end
        local last = old[#old][1]
        local dash = string.find(last, '-', 1, true)
        local after = string.sub(last, 1, dash) .. string.format('%.0f', tonumber(string.sub(last, dash + 1)) + 1)
        return redis.call('XTRIM', KEYS[1], 'MINID', after)
        """;
}
