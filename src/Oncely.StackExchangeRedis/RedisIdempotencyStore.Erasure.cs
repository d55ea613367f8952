using System.Diagnostics;
using StackExchange.Redis;

namespace Oncely.StackExchangeRedis;

/// <summary>
/// Erasure on Redis. Records are found like the operator API finds them (<c>SCAN</c>: every primary for a tenant, one
/// primary for a tenant's key) and each is decided by the <see cref="RedisScripts.Erase"/> script, which checks the state
/// and deletes in one atomic step on the record's primary. When writes wait for replicas, each primary's deletions are
/// acknowledged by them (<c>WAIT</c>) before the erasure counts, so a failover does not bring erased records back.
/// Audit entries are deleted from the audit stream by id (<c>XDEL</c>); entries are immutable, so no race arises.
/// </summary>
internal sealed partial class RedisIdempotencyStore : IIdempotencyStoreErasure
{
    private const int EraseBatch = 256;

    /// <inheritdoc />
    public async ValueTask<IdempotencyErasureResult> EraseTenantAsync(string tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var multiplexer = await ConnectionAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
            var erased = 0;
            var inProgress = new List<IdempotencyRecordSummary>();
            foreach (var server in Primaries(multiplexer))
            {
                erased += await EraseOnAsync(server, _keys.TenantPattern(tenant), id => string.Equals(id.Tenant, tenant, StringComparison.Ordinal), inProgress, cancellationToken).ConfigureAwait(false);
            }

            var audit = await EraseAuditAsync(tenant, null, cancellationToken).ConfigureAwait(false);
            inProgress.Sort(PageOrder.Instance);
            return new IdempotencyErasureResult(erased, audit, inProgress);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("erase a tenant's records", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyErasureResult> EraseKeyAsync(string tenant, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentException.ThrowIfNullOrEmpty(key);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var multiplexer = await ConnectionAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
            var bucket = RedisKeyLayout.Bucket(tenant, key);
            var server = multiplexer.GetServer(_keys.Fence(bucket));
            if (!server.IsConnected)
            {
                throw new IdempotencyStoreUnavailableException($"The Redis idempotency store cannot reach {server.EndPoint}, the primary that holds tenant {tenant}'s key {key}.");
            }

            var inProgress = new List<IdempotencyRecordSummary>();
            var erased = await EraseOnAsync(
                server,
                _keys.TenantPattern(bucket, tenant),
                id => string.Equals(id.Tenant, tenant, StringComparison.Ordinal) && string.Equals(id.Key, key, StringComparison.Ordinal),
                inProgress,
                cancellationToken).ConfigureAwait(false);
            var audit = await EraseAuditAsync(tenant, key, cancellationToken).ConfigureAwait(false);
            inProgress.Sort(PageOrder.Instance);
            return new IdempotencyErasureResult(erased, audit, inProgress);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("erase a key's records", ex);
        }
    }

    /// <summary>Runs the erase script on every record key of <paramref name="server"/> that matches; answers how many it deleted.</summary>
    private async Task<int> EraseOnAsync(IServer server, RedisValue pattern, Func<IdempotencyRecordId, bool> wanted, List<IdempotencyRecordSummary> inProgress, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
        var batch = new List<(RedisKey Key, IdempotencyRecordId Id)>(EraseBatch);
        var erased = 0;
        RedisKey? last = null;

        async Task FlushAsync()
        {
            var started = Stopwatch.GetTimestamp();
            var answers = await Task.WhenAll(batch.Select(b => database.ScriptEvaluateAsync(RedisScripts.Erase, [b.Key])))
                .WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < answers.Length; i++)
            {
                if (answers[i].Resp2Type == ResultType.Array)
                {
                    var fields = ((RedisResult[])answers[i]!).Skip(1).Select(v => (RedisValue)v).ToArray();
                    if (ReadSummary(batch[i].Id, fields) is { } summary)
                    {
                        inProgress.Add(summary);
                    }
                }
                else if ((long)answers[i] == 1)
                {
                    erased++;
                    last = batch[i].Key;
                }
            }

            batch.Clear();
        }

        await ForEachRecordBatchAsync(server, pattern, wanted, batch, EraseBatch, FlushAsync, cancellationToken).ConfigureAwait(false);

        if (last is { } anyErased)
        {
            // WAIT counts the replicas that hold every write this connection sent to that primary, the deletions included.
            await RequireReplicasAsync(anyErased, Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
        }

        return erased;
    }

    /// <summary>Deletes the scope's key-reuse audit entries (never an erasure's own entry) from the audit stream; answers how many.</summary>
    private async Task<int> EraseAuditAsync(string tenant, string? key, CancellationToken cancellationToken)
    {
        const int Page = 1000;
        var database = await DatabaseAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
        var doomed = new List<RedisValue>();
        RedisValue start = "-";
        while (true)
        {
            var read = await database.StreamRangeAsync(_keys.Audit, start, "+", Page, Order.Ascending)
                .WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
            foreach (var item in read)
            {
                var entry = ReadAuditEntry(item);
                if (string.Equals(entry.Id.Tenant, tenant, StringComparison.Ordinal)
                    && (key is null || string.Equals(entry.Id.Key, key, StringComparison.Ordinal))
                    && !string.Equals(entry.Id.Operation, IdempotencyEraser.AuditOperation, StringComparison.Ordinal))
                {
                    doomed.Add(item.Id);
                }
            }

            if (read.Length < Page)
            {
                break;
            }

            start = "(" + (string)read[^1].Id!;
        }

        var deleted = 0L;
        foreach (var chunk in doomed.Chunk(Page))
        {
            deleted += await database.StreamDeleteAsync(_keys.Audit, chunk).WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
        }

        if (deleted > 0)
        {
            await RequireReplicasAsync(_keys.Audit, Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
        }

        return (int)deleted;
    }
}
