using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Endpoint metadata for endpoints whose callers are systems that sign their requests rather than signed-in users:
/// webhook providers. The idempotency middleware reads the body, asks the verifier who sent it, and uses the verified
/// sender as the tenant (the first half of the scope), so two senders that happen to use the same event id keep two
/// records. A request the verifier refuses is answered <c>401</c> problem+json before the store is touched: nothing is
/// recorded and the handler does not run. <c>Oncely.Webhooks</c> implements it for Standard Webhooks
/// (<c>AcceptStandardWebhooks(...)</c>); implement it yourself for another signature scheme.
/// </summary>
public interface IIdempotencySenderVerifier
{
    /// <summary>Verifies the request and names its sender.</summary>
    /// <param name="context">The request; its body has been read (use <paramref name="body"/>, not the request stream).</param>
    /// <param name="body">The whole request body, exactly as received: the bytes the handler will read.</param>
    /// <param name="cancellationToken">Cancelled when the client goes away.</param>
    /// <returns>The verified sender, or why the request was refused.</returns>
    ValueTask<IdempotencySenderVerification> VerifyAsync(HttpContext context, ReadOnlyMemory<byte> body, CancellationToken cancellationToken);

    /// <summary>
    /// Describes, for API documentation, what a request needs to be verified: the headers it must carry and what a
    /// <c>401</c> from this verifier means. The OpenAPI transformer (<c>Oncely.AspNetCore.OpenApi</c>) documents each header
    /// as a required header parameter and the description as the endpoint's <c>401</c>. Called when a document is
    /// generated, never per request. Default: <see langword="null"/>: the <c>401</c> is described generically ("the
    /// signature could not be verified") and no header is documented.
    /// </summary>
    /// <param name="services">The application's services, for the options in force (a tolerance, the problem type base URI).</param>
    /// <returns>The description, or <see langword="null"/>.</returns>
    IdempotencySenderDescription? Describe(IServiceProvider services) => null;
}
