using Microsoft.Extensions.Compliance.Classification;
using Microsoft.Extensions.Compliance.Redaction;

namespace Oncely;

/// <summary>
/// What every value Oncely writes to a log, an audit entry or a span passes through: card numbers are always masked
/// (<see cref="PrimaryAccountNumbers"/>); then, for the values a caller chose (<see cref="OncelyTaxonomy"/>), the redactor
/// the application's <see cref="IRedactorProvider"/> gives for their classification, if the application registered one.
/// One per application (and per executor built without DI: <see cref="Default"/>).
/// </summary>
internal sealed class IdempotencyRedaction
{
    private readonly Redactor? _key;
    private readonly Redactor? _tenant;
    private readonly Redactor? _payload;
    private readonly Redactor? _path;

    /// <summary>Creates the redaction of an application.</summary>
    /// <param name="provider">The application's redactors (<c>services.AddRedaction(…)</c>); <see langword="null"/> for card-number masking only.</param>
    public IdempotencyRedaction(IRedactorProvider? provider)
    {
        if (provider is null)
        {
            return;
        }

        _key = Resolve(provider, OncelyTaxonomy.IdempotencyKey);
        _tenant = Resolve(provider, OncelyTaxonomy.Tenant);
        _payload = Resolve(provider, OncelyTaxonomy.Payload);
        _path = Resolve(provider, OncelyTaxonomy.RequestPath);
    }

    /// <summary>Card-number masking only: for executors and auditors built without an application's services.</summary>
    public static IdempotencyRedaction Default { get; } = new(null);

    /// <summary>An idempotency key, message id or webhook id.</summary>
    public string Key(string value) => Apply(_key, value);

    /// <summary>A tenant or webhook sender.</summary>
    public string Tenant(string value) => Apply(_tenant, value);

    /// <summary>The text kept of a refused payload.</summary>
    public string Payload(string value) => Apply(_payload, value);

    /// <summary>A request's path.</summary>
    public string Path(string? value) => Apply(_path, value ?? string.Empty);

    /// <summary>
    /// An operation's name, or any other text Oncely writes that is configuration rather than request data but could
    /// quote one (exception details, a store's key names): card numbers masked, nothing else, so that names stay
    /// readable and a metric's series stay apart.
    /// </summary>
    public static string Text(string value) => PrimaryAccountNumbers.Mask(value);

    /// <summary>An exception about to be logged: itself, or a stand-in with its card numbers masked.</summary>
    public static Exception Exception(Exception value) => RedactedException.For(value);

    private static Redactor? Resolve(IRedactorProvider provider, DataClassification classification)
    {
        var redactor = provider.GetRedactor(classification);
        return redactor is PrimaryAccountNumberRedactor or NullRedactor ? null : redactor;
    }

    private static string Apply(Redactor? redactor, string value)
    {
        var masked = PrimaryAccountNumbers.Mask(value);
        return redactor is null ? masked : redactor.Redact(masked);
    }
}
