using MassTransit;
using Oncely.AspNetCore;

namespace Payments.Payouts;

/// <summary>What <c>POST /payouts</c> answers: the message it sent and the queue it went to.</summary>
/// <param name="MessageId">The message's id: the payout consumer's idempotency key.</param>
/// <param name="Queue">The queue the message was sent to (<see cref="PayoutMessaging.Queue"/>).</param>
public sealed record PayoutAccepted(Guid MessageId, string Queue);

/// <summary>
/// <c>POST /payouts</c>: asks for a payout between two of the caller's accounts by sending a <see cref="PayoutRequested"/>
/// message to the <c>payouts</c> queue on the configured broker (in memory, or RabbitMQ with
/// <c>--Payments:Broker=RabbitMq</c>), where <see cref="PayoutConsumer"/> moves the money. It answers <c>202</c> once the
/// message is sent, before it is consumed: read the accounts to see the money move.
/// </summary>
/// <remarks>
/// The request needs an <c>Idempotency-Key</c>, and the message id is derived from it
/// (<see cref="Oncely.IdempotencyExecution.DeriveKey"/>): a retry replays the <c>202</c> without sending again, and a retry
/// that does run again (its first attempt failed after sending) sends the same message id, which the consumer runs once.
/// </remarks>
public static class PayoutEndpoint
{
    public const string Path = "/payouts";

    public static void Map(WebApplication app, bool idempotent)
    {
        ArgumentNullException.ThrowIfNull(app);
        PaymentEndpoints.Effectful(app.MapPost(Path, RequestPayoutAsync), idempotent, oneCommit: false)
            .Produces<PayoutAccepted>(StatusCodes.Status202Accepted)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
    }

    private static async Task<IResult> RequestPayoutAsync(PaymentRequest body, HttpContext context, ISendEndpointProvider sender, CancellationToken cancellationToken)
    {
        var errors = PaymentEndpoints.ValidatePayment(body);
        if (errors.Count > 0)
        {
            return await PaymentProblems.ValidationAsync(context, errors);
        }

        var tenant = PaymentEndpoints.Tenant(context);
        var messageId = context.GetIdempotencyExecution() is { } execution ? Guid.Parse(execution.DeriveKey("payout-message")) : NewId.NextGuid();
        var queue = await sender.GetSendEndpoint(new Uri($"queue:{PayoutMessaging.Queue}"));
        await queue.Send(
            new PayoutRequested(body.From!, body.To!, body.Amount!.Value, body.Currency!, body.Reference),
            message =>
            {
                message.MessageId = messageId;
                message.Headers.Set(PayoutMessaging.TenantHeader, tenant);
            },
            cancellationToken);
        return Results.Json(new PayoutAccepted(messageId, PayoutMessaging.Queue), statusCode: StatusCodes.Status202Accepted);
    }
}
