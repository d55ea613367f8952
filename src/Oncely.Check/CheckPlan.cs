using System.Security.Cryptography;

namespace Oncely.Check;

/// <summary>
/// Every request of a run, made up front with fresh keys (unique per run and per check), so that <c>--dry-run</c>
/// prints exactly what a real run sends and the request cap is known before anything is sent.
/// </summary>
internal sealed class CheckPlan
{
    /// <summary>The key length the draft's examples and common servers accept; one more is "overlong".</summary>
    public const int LongKeyLength = 255;

    private readonly CheckSettings _settings;

    public CheckPlan(CheckSettings settings)
    {
        _settings = settings;
        RunId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var retryKey = NewKey("retry");
        RetryFirst = Effectful("retry #1", retryKey, settings.Body);
        RetrySecond = Effectful("retry #2 (same key, same body)", retryKey, settings.Body);
        OtherBody = settings.OtherBody is null ? null : Effectful("same key, other body", retryKey, settings.OtherBody);
        var concurrentKey = NewKey("concurrent");
        Concurrent = [.. Enumerable.Range(1, settings.Concurrency).Select(i => Effectful(Text.Invariant($"concurrent copy {i}/{settings.Concurrency}"), concurrentKey, settings.Body))];
        MissingKey = Request("no key", settings.Headers, settings.Body);
        LongKey = Effectful(Text.Invariant($"{LongKeyLength}-character key"), Padded(NewKey("long"), LongKeyLength), settings.Body);
        OverlongKey = Effectful(Text.Invariant($"{LongKeyLength + 1}-character key"), Padded(NewKey("overlong"), LongKeyLength + 1), settings.Body);
        var control = NewKey("control");
        ControlCharacterKey = Effectful("key with a control character (U+0001)", control[..8] + "\u0001" + control[8..], settings.Body);
        ConflictingKeys = Request(
            "two conflicting key fields",
            [.. settings.Headers, new HeaderLine(settings.KeyHeader, Format(NewKey("conflict-a"))), new HeaderLine(settings.KeyHeader, Format(NewKey("conflict-b")))],
            settings.Body);
        SecondCaller = settings.SecondHeaders.Count == 0
            ? null
            : Request("second caller, first caller's key", [.. settings.SecondHeaders, new HeaderLine(settings.KeyHeader, Format(retryKey))], settings.Body);
    }

    public string RunId { get; }

    public ProbeRequest RetryFirst { get; }

    public ProbeRequest RetrySecond { get; }

    public ProbeRequest? OtherBody { get; }

    public IReadOnlyList<ProbeRequest> Concurrent { get; }

    public ProbeRequest MissingKey { get; }

    public ProbeRequest LongKey { get; }

    public ProbeRequest OverlongKey { get; }

    public ProbeRequest ControlCharacterKey { get; }

    public ProbeRequest ConflictingKeys { get; }

    public ProbeRequest? SecondCaller { get; }

    /// <summary>The read of the effects counter (<c>--effects-url</c>), with the first caller's headers; <see langword="null"/> without one.</summary>
    public ProbeRequest? EffectsRead(string label)
        => _settings.EffectsUrl is { } url ? new ProbeRequest("effects " + label, HttpMethod.Get, url, _settings.Headers, null) : null;

    /// <summary>How many effects reads a run makes (before and after each step that may execute the operation).</summary>
    public const int EffectsReads = 6;

    /// <summary>The endpoint's requests, in the order they are sent.</summary>
    public IEnumerable<ProbeRequest> EndpointRequests()
    {
        yield return RetryFirst;
        yield return RetrySecond;
        if (OtherBody is not null)
        {
            yield return OtherBody;
        }

        foreach (var copy in Concurrent)
        {
            yield return copy;
        }

        yield return MissingKey;
        yield return LongKey;
        yield return OverlongKey;
        yield return ControlCharacterKey;
        yield return ConflictingKeys;
        if (SecondCaller is not null)
        {
            yield return SecondCaller;
        }
    }

    /// <summary>The total a run sends: the endpoint's requests and the effects reads.</summary>
    public int RequestCount => EndpointRequests().Count() + (_settings.EffectsUrl is null ? 0 : EffectsReads);

    private string NewKey(string check) => $"oncely-check-{RunId}-{check}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}";

    private static string Padded(string key, int length)
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        var fill = RandomNumberGenerator.GetItems<char>(alphabet, Math.Max(0, length - key.Length - 1));
        return (key + "-" + new string(fill))[..length];
    }

    private string Format(string key) => _settings.KeyFormat == KeyFormat.SfString ? "\"" + key + "\"" : key;

    private ProbeRequest Effectful(string label, string key, byte[]? body)
        => Request(label, [.. _settings.Headers, new HeaderLine(_settings.KeyHeader, Format(key))], body);

    private ProbeRequest Request(string label, IReadOnlyList<HeaderLine> headers, byte[]? body)
        => new(label, _settings.Method, _settings.Url, headers, body);
}
