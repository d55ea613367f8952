using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>What an <see cref="IIdempotencySenderVerifier"/> decided about one request.</summary>
public sealed class IdempotencySenderVerification
{
    private IdempotencySenderVerification(string? sender, string? problemType, string? title, string? detail)
    {
        Sender = sender;
        ProblemType = problemType;
        Title = title;
        Detail = detail;
    }

    /// <summary>The verified sender (the tenant the records are kept under), or <see langword="null"/> when refused.</summary>
    public string? Sender { get; }

    /// <summary>
    /// For a refusal: the problem type's name, appended to <see cref="IdempotencyOptions.ProblemTypeBaseUri"/> (for example
    /// <c>webhook-signature-invalid</c>).
    /// </summary>
    public string? ProblemType { get; }

    /// <summary>For a refusal: the problem's title.</summary>
    public string? Title { get; }

    /// <summary>For a refusal: what the sender's developer should change, in a sentence or two (never a secret).</summary>
    public string? Detail { get; }

    /// <summary>Whether the sender was verified.</summary>
    public bool IsVerified => Sender is not null;

    /// <summary>The request was sent by <paramref name="sender"/>.</summary>
    /// <param name="sender">The sender's name; not empty (the empty tenant is the shared anonymous scope).</param>
    /// <returns>A verified result.</returns>
    public static IdempotencySenderVerification Verified(string sender)
    {
        ArgumentException.ThrowIfNullOrEmpty(sender);
        return new(sender, null, null, null);
    }

    /// <summary>The request is refused with <c>401</c> problem+json; nothing runs and nothing is recorded.</summary>
    /// <param name="problemType">The problem type's name, for example <c>webhook-signature-invalid</c>.</param>
    /// <param name="title">A short title.</param>
    /// <param name="detail">What to change, for the sender's developer.</param>
    /// <returns>A refusal.</returns>
    public static IdempotencySenderVerification Refused(string problemType, string title, string detail)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(problemType);
        ArgumentException.ThrowIfNullOrWhiteSpace(title);
        ArgumentException.ThrowIfNullOrWhiteSpace(detail);
        return new(null, problemType, title, detail);
    }
}
