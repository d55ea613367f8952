namespace Oncely.AspNetCore;

/// <summary>How reading a key from its source ended.</summary>
/// <param name="Key">The validated key, or <see langword="null"/> when none was sent or it was refused.</param>
/// <param name="Problem">
/// Why the key was refused (row 4, <c>idempotency-key-invalid</c>), in words for the sender's developer; <see langword="null"/>
/// when the key is valid or absent.
/// </param>
internal readonly record struct IdempotencyKeyReading(string? Key, string? Problem);
