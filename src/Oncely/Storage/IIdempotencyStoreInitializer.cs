namespace Oncely;

/// <summary>
/// Optional capability: a store with a schema to create or migrate. Hosts call it once at start; stores also call it
/// lazily before their first operation, so it must be idempotent and safe to call concurrently.
/// </summary>
public interface IIdempotencyStoreInitializer
{
    /// <summary>Creates or upgrades the store's schema.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask InitializeAsync(CancellationToken cancellationToken);
}
