using System.Text;
using Oncely.Storage.Specification;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Stored answers encrypted at rest on the in-memory store. "At rest" is what the store itself holds: every record as its
/// <see cref="IIdempotencyStore.GetAsync"/> returns it (headers and body, before the engine opens them) and every audit
/// entry as its administration lists it. One store lives across the test's application restarts, as the process's memory would.
/// </summary>
public sealed class InMemoryStoredAnswerProtectionTests : StoredAnswerProtectionSpecification
{
    private readonly InMemoryIdempotencyStore _store = new();

    protected override ValueTask<IIdempotencyStore> OpenStoreAsync() => ValueTask.FromResult<IIdempotencyStore>(_store);

    protected override async Task<IReadOnlyList<byte[]>> ReadAtRestAsync()
    {
        var held = new List<byte[]>();
        var records = await _store.ListRecordsAsync(new IdempotencyRecordQuery { Limit = 500 }, CancellationToken.None);
        foreach (var summary in records.Records)
        {
            var record = await _store.GetAsync(summary.Id, CancellationToken.None);
            if (record?.Response is { } response)
            {
                held.Add(Encoding.UTF8.GetBytes(StoredHeaders.Serialize(response.Headers)));
                held.Add(response.Body.ToArray());
            }
        }

        var audit = await _store.ListAuditAsync(new KeyReuseAuditQuery { Limit = 500 }, CancellationToken.None);
        held.AddRange(audit.Entries.Select(e => Encoding.UTF8.GetBytes(e.Payload)));
        return held;
    }
}
