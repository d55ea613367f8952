using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Oncely.AspNetCore.OpenApi;

/// <summary>
/// Writes an idempotent endpoint's contract (<see cref="IdempotencyEndpointContract"/>, derived from the same
/// <see cref="IdempotencyEndpoint"/> the middleware runs) into its OpenAPI operation: the key parameter where its
/// <see cref="IdempotencyKeySource"/> says, the headers a sender verifier requires (a webhook's id, timestamp and
/// signature), Oncely's refusals (from <see cref="IdempotencyRefusals"/>) and the replay header on exactly the answers
/// the middleware stores (<see cref="IdempotencyReplayRule"/>).
/// </summary>
internal sealed class IdempotencyOperationTransformer : IOpenApiOperationTransformer
{
    private const string ProblemContentType = "application/problem+json";
    private const string ProblemSchemaId = "ProblemDetails";

    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        if (IdempotencyEndpointContract.For(context.Description.ActionDescriptor.EndpointMetadata, context.ApplicationServices) is not { } contract)
        {
            return;
        }

        DescribeKey(operation, contract);
        DescribeSenderHeaders(operation, contract);

        // The endpoint's own answers first, so Oncely's refusals below do not get the replay header.
        operation.Responses ??= [];
        foreach (var (status, response) in operation.Responses)
        {
            if (response is OpenApiResponse own && int.TryParse(status, NumberStyles.None, CultureInfo.InvariantCulture, out var code) && contract.Stores(code))
            {
                own.Headers ??= new Dictionary<string, IOpenApiHeader>(StringComparer.OrdinalIgnoreCase);
                own.Headers.TryAdd(IdempotencyOptions.ReplayedHeaderName, new OpenApiHeader
                {
                    Description = "`true` when this answer is a replay: the stored first answer to this idempotency key, not a new execution. Absent on the first answer.",
                    Schema = new OpenApiSchema { Type = JsonSchemaType.Boolean },
                });
            }
        }

        var problem = await ProblemSchemaAsync(context, cancellationToken).ConfigureAwait(false);
        foreach (var refusal in Refusals(contract))
        {
            AddRefusal(operation.Responses, refusal, problem);
        }
    }

    private static void DescribeKey(OpenApiOperation operation, IdempotencyEndpointContract contract)
    {
        if (contract.KeyHeader is null)
        {
            // The key is a member of the body (a webhook's event id): no parameter to add, so the operation says where.
            operation.Description = (operation.Description is { Length: > 0 } own ? own + "\n\n" : string.Empty) + string.Create(
                CultureInfo.InvariantCulture,
                $"Idempotent: {contract.KeyLocation} is the idempotency key ({(contract.KeyRequired ? "required" : "optional")}, at most {contract.MaxKeyLength} visible ASCII characters). A repeated request with the same key and the same payload gets the first answer again, with `Idempotent-Replayed: true`, for {Describe(contract.Expiration)}.");
            return;
        }

        var description = contract.SenderVerified ? SenderKeyDescription(contract) : string.Create(
            CultureInfo.InvariantCulture,
            $"Makes this request safe to retry. Send a new unique value (a UUID) for each new operation and the same value on every retry of it: the first request runs, and a retry with the same key and the same payload gets the first answer again, with `Idempotent-Replayed: true`, for {Describe(contract.Expiration)}. {(contract.KeyRequired ? "Required: a request without it is refused with 400." : "Optional: a request without it runs unprotected and is not recorded.")} At most {contract.MaxKeyLength} visible ASCII characters; the structured-field form (`\"…\"`) is accepted too.{(contract.AliasHeader is { } alias ? $" `{alias}` is accepted as an alias." : string.Empty)}");
        var schema = new OpenApiSchema
        {
            Type = JsonSchemaType.String,
            MinLength = 1,
            MaxLength = contract.MaxKeyLength,
            Pattern = "^[\\x21-\\x7E]+$",
        };
        operation.Parameters ??= [];
        var existing = operation.Parameters.FirstOrDefault(p => p.In == ParameterLocation.Header && string.Equals(p.Name, contract.KeyHeader, StringComparison.OrdinalIgnoreCase));
        var required = contract.KeyRequired || contract.SenderRequiresKeyHeader;
        if (existing is OpenApiParameter declared)
        {
            // The handler binds the header itself ([FromHeader]): same parameter, Oncely's rules.
            declared.Required = required;
            declared.Description ??= description;
            declared.Schema = schema;
            return;
        }

        if (existing is not null)
        {
            return;
        }

        operation.Parameters.Add(new OpenApiParameter
        {
            Name = contract.KeyHeader,
            In = ParameterLocation.Header,
            Required = required,
            Description = description,
            Schema = schema,
            Example = JsonValue.Create(contract.Sender?.Headers.FirstOrDefault(h => string.Equals(h.Name, contract.KeyHeader, StringComparison.OrdinalIgnoreCase))?.Example ?? "5b7c4f0e-8d7a-4b1e-9a53-1f0c2a6e9d41"),
        });
    }

    // A signed request's key is chosen by its sender (a webhook provider's delivery id), not by a client that retries:
    // no advice to mint a UUID, only what the receiver does with the value. When the verifier requires the same header, its
    // own description (what the value is, that it is signed) comes first.
    private static string SenderKeyDescription(IdempotencyEndpointContract contract)
    {
        var own = contract.Sender?.Headers.FirstOrDefault(h => string.Equals(h.Name, contract.KeyHeader, StringComparison.OrdinalIgnoreCase))?.Description;
        return (own is null ? string.Empty : own.TrimEnd() + " ") + string.Create(
            CultureInfo.InvariantCulture,
            $"It is the idempotency key, per sender: the first request with a value runs, and a redelivery with the same value and the same body gets the first answer again, with `Idempotent-Replayed: true`, for {Describe(contract.Expiration)}; the same value with another body is refused with {contract.KeyReusedStatusCode}. At most {contract.MaxKeyLength} visible ASCII characters.");
    }

    // The headers the sender verifier requires (webhook-timestamp, webhook-signature, …), each a required header parameter.
    // The key header, when it is one of them, was documented with the key above.
    private static void DescribeSenderHeaders(OpenApiOperation operation, IdempotencyEndpointContract contract)
    {
        if (contract.Sender is not { } sender)
        {
            return;
        }

        operation.Parameters ??= [];
        foreach (var header in sender.Headers)
        {
            if (string.Equals(header.Name, contract.KeyHeader, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var existing = operation.Parameters.FirstOrDefault(p => p.In == ParameterLocation.Header && string.Equals(p.Name, header.Name, StringComparison.OrdinalIgnoreCase));
            if (existing is OpenApiParameter declared)
            {
                // The handler binds the header itself: one parameter, required, since the verifier refuses a request without it.
                declared.Required = true;
                declared.Description ??= header.Description;
                continue;
            }

            if (existing is not null)
            {
                continue;
            }

            operation.Parameters.Add(new OpenApiParameter
            {
                Name = header.Name,
                In = ParameterLocation.Header,
                Required = true,
                Description = header.Description,
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, Pattern = header.Pattern },
                Example = header.Example is { } example ? JsonValue.Create(example) : null,
            });
        }
    }

    // Oncely's refusals, with the statuses and problem types of the middleware's own catalogue (IdempotencyRefusals).
    private static IEnumerable<Refusal> Refusals(IdempotencyEndpointContract contract)
    {
        var types = contract.ProblemTypeBaseUri;
        var missing = contract.KeySource.MissingRefusal;
        var invalid = contract.KeySource.InvalidRefusal;
        var unreadable = IdempotencyRefusals.Row19RequestBodyUnreadable;
        // A key header the sender verifier requires is never missing by the time the key is read: the verifier refused first.
        yield return new(
            invalid.Status,
            "Refused before running: " + (contract.KeyRequired && !contract.SenderRequiresKeyHeader ? $"{contract.KeyLocation} is missing (`{types}{missing.ProblemType}`) or" : $"{contract.KeyLocation} is") + $" malformed (`{types}{invalid.ProblemType}`), or the body's framing is broken (`{types}{unreadable.ProblemType}`). Nothing ran; fix the request.",
            null);
        if (contract.Sender is { } sender)
        {
            yield return new(StatusCodes.Status401Unauthorized, sender.Refusal, null);
        }
        else if (contract.SenderVerified)
        {
            yield return new(
                StatusCodes.Status401Unauthorized,
                "The request's signature could not be verified (missing, malformed, matching no secret, or a timestamp outside the tolerance). Nothing ran and nothing was recorded.",
                null);
        }
        else if (!contract.AllowAnonymous)
        {
            var unauthenticated = IdempotencyRefusals.Row09aCallerUnauthenticated;
            yield return new(
                unauthenticated.Status,
                $"The caller is not authenticated (`{types}{unauthenticated.ProblemType}`): each caller's answers are kept apart, so an idempotent request needs credentials. Nothing ran.",
                null);
        }

        var inProgress = IdempotencyRefusals.Row07RequestInProgress;
        yield return new(
            inProgress.Status,
            $"A request with this key ({contract.KeyLocation}) is still running (`{types}{inProgress.ProblemType}`). Retry after `Retry-After` seconds with the same key and payload to get its answer.",
            contract.InProgressRetryAfter);
        yield return new(
            contract.KeyReusedStatusCode,
            $"This key ({contract.KeyLocation}) was used before for a different payload (`{types}{IdempotencyRefusals.Row08KeyReused.ProblemType}`). Nothing ran: use a new key for a new operation.",
            null);
        if (contract.AnswersProtected)
        {
            var unreadableAnswer = IdempotencyRefusals.Row06aStoredAnswerUnreadable;
            yield return new(
                unreadableAnswer.Status,
                $"This key's operation already ran, but its stored answer can no longer be decrypted: the data-protection key it was sealed with was revoked or is gone (`{types}{unreadableAnswer.ProblemType}`). The operation does not run again; look its result up by other means.",
                null);
        }

        var tooLarge = IdempotencyRefusals.Row15PayloadTooLarge;
        yield return new(
            tooLarge.Status,
            string.Create(CultureInfo.InvariantCulture, $"The body is over the {contract.MaxRequestBodySize} bytes an idempotent request may carry (`{types}{tooLarge.ProblemType}`). Nothing ran."),
            null);
        var storeUnavailable = IdempotencyRefusals.Row13StoreUnavailable;
        yield return new(
            storeUnavailable.Status,
            $"The idempotency store is unavailable, so the server cannot guarantee the request runs once (`{types}{storeUnavailable.ProblemType}`). Nothing ran: retry after `Retry-After` seconds with the same key.",
            contract.StoreUnavailableRetryAfter);
    }

    private static void AddRefusal(OpenApiResponses responses, Refusal refusal, IOpenApiSchema problem)
    {
        var status = refusal.Status.ToString(CultureInfo.InvariantCulture);
        if (!responses.TryGetValue(status, out var existing))
        {
            existing = new OpenApiResponse { Description = refusal.Description };
            responses[status] = existing;
        }
        else if (existing is OpenApiResponse declared)
        {
            // The endpoint answers this status too (a validation 400, say): keep its meaning and add Oncely's.
            declared.Description = string.IsNullOrWhiteSpace(declared.Description) || declared.Description.Contains(refusal.Description, StringComparison.Ordinal)
                ? declared.Description ?? refusal.Description
                : declared.Description.TrimEnd('.') + ". Or, from Oncely: " + refusal.Description;
        }

        if (existing is not OpenApiResponse response)
        {
            return;
        }

        response.Content ??= new Dictionary<string, OpenApiMediaType>(StringComparer.OrdinalIgnoreCase);
        response.Content.TryAdd(ProblemContentType, new OpenApiMediaType { Schema = problem });
        if (refusal.RetryAfter is { } delay)
        {
            response.Headers ??= new Dictionary<string, IOpenApiHeader>(StringComparer.OrdinalIgnoreCase);
            response.Headers.TryAdd("Retry-After", new OpenApiHeader
            {
                Description = string.Create(CultureInfo.InvariantCulture, $"Seconds to wait before retrying with the same key ({Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds))} as configured)."),
                Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "1" },
            });
        }
    }

    // One ProblemDetails schema in the document's components, shared with whatever else declares problems.
    private static async Task<IOpenApiSchema> ProblemSchemaAsync(OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var document = context.Document;
        if (document is null)
        {
            return await context.GetOrCreateSchemaAsync(typeof(ProblemDetails), null, cancellationToken).ConfigureAwait(false);
        }

        if (document.Components?.Schemas?.ContainsKey(ProblemSchemaId) != true)
        {
            var schema = await context.GetOrCreateSchemaAsync(typeof(ProblemDetails), null, cancellationToken).ConfigureAwait(false);
            document.AddComponent(ProblemSchemaId, schema);
        }

        return new OpenApiSchemaReference(ProblemSchemaId, document);
    }

    private static string Describe(TimeSpan span) => span switch
    {
        { TotalDays: >= 2 } when span.TotalDays == Math.Floor(span.TotalDays) => string.Create(CultureInfo.InvariantCulture, $"{span.TotalDays:0} days"),
        { TotalHours: >= 1 } when span.TotalHours == Math.Floor(span.TotalHours) => string.Create(CultureInfo.InvariantCulture, $"{span.TotalHours:0} {(span.TotalHours == 1 ? "hour" : "hours")}"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{span.TotalMinutes:0.#} minutes"),
    };

    private sealed record Refusal(int Status, string Description, TimeSpan? RetryAfter);
}
