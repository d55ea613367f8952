namespace Oncely;

/// <summary>
/// An exception written to a log in place of one whose text holds a card number: its message, stack trace and
/// <see cref="ToString"/> are the original's with every card number masked (<see cref="PrimaryAccountNumbers"/>). Oncely
/// logs every exception through <see cref="For"/>, so a driver's message that quotes a key (a Redis timeout names the
/// command and its key) never writes a card number.
/// </summary>
internal sealed class RedactedException : Exception
{
    private readonly string _text;
    private readonly string? _stackTrace;

    private RedactedException(Exception original, string text)
        : base(PrimaryAccountNumbers.Mask(original.Message))
    {
        _text = text;
        _stackTrace = PrimaryAccountNumbers.MaskNullable(original.StackTrace);
        HResult = original.HResult;
        Source = original.Source;
        OriginalType = original.GetType().FullName ?? original.GetType().Name;
    }

    /// <summary>The full type name of the exception this stands for.</summary>
    public string OriginalType { get; }

    /// <inheritdoc />
    public override string? StackTrace => _stackTrace;

    /// <summary>
    /// <paramref name="exception"/> itself when its text (message, inner exceptions, stack trace) holds no card number;
    /// otherwise a stand-in with the card numbers masked.
    /// </summary>
    public static Exception For(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var text = exception.ToString();
        var masked = PrimaryAccountNumbers.Mask(text);
        return ReferenceEquals(text, masked) ? exception : new RedactedException(exception, masked);
    }

    /// <inheritdoc />
    public override string ToString() => _text;
}
