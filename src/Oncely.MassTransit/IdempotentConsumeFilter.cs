using System.Diagnostics;
using MassTransit;
using MassTransit.Configuration;
using MassTransit.Context;
using Microsoft.Extensions.Logging;

namespace Oncely.MassTransit;

/// <summary>
/// Runs one consumer (or handler) of <typeparamref name="TMessage"/> at most once per record: reserve, consume, then
/// complete (or release on failure). Sits in the consumer's message pipe, before the consumer factory, and inside any
/// endpoint- or bus-level message retry, so a refusal that can change (in progress, store down) is retried there.
/// </summary>
/// <param name="shared">What every idempotent consume filter of the bus shares.</param>
/// <param name="name">
/// The consumer's (or handler's) name; the record's operation is this name and the queue of the receive endpoint the
/// delivery came from (<see cref="ConsumerOperation"/>), so the same consumer on two endpoints keeps two records.
/// </param>
/// <param name="reportReplayAsConsumed">
/// For handlers: a handler reports its message consumed itself, from its last filter, so a replay that skips it must
/// report it here, or the message would count as not consumed (and go to <c>_skipped</c>). A consumer's message pipe
/// reports it around this filter, so consumers pass <see langword="false"/>.
/// </param>
internal sealed partial class IdempotentConsumeFilter<TMessage>(IdempotentConsumerServices shared, string name, bool reportReplayAsConsumed) : IFilter<ConsumeContext<TMessage>>
    where TMessage : class
{
    // One filter serves one endpoint's pipe, so this is nearly always the same address object: computed once, then reused.
    private EndpointOperation? _last;

    public void Probe(ProbeContext context)
    {
        var scope = context.CreateFilterScope("oncely-idempotent-consume");
        scope.Add("consumer", name);
    }

    public async Task Send(ConsumeContext<TMessage> context, IPipe<ConsumeContext<TMessage>> next)
    {
        var operation = OperationOf(context);
        if (context.TryGetPayload<IdempotencyExecution>(out var outer) && string.Equals(outer.Id.Operation, operation, StringComparison.Ordinal))
        {
            // UseIdempotentConsumers on the bus and on the endpoint too: the outer filter holds this delivery's record.
            await next.Send(context).ConfigureAwait(false);
            return;
        }

        // The same request span and outcome measurements as an HTTP request (docs/telemetry.md); nothing while nothing listens.
        var attempt = shared.Executor.Instrumentation.StartAttempt(operation);
        try
        {
            await DecideAsync(context, next, operation, attempt).ConfigureAwait(false);
        }
        finally
        {
            attempt?.Stop();
        }
    }

    private string OperationOf(ConsumeContext context)
    {
        var address = context.ReceiveContext.InputAddress;
        var last = Volatile.Read(ref _last);
        if (last is not null && ReferenceEquals(last.Address, address))
        {
            return last.Operation;
        }

        var operation = ConsumerOperation.Of(name, address);
        Volatile.Write(ref _last, new EndpointOperation(address, operation));
        return operation;
    }

    private async Task DecideAsync(ConsumeContext<TMessage> context, IPipe<ConsumeContext<TMessage>> next, string operation, IdempotencyAttempt? attempt)
    {
        var started = Stopwatch.GetTimestamp();
        var id = shared.Identify(context, operation);
        var fingerprint = MessageFingerprint.Of(context, shared.Options.FingerprintSource);
        var decision = await shared.Executor.BeginAsync(id, fingerprint.Value, context.CancellationToken).ConfigureAwait(false);
        attempt?.SetOutcome(OutcomeTagValues.For(decision.Kind));
        switch (decision.Kind)
        {
            case IdempotencyDecisionKind.Execute:
                await ExecuteAsync(context, next, decision.Execution!, attempt).ConfigureAwait(false);
                return;

            case IdempotencyDecisionKind.Replay:
            case IdempotencyDecisionKind.StoredAnswerUnreadable:
                // Acknowledged as consumed without calling the consumer: the effect committed on an earlier delivery (also
                // when its stored result can no longer be decrypted — its Data Protection key was revoked or is gone, event
                // 1050 logged: it is never run again).
                if (shared.Logger.IsEnabled(LogLevel.Debug))
                {
                    LogReplayed(shared.Logger, shared.Executor.Redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(operation), shared.Executor.Redaction.Key(id.Key), context.GetRedeliveryCount(), context.GetRetryAttempt());
                }

                if (reportReplayAsConsumed)
                {
                    await context.NotifyConsumed(Stopwatch.GetElapsedTime(started), name).ConfigureAwait(false);
                }

                return;

            case IdempotencyDecisionKind.InProgress:
                if (shared.Logger.IsEnabled(LogLevel.Debug))
                {
                    LogInProgress(shared.Logger, shared.Executor.Redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(operation), shared.Executor.Redaction.Key(id.Key), context.GetRetryAttempt());
                }
                throw new IdempotentMessageInProgressException(id, decision.Record?.LeaseExpiresAt);

            case IdempotencyDecisionKind.KeyReused:
                // Audited once per delivery, on whichever attempt first meets the refusal (the first may have met a store
                // outage): a retry policy that does not ignore the refusal must not multiply the entries, nor may one skip it.
                var audited = await shared.AuditOncePerDeliveryAsync(context.ReceiveContext, decision.Record!, fingerprint).ConfigureAwait(false);

                throw new IdempotentMessageRejectedException(
                    MessageRejection.KeyReused,
                    id,
                    $"Message key '{id.Key}' was already used for {operation} with a different payload (stored fingerprint {decision.Record!.Fingerprint}, this message {fingerprint.Value}); this message was NOT consumed and the first one's record is untouched. A key must identify one payload: give a different message its own id (or key). {(audited ? "The refusal is audited." : "Writing the refusal's audit entry failed (event 1015); the next attempt of this delivery tries again.")}");

            case IdempotencyDecisionKind.StoreUnavailable:
            default:
                throw new IdempotencyStoreUnavailableException(
                    $"The idempotency store is unavailable, so message '{id.Key}' was not consumed by {operation} (nothing ran); retry or redeliver it later.",
                    decision.StoreError ?? new InvalidOperationException("No store error was reported."));
        }
    }

    private static async Task ExecuteAsync(ConsumeContext<TMessage> context, IPipe<ConsumeContext<TMessage>> next, IdempotencyExecution execution, IdempotencyAttempt? attempt)
    {
        await using (execution.ConfigureAwait(false))
        {
            try
            {
                // The consumer reaches the execution through this scope's payload (GetIdempotencyExecution), never
                // through the shared delivery context, so two consumers of one message each see their own.
                await next.Send(new ConsumeContextScope<TMessage>(context, execution)).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // Deleted so a retry runs again, or kept at its recovery point so a retry resumes there. Only the
                // consumer's own failure is an error; the refusals above are answers, as they are over HTTP.
                await execution.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
                attempt?.SetOutcome(OutcomeTagValues.Released);
                attempt?.SetError(ex);
                throw;
            }

            if (!execution.CompletedInTransaction)
            {
                // Failures are logged by the engine (a lost lease, a store down after the effect); the message has been
                // consumed either way, so it is acknowledged.
                await execution.CompleteAsync(IdempotentConsumer.ConsumedResponse, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    private sealed record EndpointOperation(Uri? Address, string Operation);
}
