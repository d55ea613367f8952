using System.Diagnostics;
using System.Globalization;
using System.Text;
using StackExchange.Redis;

namespace Oncely.StackExchangeRedis;

/// <summary>
/// The operator API on Redis. Records are found by <c>SCAN</c> over every primary (the store keeps no index: an index
/// would cost a write on every request, and this is an operator's tool, not a hot path). A page therefore costs a scan
/// of the whole key space of every primary, <c>O(keys)</c> in Redis work spread over many short <c>SCAN</c> calls that
/// never block the server, plus one <c>HMGET</c> per matching record. A look-up by tenant and key scans one primary
/// only: every operation's record of that tenant's key lives in one hash slot.
/// </summary>
internal sealed partial class RedisIdempotencyStore
{
    private const int MaxPageSize = 500;
    private const int ScanPageSize = 1000;
    private const int ReadBatch = 256;

    private static readonly RedisValue[] SummaryFields = ["f", "s", "t", "l", "e", "c", "p", "h", "a"];

    /// <inheritdoc />
    public async ValueTask<IdempotencyRecordPage> ListRecordsAsync(IdempotencyRecordQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.Limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.Limit, MaxPageSize);
        var after = query.Continuation is null ? null : RecordCursor.Parse(query.Continuation);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var multiplexer = await ConnectionAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);

            // The best Limit + 1 records in page order: one more than the page says whether another page follows.
            var best = new SortedSet<IdempotencyRecordSummary>(PageOrder.Instance);
            foreach (var server in Primaries(multiplexer))
            {
                await ScanAsync(server, _keys.RecordPattern, id =>
                    (query.Tenant is null || string.Equals(id.Tenant, query.Tenant, StringComparison.Ordinal))
                    && (query.Operation is null || string.Equals(id.Operation, query.Operation, StringComparison.Ordinal)),
                    summary =>
                    {
                        if ((query.State is { } state && summary.State != state)
                            || (query.CreatedBefore is { } before && summary.CreatedAt > before)
                            || (after is not null && PageOrder.Instance.Compare(summary, after) <= 0))
                        {
                            return;
                        }

                        best.Add(summary);
                        if (best.Count > query.Limit + 1)
                        {
                            best.Remove(best.Max!);
                        }
                    },
                    cancellationToken).ConfigureAwait(false);
            }

            var page = best.Take(query.Limit).ToList();
            return new IdempotencyRecordPage(page, best.Count > query.Limit ? RecordCursor.Format(page[^1]) : null);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("list records", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<IdempotencyRecordSummary>> FindByKeyAsync(string tenant, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(key);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var multiplexer = await ConnectionAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
            var bucket = RedisKeyLayout.Bucket(tenant, key);
            var server = multiplexer.GetServer(_keys.Fence(bucket));
            if (!server.IsConnected)
            {
                throw new IdempotencyStoreUnavailableException(IdempotencyRedaction.Text($"The Redis idempotency store cannot reach {server.EndPoint}, the primary that holds tenant {tenant}'s key {key}."));
            }

            var found = new List<IdempotencyRecordSummary>();
            await ScanAsync(server, _keys.TenantPattern(bucket, tenant),
                id => string.Equals(id.Tenant, tenant, StringComparison.Ordinal) && string.Equals(id.Key, key, StringComparison.Ordinal),
                found.Add,
                cancellationToken).ConfigureAwait(false);
            found.Sort(PageOrder.Instance);
            return found;
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("find records by key", ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>Reads the audit stream newest first (<c>XREVRANGE</c>), filtering as it goes; the continuation is a stream id.</remarks>
    public async ValueTask<KeyReuseAuditPage> ListAuditAsync(KeyReuseAuditQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.Limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.Limit, MaxPageSize);
        if (query.Continuation is { } given && !IsStreamId(given))
        {
            throw new ArgumentException($"The continuation \"{given}\" did not come from this store's audit.", nameof(query));
        }

        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        try
        {
            var database = await DatabaseAsync(started, cancellationToken).ConfigureAwait(false);
            var entries = new List<(string Id, KeyReuseAuditEntry Entry)>(query.Limit + 1);
            RedisValue end = query.Continuation is null ? "+" : "(" + query.Continuation;
            var batch = Math.Max(100, (query.Limit + 1) * 2);
            while (entries.Count <= query.Limit)
            {
                var read = await database.StreamRangeAsync(_keys.Audit, "-", end, batch, Order.Descending)
                    .WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
                foreach (var item in read)
                {
                    var entry = ReadAuditEntry(item);
                    if ((query.Tenant is null || string.Equals(entry.Id.Tenant, query.Tenant, StringComparison.Ordinal))
                        && (query.Operation is null || string.Equals(entry.Id.Operation, query.Operation, StringComparison.Ordinal))
                        && (query.Key is null || string.Equals(entry.Id.Key, query.Key, StringComparison.Ordinal)))
                    {
                        entries.Add(((string)item.Id!, entry));
                        if (entries.Count > query.Limit)
                        {
                            break;
                        }
                    }
                }

                if (read.Length < batch)
                {
                    break;
                }

                end = "(" + (string)read[^1].Id!;
            }

            var page = entries.Take(query.Limit).ToList();
            return new KeyReuseAuditPage(page.Select(e => e.Entry).ToList(), entries.Count > query.Limit ? page[^1].Id : null);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("read the audit", ex);
        }
    }

    private static KeyReuseAuditEntry ReadAuditEntry(StreamEntry item)
    {
        string Field(string name) => (string?)item[name] ?? string.Empty;
        var ticks = long.TryParse(Field(AuditFields.OccurredAt), NumberStyles.Integer, CultureInfo.InvariantCulture, out var t) ? t : 0;
        return new KeyReuseAuditEntry(
            new IdempotencyRecordId(Field(AuditFields.Tenant), Field(AuditFields.Operation), Field(AuditFields.Key)),
            Field(AuditFields.StoredFingerprint),
            Field(AuditFields.AttemptedFingerprint),
            Field(AuditFields.Payload),
            new DateTimeOffset(ticks, TimeSpan.Zero));
    }

    private static bool IsStreamId(string text)
    {
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        return dash > 0
            && ulong.TryParse(text.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out _)
            && ulong.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out _);
    }

    /// <summary>
    /// SCANs one server for record keys matching <paramref name="pattern"/>, keeps those whose id passes
    /// <paramref name="wanted"/>, reads them in pipelined batches and hands each live one to <paramref name="found"/>.
    /// Liveness is judged by that server's clock (<c>TIME</c>, read once per scan).
    /// </summary>
    private async Task ScanAsync(IServer server, RedisValue pattern, Func<IdempotencyRecordId, bool> wanted, Action<IdempotencyRecordSummary> found, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
        var now = new DateTimeOffset(DateTime.SpecifyKind(await server.TimeAsync().WaitAsync(_timeout, cancellationToken).ConfigureAwait(false), DateTimeKind.Utc));
        var batch = new List<(RedisKey Key, IdempotencyRecordId Id)>(ReadBatch);

        async Task FlushAsync()
        {
            var reads = batch.Select(b => database.HashGetAsync(b.Key, SummaryFields)).ToArray();
            var values = await Task.WhenAll(reads).WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < values.Length; i++)
            {
                if (ReadSummary(batch[i].Id, values[i]) is { } summary && summary.ExpiresAt > now)
                {
                    found(summary);
                }
            }

            batch.Clear();
        }

        await ForEachRecordBatchAsync(server, pattern, wanted, batch, ReadBatch, FlushAsync, cancellationToken).ConfigureAwait(false);
    }

    // f, s, t, l, e, c, p, h, a (missing in a record written before attempts were counted: 1); null when the key vanished (expired, released) between the scan and the read.
    private static IdempotencyRecordSummary? ReadSummary(IdempotencyRecordId id, RedisValue[] v)
    {
        if (v[0].IsNull || !v[4].TryParse(out long expires) || !v[5].TryParse(out long created))
        {
            return null;
        }

        var state = (int)v[1] == (int)IdempotencyRecordState.Completed ? IdempotencyRecordState.Completed : IdempotencyRecordState.InProgress;
        return new IdempotencyRecordSummary(
            id,
            state,
            (long)v[2],
            (string)v[0]!,
            FromMicroseconds(created),
            FromMicroseconds((long)v[3]),
            FromMicroseconds(expires),
            v[6].IsNull ? null : (string?)v[6],
            state == IdempotencyRecordState.Completed && v[7].TryParse(out int status) ? status : null,
            !v[8].IsNull && v[8].TryParse(out int attempts) ? attempts : 1); // a null RedisValue would parse as 0
    }

    /// <summary>Newest first by creation time; ties by tenant, operation and key (ordinal).</summary>
    private sealed class PageOrder : IComparer<IdempotencyRecordSummary>
    {
        public static readonly PageOrder Instance = new();

        public int Compare(IdempotencyRecordSummary? x, IdempotencyRecordSummary? y)
        {
            if (ReferenceEquals(x, y))
            {
                return 0;
            }

            if (x is null || y is null)
            {
                return x is null ? -1 : 1;
            }

            var byTime = y.CreatedAt.CompareTo(x.CreatedAt);
            if (byTime != 0)
            {
                return byTime;
            }

            var byTenant = string.CompareOrdinal(x.Id.Tenant, y.Id.Tenant);
            if (byTenant != 0)
            {
                return byTenant;
            }

            var byOperation = string.CompareOrdinal(x.Id.Operation, y.Id.Operation);
            return byOperation != 0 ? byOperation : string.CompareOrdinal(x.Id.Key, y.Id.Key);
        }
    }

    /// <summary>
    /// The continuation of a record listing: the last record's creation time and id, so the next page starts right after
    /// it in page order. Opaque to callers (base64url of <c>ticks\ntenant-length\ntenant operation-length\noperation key</c>).
    /// </summary>
    private static class RecordCursor
    {
        public static string Format(IdempotencyRecordSummary last)
        {
            var id = last.Id;
            var text = string.Create(CultureInfo.InvariantCulture,
                $"{last.CreatedAt.UtcTicks}\n{id.Tenant.Length}\n{id.Tenant}{id.Operation.Length}\n{id.Operation}{id.Key}");
            return Convert.ToBase64String(Encoding.UTF8.GetBytes(text)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        }

        public static IdempotencyRecordSummary Parse(string continuation)
        {
            try
            {
                var base64 = continuation.Replace('-', '+').Replace('_', '/');
                base64 = base64.PadRight(base64.Length + ((4 - (base64.Length % 4)) % 4), '=');
                var text = Encoding.UTF8.GetString(Convert.FromBase64String(base64)).AsSpan();
                var ticks = long.Parse(Next(ref text), NumberStyles.Integer, CultureInfo.InvariantCulture);
                var tenant = Take(ref text, int.Parse(Next(ref text), NumberStyles.None, CultureInfo.InvariantCulture));
                var operation = Take(ref text, int.Parse(Next(ref text), NumberStyles.None, CultureInfo.InvariantCulture));
                var id = new IdempotencyRecordId(tenant, operation, text.ToString());
                var at = new DateTimeOffset(ticks, TimeSpan.Zero);
                return new IdempotencyRecordSummary(id, IdempotencyRecordState.InProgress, 0, string.Empty, at, at, at, null, null);
            }
            catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
            {
                throw new ArgumentException($"The continuation \"{continuation}\" did not come from this store's record listing.", nameof(continuation), e);
            }

            static ReadOnlySpan<char> Next(ref ReadOnlySpan<char> text)
            {
                var newline = text.IndexOf('\n');
                if (newline < 0)
                {
                    throw new FormatException("Truncated continuation.");
                }

                var part = text[..newline];
                text = text[(newline + 1)..];
                return part;
            }

            static string Take(ref ReadOnlySpan<char> text, int length)
            {
                if (length > text.Length)
                {
                    throw new FormatException("Truncated continuation.");
                }

                var part = text[..length].ToString();
                text = text[length..];
                return part;
            }
        }
    }

    /// <summary>
    /// SCANs one server for record keys matching <paramref name="pattern"/>, collects those whose id passes
    /// <paramref name="wanted"/> into <paramref name="batch"/> and calls <paramref name="flush"/> (which empties it) every
    /// <paramref name="batchSize"/> keys and once more at the end: the one scan loop of the listing and the erasure.
    /// </summary>
    private async Task ForEachRecordBatchAsync(IServer server, RedisValue pattern, Func<IdempotencyRecordId, bool> wanted, List<(RedisKey Key, IdempotencyRecordId Id)> batch, int batchSize, Func<Task> flush, CancellationToken cancellationToken)
    {
        await foreach (var key in server.KeysAsync(_databaseNumber, pattern, ScanPageSize).WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (_keys.TryParseRecord(key.ToString(), out var id) && wanted(id))
            {
                batch.Add((key, id));
                if (batch.Count == batchSize)
                {
                    await flush().ConfigureAwait(false);
                }
            }
        }

        if (batch.Count > 0)
        {
            await flush().ConfigureAwait(false);
        }
    }
}
