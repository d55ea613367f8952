namespace Oncely;

/// <summary>
/// The one check of a transport's settings against what the store can hold (<see cref="IIdempotencyStoreLimits"/>):
/// a key longer than the store can index would fail at run time, so the mistake is refused at start with a message that
/// says what to change. Every transport asks it, with its own <c>MaxKeyLength</c>.
/// </summary>
internal static class IdempotencyStoreLimitsCheck
{
    /// <summary>What to change when <paramref name="maxKeyLength"/> exceeds what <paramref name="store"/> can index; <see langword="null"/> when it fits.</summary>
    /// <param name="store">The application's store.</param>
    /// <param name="maxKeyLength">The longest key the transport accepts.</param>
    /// <param name="owner">Who sets it, named in the message (<c>Oncely</c>, <c>Oncely.MassTransit</c>).</param>
    public static string? Refusal(IIdempotencyStore store, int maxKeyLength, string owner)
        => store is IIdempotencyStoreLimits limits && maxKeyLength > limits.MaxKeyLength
            ? $"{owner}: MaxKeyLength is {maxKeyLength}, but the idempotency store {store.GetType().Name} can index keys of at most {limits.MaxKeyLength} characters. " +
              $"Set MaxKeyLength to {limits.MaxKeyLength} or less (the default, 255, fits every store)."
            : null;
}
