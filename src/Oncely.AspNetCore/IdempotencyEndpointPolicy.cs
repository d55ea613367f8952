namespace Oncely.AspNetCore;

/// <summary>
/// A named idempotency policy: settings that the endpoints which name it (<c>.RequireIdempotencyKey("payments")</c>,
/// <c>[Idempotent(Policy = "payments")]</c>) use instead of <see cref="IdempotencyOptions"/>'s, the way output-caching
/// and rate-limiting policies work. Every setting left <see langword="null"/> (the default) is the global option's.
/// Register it with <see cref="IdempotencyOptions.AddPolicy"/>, or bind it from configuration
/// (<c>Oncely:Policies:payments:Lease</c>).
/// </summary>
/// <remarks>
/// The lease and expiration reach the store for every reservation, renewal, recovery point and completion of those
/// endpoints; the body limits and the status-code policy decide what their requests and answers become.
/// </remarks>
public sealed class IdempotencyEndpointPolicy : IdempotencyPolicy
{
    /// <summary>
    /// The largest request body these endpoints fingerprint; a larger one is refused with <c>413</c> before anything runs.
    /// Default: <see langword="null"/>, <see cref="IdempotencyOptions.MaxRequestBodySize"/> (1 MiB).
    /// </summary>
    public int? MaxRequestBodySize { get; set; }

    /// <summary>
    /// The largest response body these endpoints store for replay; a larger one is stored without its body.
    /// Default: <see langword="null"/>, <see cref="IdempotencyOptions.MaxResponseBodySize"/> (1 MiB).
    /// </summary>
    public int? MaxResponseBodySize { get; set; }

    /// <summary>
    /// Whether these endpoints' <c>5xx</c> answers are stored and replayed instead of releasing the record.
    /// Default: <see langword="null"/>, <see cref="IdempotencyOptions.StoreServerErrors"/> (<see langword="false"/>).
    /// </summary>
    public bool? StoreServerErrors { get; set; }

    /// <summary>
    /// The <c>4xx</c> answers of these endpoints that mean "try again" and therefore release the record instead of being
    /// stored, as a set; it replaces the global one, it does not add to it (an empty collection stores every
    /// <c>4xx</c>). Default: <see langword="null"/>, <see cref="IdempotencyOptions.RetryableStatusCodes"/> (408, 409, 425, 429).
    /// </summary>
    public ICollection<int>? RetryableStatusCodes { get; set; }

    /// <summary>
    /// The status for a key these endpoints see reused with a different payload (a <c>4xx</c>). Default:
    /// <see langword="null"/>, <see cref="IdempotencyOptions.KeyReusedStatusCode"/> (422).
    /// </summary>
    public int? KeyReusedStatusCode { get; set; }

    /// <inheritdoc />
    public override IReadOnlyList<string> Validate(IdempotencyEngineOptions defaults)
    {
        var problems = new List<string>(base.Validate(defaults));
        if (MaxRequestBodySize is < 0)
        {
            problems.Add($"MaxRequestBodySize must not be negative (it is {MaxRequestBodySize}); leave it unset for the global limit.");
        }

        if (MaxResponseBodySize is < 0)
        {
            problems.Add($"MaxResponseBodySize must not be negative (it is {MaxResponseBodySize}); leave it unset for the global limit.");
        }

        if (RetryableStatusCodes is not null && IdempotencyOptions.OutsideClientErrors(RetryableStatusCodes) is { } outside)
        {
            problems.Add($"RetryableStatusCodes may only hold 4xx statuses (it holds {outside}); 5xx answers follow StoreServerErrors.");
        }

        if (KeyReusedStatusCode is < 400 or > 499)
        {
            problems.Add($"KeyReusedStatusCode must be a 4xx status (it is {KeyReusedStatusCode}); leave it unset for the global one (422 by default).");
        }

        return problems;
    }
}
