namespace Oncely.Check;

/// <summary>How the key is written in the header.</summary>
internal enum KeyFormat
{
    /// <summary>As the draft's syntax says (Section 2.1): a structured-field string, <c>"key"</c> with the quotes.</summary>
    SfString,

    /// <summary>The bare token <c>key</c>, as many servers written before the draft expect.</summary>
    Bare,
}

/// <summary>One header line given on the command line (<c>--header "Name: value"</c>).</summary>
internal sealed record HeaderLine(string Name, string Value)
{
    /// <summary>Reads <c>Name: value</c>; <see langword="null"/> when there is no colon or no name.</summary>
    public static HeaderLine? Parse(string line)
    {
        var colon = line.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            return null;
        }

        var name = line[..colon].Trim();
        return name.Length == 0 || name.Any(c => c is <= ' ' or > '~' or ':') ? null : new HeaderLine(name, line[(colon + 1)..].Trim());
    }
}

/// <summary>Everything the command line said, validated.</summary>
internal sealed record CheckSettings
{
    public required Uri Url { get; init; }

    public HttpMethod Method { get; init; } = HttpMethod.Post;

    public IReadOnlyList<HeaderLine> Headers { get; init; } = [];

    public byte[]? Body { get; init; }

    /// <summary>The other payload for the same operation; <see langword="null"/> when none could be made.</summary>
    public byte[]? OtherBody { get; init; }

    /// <summary>What differs between <see cref="Body"/> and <see cref="OtherBody"/>, said in the report.</summary>
    public string? OtherBodyChange { get; init; }

    public string KeyHeader { get; init; } = "Idempotency-Key";

    public KeyFormat KeyFormat { get; init; } = KeyFormat.SfString;

    public IReadOnlyList<HeaderLine> SecondHeaders { get; init; } = [];

    public Uri? EffectsUrl { get; init; }

    public int Concurrency { get; init; } = 8;

    public string? MarkdownPath { get; init; }

    public string? JsonPath { get; init; }

    public string? JUnitPath { get; init; }

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    public int MaxRequests { get; init; } = 100;

    public bool DryRun { get; init; }

    public bool Color { get; init; }

    /// <summary>Header names whose values never appear in output (credentials): every <c>--header</c> and <c>--second-header</c>.</summary>
    public bool IsSecret(string headerName)
        => Headers.Concat(SecondHeaders).Any(header => string.Equals(header.Name, headerName, StringComparison.OrdinalIgnoreCase))
           && !string.Equals(headerName, "Content-Type", StringComparison.OrdinalIgnoreCase)
           && !string.Equals(headerName, "Accept", StringComparison.OrdinalIgnoreCase);
}
