using System.Buffers.Binary;
using System.Buffers.Text;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;

namespace Oncely;

/// <summary>
/// Encrypts what Oncely keeps of an operation (the stored answer's headers and body, the key-reuse audit's payload) with
/// ASP.NET Core Data Protection before any store sees it, and decrypts it where a replay is built or an operator reads the
/// audit. Turned on by <see cref="IdempotencyBuilderExtensions.ProtectStoredAnswers"/>; the engine calls it at every
/// completion path (<see cref="ExecutionRuntime.ForStore"/>) and wherever a Completed record becomes a replay.
/// </summary>
/// <remarks>
/// <para>
/// A protected answer is recognisable at rest: its header list is the single envelope header
/// <c>Oncely-Protected: v1</c>, its body is the Data Protection payload of <c>[version 1][headers length, 4 bytes
/// big-endian][headers as stored JSON][body]</c>, and its status code and body-omitted flag stay in clear (the operator API
/// lists the status). An answer without the envelope header was written before protection was turned on and replays as it
/// was stored. A protected audit payload is the text <c>oncely-protected:v1:</c> followed by the base64url payload.
/// </para>
/// <para>
/// Each ciphertext is bound to its record: the protector's purpose chain ends with the record's tenant, operation and key,
/// so an answer copied into another record's row (another tenant's, say) does not decrypt there.
/// </para>
/// </remarks>
internal sealed partial class StoredAnswerProtection
{
    /// <summary>The name of the one header a protected answer is stored with.</summary>
    public const string EnvelopeHeaderName = "Oncely-Protected";

    /// <summary>The envelope version this code writes and reads.</summary>
    public const string EnvelopeVersion = "v1";

    /// <summary>The text a protected audit payload starts with.</summary>
    public const string AuditPrefix = "oncely-protected:v1:";

    /// <summary>The root purpose of stored answers' protectors.</summary>
    public const string AnswerPurpose = "Oncely.StoredAnswer.v1";

    /// <summary>The root purpose of key-reuse audit payloads' protectors.</summary>
    public const string AuditPurpose = "Oncely.KeyReuseAudit.v1";

    private const byte PayloadVersion = 1;

    private static readonly KeyValuePair<string, string>[] Envelope = [new(EnvelopeHeaderName, EnvelopeVersion)];

    private readonly IDataProtector _answers;
    private readonly IDataProtector _audit;

    /// <summary>Creates the protection of an application from its Data Protection provider (its key ring).</summary>
    /// <param name="provider">The application's <see cref="IDataProtectionProvider"/>.</param>
    public StoredAnswerProtection(IDataProtectionProvider provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        _answers = provider.CreateProtector(AnswerPurpose);
        _audit = provider.CreateProtector(AuditPurpose);
    }

    /// <summary><see langword="true"/> when <paramref name="response"/> carries the protection envelope (whatever its version).</summary>
    public static bool IsProtected(IdempotentResponse response)
        => response.Headers.Count == 1 && string.Equals(response.Headers[0].Key, EnvelopeHeaderName, StringComparison.OrdinalIgnoreCase);

    /// <summary><see langword="true"/> when <paramref name="payload"/> is a protected audit payload.</summary>
    public static bool IsProtected(string payload) => payload.StartsWith(AuditPrefix, StringComparison.Ordinal);

    /// <summary>The answer to store in place of <paramref name="response"/>: same status and body-omitted flag, headers and body sealed.</summary>
    /// <param name="id">The record the answer belongs to (bound into the ciphertext).</param>
    /// <param name="response">The answer in clear.</param>
    public IdempotentResponse Protect(IdempotencyRecordId id, IdempotentResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var headers = Encoding.UTF8.GetBytes(StoredHeaders.Serialize(response.Headers));
        var plain = new byte[1 + 4 + headers.Length + response.Body.Length];
        plain[0] = PayloadVersion;
        BinaryPrimitives.WriteInt32BigEndian(plain.AsSpan(1, 4), headers.Length);
        headers.CopyTo(plain.AsSpan(5));
        response.Body.Span.CopyTo(plain.AsSpan(5 + headers.Length));
        try
        {
            return new IdempotentResponse(response.StatusCode, Envelope, For(_answers, id).Protect(plain), response.BodyOmitted);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <summary>
    /// Opens a protected answer. <see langword="false"/> when it cannot be opened: its key was revoked or is gone from the
    /// key ring, the envelope is of an unknown version, or the bytes were altered or belong to another record.
    /// </summary>
    /// <param name="id">The record the answer was read from.</param>
    /// <param name="stored">The answer as stored, with the envelope (<see cref="IsProtected(IdempotentResponse)"/>).</param>
    /// <param name="answer">The answer in clear.</param>
    /// <param name="failure">Why it could not be opened.</param>
    public bool TryUnprotect(IdempotencyRecordId id, IdempotentResponse stored, out IdempotentResponse answer, out Exception? failure)
    {
        answer = stored;
        failure = null;
        if (!string.Equals(stored.Headers[0].Value, EnvelopeVersion, StringComparison.Ordinal))
        {
            failure = new CryptographicException($"The stored answer's protection envelope is '{stored.Headers[0].Value}'; this version of Oncely reads '{EnvelopeVersion}'.");
            return false;
        }

        byte[] plain;
        try
        {
            plain = For(_answers, id).Unprotect(AsArray(stored.Body));
        }
        catch (CryptographicException ex)
        {
            failure = ex;
            return false;
        }

        if (plain.Length < 5 || plain[0] != PayloadVersion
            || BinaryPrimitives.ReadInt32BigEndian(plain.AsSpan(1, 4)) is var headerLength && (headerLength < 0 || headerLength > plain.Length - 5))
        {
            failure = new CryptographicException("The stored answer decrypted to a payload of an unknown layout.");
            return false;
        }

        var headers = StoredHeaders.Deserialize(Encoding.UTF8.GetString(plain, 5, headerLength));
        var body = plain.AsMemory(5 + headerLength);
        answer = new IdempotentResponse(stored.StatusCode, headers, body, stored.BodyOmitted);
        return true;
    }

    /// <summary>The audit payload to store in place of <paramref name="payload"/>.</summary>
    /// <param name="id">The record the refused request was meant for (bound into the ciphertext).</param>
    /// <param name="payload">The redacted, capped payload in clear.</param>
    public string ProtectAuditPayload(IdempotencyRecordId id, string payload)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var sealedBytes = For(_audit, id).Protect(Encoding.UTF8.GetBytes(payload));
        return string.Concat(AuditPrefix, Base64Url.EncodeToString(sealedBytes));
    }

    /// <summary>
    /// Opens a stored audit payload: a payload without the envelope is returned as it is (written before protection was
    /// on); <see langword="null"/> when a protected one cannot be opened.
    /// </summary>
    /// <param name="id">The record of the audit entry.</param>
    /// <param name="stored">The payload as stored.</param>
    public string? UnprotectAuditPayload(IdempotencyRecordId id, string stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        if (!IsProtected(stored))
        {
            return stored;
        }

        try
        {
            var sealedBytes = Base64Url.DecodeFromChars(stored.AsSpan(AuditPrefix.Length));
            return Encoding.UTF8.GetString(For(_audit, id).Unprotect(sealedBytes));
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            return null;
        }
    }

    // The record's identity ends the purpose chain, length-prefixed so no two identities share a purpose.
    private static IDataProtector For(IDataProtector root, IdempotencyRecordId id)
        => root.CreateProtector(string.Create(CultureInfo.InvariantCulture, $"{id.Tenant.Length}:{id.Tenant}|{id.Operation.Length}:{id.Operation}|{id.Key.Length}:{id.Key}"));

    private static byte[] AsArray(ReadOnlyMemory<byte> bytes)
        => MemoryMarshal.TryGetArray(bytes, out var segment) && segment.Array is { } array && segment.Offset == 0 && segment.Count == array.Length
            ? array
            : bytes.ToArray();
}
