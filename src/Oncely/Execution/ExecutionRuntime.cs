using Microsoft.Extensions.Logging;
using Polly;

namespace Oncely;

/// <summary>
/// What an attempt's transitions (complete, release, renew, recovery point) work with: the store calls, the settings of
/// its executor's policy, the completion retries and the logger. One per executor (and per <see cref="IdempotencyExecutor.WithPolicy"/>),
/// shared by every attempt it starts, so an attempt holds one reference and never calls back into its executor.
/// </summary>
internal sealed class ExecutionRuntime(StoreInvoker store, IdempotencyEngineOptions options, OperationSettings settings, ResiliencePipeline<bool> completionRetries, ILogger logger, IdempotencyRedaction redaction)
{
    /// <summary>Every store call, bounded and observed.</summary>
    public StoreInvoker Store { get; } = store;

    /// <summary>The engine settings (store timeout, renewal on or off, the one-commit lock timeout).</summary>
    public IdempotencyEngineOptions Options { get; } = options;

    /// <summary>The lease, expiration, renewal interval and in-progress wait in force: the engine's, with the policy's applied.</summary>
    public OperationSettings Settings { get; } = settings;

    /// <summary>Retries a failed completion write (row 17) with backoff; empty when <see cref="IdempotencyEngineOptions.CompletionRetries"/> is zero.</summary>
    public ResiliencePipeline<bool> CompletionRetries { get; } = completionRetries;

    /// <summary>Where the executor's and its attempts' events go (one category: the executor's).</summary>
    public ILogger Logger { get; } = logger;

    /// <summary>What every logged key and tenant passes through.</summary>
    public IdempotencyRedaction Redaction { get; } = redaction;

    /// <summary>The engine's clock.</summary>
    public TimeProvider Clock => Store.Clock;
}
