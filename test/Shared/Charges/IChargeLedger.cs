namespace Oncely.Storage.Specification;

/// <summary>
/// Where the charges app's effect lands, and how a test counts it: the one thing that differs between backends in the
/// multi-instance, outage and failover harnesses. A second charge for one key is a double execution, whichever instance
/// made it.
/// </summary>
public interface IChargeLedger
{
    /// <summary>Makes one charge for <paramref name="key"/> and returns its id.</summary>
    /// <param name="key">The idempotency key the charge was made under.</param>
    /// <param name="amount">The charged amount.</param>
    /// <param name="instance">The app instance that made the charge.</param>
    ValueTask<long> ChargeAsync(string key, long amount, string instance);

    /// <summary>How many charges each key has, as the ledger itself counts them.</summary>
    ValueTask<IReadOnlyDictionary<string, long>> ChargesPerKeyAsync();

    /// <summary>The id of the charge made for <paramref name="key"/>, or <see langword="null"/> when it has none.</summary>
    ValueTask<long?> ChargeIdAsync(string key);
}
