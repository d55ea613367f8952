using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Set on <see cref="HttpContext.Features"/> while an idempotent operation runs, so the handler can see its key, commit
/// recovery points and derive downstream keys.
/// </summary>
public interface IIdempotencyFeature
{
    /// <summary>The lease this request holds.</summary>
    IdempotencyExecution Execution { get; }
}
