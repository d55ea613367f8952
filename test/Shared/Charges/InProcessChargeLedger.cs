using System.Collections.Concurrent;

namespace Oncely.Storage.Specification;

/// <summary>
/// Charges counted in the test process, as a payment provider would count them: for stores whose server holds no table
/// the effect could be written to (Redis).
/// </summary>
public sealed class InProcessChargeLedger : IChargeLedger
{
    private readonly ConcurrentDictionary<string, long> _charges = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _firstIds = new(StringComparer.Ordinal);
    private long _ids;

    /// <summary>Charges per key so far.</summary>
    public IReadOnlyDictionary<string, long> Charges => _charges;

    public ValueTask<long> ChargeAsync(string key, long amount, string instance)
    {
        var id = Interlocked.Increment(ref _ids);
        _firstIds.TryAdd(key, id);
        _charges.AddOrUpdate(key, 1, (_, n) => n + 1);
        return ValueTask.FromResult(id);
    }

    public ValueTask<IReadOnlyDictionary<string, long>> ChargesPerKeyAsync()
        => ValueTask.FromResult<IReadOnlyDictionary<string, long>>(new Dictionary<string, long>(_charges, StringComparer.Ordinal));

    public ValueTask<long?> ChargeIdAsync(string key)
        => ValueTask.FromResult(_firstIds.TryGetValue(key, out var id) ? id : (long?)null);
}
