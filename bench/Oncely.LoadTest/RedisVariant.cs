using System.Globalization;
using Oncely.StackExchangeRedis;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using StackExchange.Redis;

namespace Oncely.LoadTest;

/// <summary>
/// Redis in the run: a throw-away <c>redis-server</c> (the one the Redis tests start, no persistence), the HTTP variant
/// on <c>UseStackExchangeRedis</c>, and the raw primitive: the store's own Lua scripts through the same client, with no
/// HTTP, no fingerprint and no engine.
/// </summary>
internal sealed class RedisRawPrimitive(IDatabase database, string prefix) : IRawPrimitive
{
    private readonly RedisKeyLayout _keys = new(prefix);

    public string Name => "Redis raw primitive";

    public async Task ReserveAndCompleteAsync(string key)
    {
        var id = new IdempotencyRecordId(RawPayload.Tenant, RawPayload.Operation, key);
        var record = _keys.Record(id);
        var reserved = (RedisResult[])(await database.ScriptEvaluateAsync(RedisScripts.Reserve, [record, _keys.Fence(id)], [RawPayload.Fingerprint, 30_000, 86_400_000]))!;
        var token = RedisIdempotencyStore.Granted(reserved) ?? throw new InvalidOperationException($"key {key} was not reserved");

        var completed = (long)await database.ScriptEvaluateAsync(RedisScripts.Complete, [record], [token, 201, RawPayload.Headers, RawPayload.Body, 0, 86_400_000]);
        if (completed != 1)
        {
            throw new InvalidOperationException($"key {key} was not completed");
        }
    }

    /// <summary>The ceiling for a replay: the store's read script on a completed record, every field it returns.</summary>
    public async Task ReadCompletedAsync(string key)
    {
        var answer = await database.ScriptEvaluateAsync(RedisScripts.Get, [_keys.Record(new IdempotencyRecordId(RawPayload.Tenant, RawPayload.Operation, key))]);
        if (answer.IsNull || (int)answer[3] != 1)
        {
            throw new InvalidOperationException($"key {key} has no completed record");
        }

        _ = (byte[]?)answer[11];
    }
}

/// <summary>
/// Wraps a Redis HTTP cell and, for a replay cell, counts the changes the server applied to its data set while the cell
/// ran (<c>rdb_changes_since_last_save</c>): the cell fails unless it is 0 (decision-table row 20: a replay writes nothing).
/// </summary>
internal sealed class RedisWritesCell(HttpCell inner, RedisServer server) : Cell(inner.Variant, inner.Path)
{
    public override async Task<CellResult> MeasureAsync(int concurrency, int repetition, Timing timing)
    {
        var before = await ChangesAsync(server);
        var result = await inner.MeasureAsync(concurrency, repetition, timing);
        var writes = await ChangesAsync(server) - before;
        if (Path != HttpCell.Replay)
        {
            return result;
        }

        return writes == 0
            ? result with { Check = result.Check + "; 0 Redis writes" }
            : result with { Check = result.Check + string.Create(CultureInfo.InvariantCulture, $"; FAILED: replays changed the data set {writes:N0} times"), CheckPassed = false };
    }

    /// <summary>The server's count of changes to the data set since its last save (it never saves: <c>save ""</c>).</summary>
    public static async Task<long> ChangesAsync(RedisServer server)
    {
        var info = await server.RawAsync("INFO persistence");
        var line = info.Split('\n').FirstOrDefault(l => l.StartsWith("rdb_changes_since_last_save:", StringComparison.Ordinal))
            ?? throw new InvalidOperationException("INFO persistence did not report rdb_changes_since_last_save.");
        return long.Parse(line.Split(':')[1].Trim(), CultureInfo.InvariantCulture);
    }
}
