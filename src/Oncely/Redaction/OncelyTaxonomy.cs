using Microsoft.Extensions.Compliance.Classification;

namespace Oncely;

/// <summary>
/// The data classifications of what Oncely writes that a caller chose: keys, tenants, refused payloads, request paths.
/// Oncely asks the application's <c>IRedactorProvider</c> (<c>services.AddRedaction(…)</c>) for a redactor of each and
/// applies it, after its own masking of card numbers, to every log message, audit entry and audit payload it writes.
/// Without an <c>IRedactorProvider</c> in the container, card numbers are masked and nothing else changes. See
/// docs/data-protection.md, "Card numbers in logs, traces and audit payloads".
/// </summary>
/// <remarks>
/// An application that calls <c>AddRedaction</c> for its own logs redacts Oncely's values with its fallback redactor
/// (erasing, unless set otherwise) until it maps these classifications, for example
/// <c>r.SetRedactor&lt;PrimaryAccountNumberRedactor&gt;(OncelyTaxonomy.All)</c> to keep Oncely's default, or an HMAC
/// redactor for <see cref="IdempotencyKey"/> and <see cref="Tenant"/> to keep them correlatable but unreadable. Card
/// numbers are masked whatever the mapping, a <c>NullRedactor</c> included.
/// </remarks>
public static class OncelyTaxonomy
{
    /// <summary>The taxonomy's name: <c>Oncely</c>.</summary>
    public const string TaxonomyName = "Oncely";

    /// <summary>An idempotency key, a message id or a webhook id, as the caller sent it.</summary>
    public static DataClassification IdempotencyKey { get; } = new(TaxonomyName, nameof(IdempotencyKey));

    /// <summary>A tenant: who called (the principal's id), or a webhook's sender.</summary>
    public static DataClassification Tenant { get; } = new(TaxonomyName, nameof(Tenant));

    /// <summary>The text kept of a refused payload (a key reused with a different payload): the audit entry's payload and event 1003's.</summary>
    public static DataClassification Payload { get; } = new(TaxonomyName, nameof(Payload));

    /// <summary>A request's path, written in the logs of requests refused before the store.</summary>
    public static DataClassification RequestPath { get; } = new(TaxonomyName, nameof(RequestPath));

    /// <summary>
    /// Every classification above, each as a set of its own (the form <c>IRedactorProvider</c> is asked with), to map them
    /// to one redactor at once: <c>r.SetRedactor&lt;PrimaryAccountNumberRedactor&gt;(OncelyTaxonomy.All)</c>. A new array each time.
    /// </summary>
    public static DataClassificationSet[] All => [new(IdempotencyKey), new(Tenant), new(Payload), new(RequestPath)];
}
