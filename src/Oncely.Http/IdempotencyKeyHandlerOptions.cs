namespace Oncely.Http;

/// <summary>
/// Options for the handler that <see cref="IdempotencyKeyHttpClientBuilderExtensions.AddIdempotencyKeys"/> adds to a named
/// <see cref="HttpClient"/>. Validated when the client is first created; an invalid value throws
/// <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> with a message that says what to change.
/// </summary>
public sealed class IdempotencyKeyHandlerOptions
{
    /// <summary>The default header name: <c>Idempotency-Key</c>.</summary>
    public const string DefaultHeaderName = "Idempotency-Key";

    /// <summary>The default number of re-sends after a <c>409</c> "request in progress" answer: 3.</summary>
    public const int DefaultMaxInProgressRetries = 3;

    /// <summary>The default longest wait honoured from a <c>Retry-After</c> header: 5 seconds.</summary>
    public static readonly TimeSpan DefaultMaxRetryAfter = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets the header that carries the key. Default: <c>Idempotency-Key</c> (the IETF draft's name).
    /// A request that already has this header, <c>Idempotency-Key</c> or <c>X-Idempotency-Key</c> keeps the caller's key and
    /// gets no second one.
    /// </summary>
    public string HeaderName { get; set; } = DefaultHeaderName;

    /// <summary>
    /// Gets the HTTP methods that get a key. Default: <c>POST</c> and <c>PATCH</c>. Requests with any other method pass
    /// through untouched (no key, no <c>409</c> handling), even if the caller set a key header on them.
    /// </summary>
    public ISet<HttpMethod> Methods { get; } = new HashSet<HttpMethod> { HttpMethod.Post, HttpMethod.Patch };

    /// <summary>
    /// Gets or sets the function that makes a fresh key for a logical request that has none. It runs once per logical
    /// request, never per retry. Default: a random UUID version 4 (<see cref="Guid.NewGuid"/>) in the 36-character
    /// <c>D</c> format, which reveals nothing about when or where it was made. Use
    /// <c>_ =&gt; Guid.CreateVersion7().ToString()</c> if your server's store benefits from time-ordered keys.
    /// The key must be 1 to 255 visible ASCII characters.
    /// </summary>
    public Func<HttpRequestMessage, string> KeyFactory { get; set; } = static _ => Guid.NewGuid().ToString();

    /// <summary>
    /// Gets or sets how many times a request is re-sent, with the same key and body, after the server answered <c>409</c>
    /// because the first attempt with that key is still running. Default: 3. <c>0</c> turns the behaviour off (and the
    /// request body is then not buffered by this handler). When the retries run out the last <c>409</c> is returned.
    /// </summary>
    public int MaxInProgressRetries { get; set; } = DefaultMaxInProgressRetries;

    /// <summary>
    /// Gets or sets the longest wait before a re-send after a <c>409</c>. A longer <c>Retry-After</c> is shortened to this;
    /// a <c>409</c> "request in progress" without <c>Retry-After</c> waits 1 second (or this value if smaller).
    /// Default: 5 seconds. Must be between zero and 5 minutes.
    /// </summary>
    public TimeSpan MaxRetryAfter { get; set; } = DefaultMaxRetryAfter;

    /// <summary>
    /// Gets or sets whether any <c>409</c> that carries a <c>Retry-After</c> header is re-sent, not only those whose
    /// problem type ends with <c>idempotency-request-in-progress</c>. Default: <see langword="true"/>: re-sending with the
    /// same key is what the server asked for and cannot execute the operation twice. A <c>409</c> whose problem type ends
    /// with <c>idempotency-key-reused</c> is never re-sent, whatever this says.
    /// </summary>
    public bool RetryConflictsWithRetryAfter { get; set; } = true;

    /// <summary>
    /// Gets or sets whether generated keys are sent in the IETF structured-field string form (<c>"8e03…"</c>, quoted) instead
    /// of the bare form (<c>8e03…</c>). Default: <see langword="false"/> (bare), which every server accepts; Oncely servers
    /// accept both. Keys the caller set are never rewritten.
    /// </summary>
    public bool UseQuotedForm { get; set; }

    /// <summary>
    /// Gets or sets the clock used to wait for <c>Retry-After</c> and to read <c>Retry-After</c> dates. Default:
    /// <see langword="null"/>, meaning the <see cref="System.TimeProvider"/> registered in the service collection, or
    /// <see cref="TimeProvider.System"/> if none is.
    /// </summary>
    public TimeProvider? TimeProvider { get; set; }
}
