namespace Oncely.AspNetCore;

/// <summary>
/// What a request needs to pass an <see cref="IIdempotencySenderVerifier"/>, for API documentation: the headers it must
/// carry and what the verifier's <c>401</c> means. Returned by <see cref="IIdempotencySenderVerifier.Describe"/>; the
/// OpenAPI transformer of <c>Oncely.AspNetCore.OpenApi</c> documents each header as a required header parameter and the
/// refusal as the endpoint's <c>401</c>.
/// </summary>
public sealed class IdempotencySenderDescription
{
    /// <summary>Describes a verifier.</summary>
    /// <param name="refusal">What a <c>401</c> from the verifier means, with its problem types and what the sender should change.</param>
    /// <param name="headers">The headers every request must carry, in the order to document them.</param>
    /// <exception cref="ArgumentException"><paramref name="refusal"/> is empty.</exception>
    public IdempotencySenderDescription(string refusal, IEnumerable<IdempotencySenderHeader> headers)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(refusal);
        ArgumentNullException.ThrowIfNull(headers);
        Refusal = refusal;
        Headers = [.. headers];
    }

    /// <summary>What a <c>401</c> from the verifier means and what the sender should change. Set in the constructor.</summary>
    public string Refusal { get; }

    /// <summary>The headers every request must carry, in the order given. Set in the constructor (may be empty).</summary>
    public IReadOnlyList<IdempotencySenderHeader> Headers { get; }
}
