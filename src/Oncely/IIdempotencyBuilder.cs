using Microsoft.Extensions.DependencyInjection;

namespace Oncely;

/// <summary>
/// Returned by <c>AddIdempotency()</c>; store packages extend it (<c>.UseSqlite(...)</c>, <c>.UsePostgreSql(...)</c>)
/// so the choice of store reads as one chain.
/// </summary>
public interface IIdempotencyBuilder
{
    /// <summary>The application's services.</summary>
    IServiceCollection Services { get; }
}
