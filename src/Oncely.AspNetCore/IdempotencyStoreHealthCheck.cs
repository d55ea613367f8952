using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Oncely;
using Oncely.AspNetCore;

namespace Microsoft.Extensions.DependencyInjection
{
    /// <summary>Adds a health check of Oncely's store.</summary>
    public static class IdempotencyHealthChecksBuilderExtensions
    {
        /// <summary>The name the store's check is registered under unless another is given: <c>oncely-store</c>.</summary>
        public const string DefaultName = "oncely-store";

        /// <summary>
        /// Checks that the idempotency store answers: one cheap read of a record that can never exist (its key holds a
        /// space, which no client key may), bounded by <paramref name="timeout"/>. Healthy when it answers in time;
        /// Degraded when it answers but slower than <paramref name="degradedThreshold"/>; <paramref name="failureStatus"/>
        /// when it fails or runs out of time, with the reason. Needs <c>AddIdempotency()</c>; checks whichever store it
        /// chose.
        /// </summary>
        /// <param name="builder">From <c>services.AddHealthChecks()</c>.</param>
        /// <param name="name">The check's name in the report. Default: <c>oncely-store</c>.</param>
        /// <param name="failureStatus">
        /// What a failed or timed-out read reports. Default: <see langword="null"/>, <see cref="HealthStatus.Unhealthy"/>.
        /// </param>
        /// <param name="tags">Tags to select the check by (for example <c>ready</c>). Default: none.</param>
        /// <param name="timeout">
        /// The longest the read may take; the check bounds itself, so the report says the store did not answer rather
        /// than that a check timed out. Default: <see langword="null"/>, the engine's
        /// <see cref="IdempotencyEngineOptions.StoreTimeout"/> (5 seconds): a store slower than that is answering
        /// idempotent requests with <c>503</c> already.
        /// </param>
        /// <param name="degradedThreshold">
        /// A read slower than this reports <see cref="HealthStatus.Degraded"/>. Default: <see langword="null"/>, a fifth
        /// of the timeout (1 second with the defaults).
        /// </param>
        /// <returns>The same builder.</returns>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is not positive, or <paramref name="degradedThreshold"/> is negative.</exception>
        /// <remarks>Running the check without <c>AddIdempotency()</c> throws <see cref="InvalidOperationException"/> saying so.</remarks>
        public static IHealthChecksBuilder AddIdempotencyStore(
            this IHealthChecksBuilder builder,
            string name = DefaultName,
            HealthStatus? failureStatus = null,
            IEnumerable<string>? tags = null,
            TimeSpan? timeout = null,
            TimeSpan? degradedThreshold = null)
        {
            ArgumentNullException.ThrowIfNull(builder);
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            if (timeout is { } t)
            {
                ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(t, TimeSpan.Zero, nameof(timeout));
            }

            if (degradedThreshold is { } d)
            {
                ArgumentOutOfRangeException.ThrowIfLessThan(d, TimeSpan.Zero, nameof(degradedThreshold));
            }

            return builder.Add(new HealthCheckRegistration(
                name,
                sp =>
                {
                    var limit = timeout ?? sp.GetService<IOptions<IdempotencyOptions>>()?.Value.StoreTimeout ?? TimeSpan.FromSeconds(5);
                    return new IdempotencyStoreHealthCheck(
                        sp.GetService<IIdempotencyStore>() ?? throw new InvalidOperationException(
                            "AddIdempotencyStore() checks Oncely's idempotency store, but none is registered: call services.AddIdempotency() (and choose the store with .UseSqlite(...) or .UsePostgreSql(...))."),
                        sp.GetService<TimeProvider>() ?? TimeProvider.System,
                        limit,
                        degradedThreshold ?? limit / 5);
                },
                failureStatus,
                tags));
        }
    }
}

namespace Oncely.AspNetCore
{
    /// <summary>
    /// One read of a record that cannot exist, bounded by a timeout: proves the store is reachable and answering, costs
    /// it one indexed lookup, and writes nothing.
    /// </summary>
    internal sealed class IdempotencyStoreHealthCheck(IIdempotencyStore store, TimeProvider clock, TimeSpan timeout, TimeSpan degradedThreshold) : IHealthCheck
    {
        /// <summary>The record the check reads: its key holds a space, which the key parser refuses, so no client ever creates it.</summary>
        internal static readonly IdempotencyRecordId Probe = new("oncely", "oncely health probe", "health probe");

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var storeName = store.GetType().Name;
            var data = new Dictionary<string, object> { ["store"] = storeName };
            var started = clock.GetTimestamp();
            using var abandon = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            try
            {
                // On the thread pool: a driver that blocks its caller (SQLite's busy loop does) cannot hold the
                // timeout off.
                var read = Task.Run(() => store.GetAsync(Probe, abandon.Token).AsTask(), abandon.Token);
                await read.WaitAsync(timeout, clock, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Tell the store to give up too, so its connection is not held past the answer.
                await abandon.CancelAsync().ConfigureAwait(false);
                return new HealthCheckResult(
                    context.Registration.FailureStatus,
                    string.Create(CultureInfo.InvariantCulture, $"The idempotency store {storeName} did not answer within {timeout.TotalMilliseconds:0} ms; idempotent requests are refused with 503 while it does not."),
                    data: data);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                return new HealthCheckResult(
                    context.Registration.FailureStatus,
                    IdempotencyRedaction.Text($"The idempotency store {storeName} failed ({ex.GetType().Name}: {ex.Message}); idempotent requests are refused with 503 while it does."),
                    IdempotencyRedaction.Exception(ex),
                    data);
            }

            var elapsed = clock.GetElapsedTime(started);
            data["durationMs"] = elapsed.TotalMilliseconds;
            return elapsed > degradedThreshold
                ? HealthCheckResult.Degraded(string.Create(CultureInfo.InvariantCulture, $"The idempotency store {storeName} answered in {elapsed.TotalMilliseconds:0} ms, slower than {degradedThreshold.TotalMilliseconds:0} ms."), data: data)
                : HealthCheckResult.Healthy(string.Create(CultureInfo.InvariantCulture, $"The idempotency store {storeName} answered in {elapsed.TotalMilliseconds:0.#} ms."), data);
        }
    }
}
