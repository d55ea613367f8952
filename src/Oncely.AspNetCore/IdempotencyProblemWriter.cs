using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace Oncely.AspNetCore;

/// <summary>Writes a refusal as RFC 9457 problem details, through <see cref="IProblemDetailsService"/> when it accepts it.</summary>
internal sealed class IdempotencyProblemWriter(IProblemDetailsService? problemDetailsService)
{
    public async Task WriteAsync(HttpContext context, IdempotencyOptions options, int status, string type, string title, string detail, string? key, TimeSpan? retryAfter = null)
    {
        var response = context.Response;
        response.StatusCode = status;
        if (retryAfter is { } delay)
        {
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        var problem = new ProblemDetails
        {
            Type = options.ProblemTypeBaseUri + type,
            Title = title,
            Status = status,
            Detail = detail,
            Instance = context.Request.Path.Value,
        };
        if (key is not null)
        {
            problem.Extensions["idempotencyKey"] = key;
        }

        if (problemDetailsService is not null
            && await problemDetailsService.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem }).ConfigureAwait(false))
        {
            return;
        }

        // No problem-details service, or it declined (for example an Accept header without JSON): write it directly,
        // because the client still needs to know what to fix.
        response.ContentType = "application/problem+json";
        await JsonSerializer.SerializeAsync(response.Body, problem, ProblemJsonContext.Default.ProblemDetails, context.RequestAborted).ConfigureAwait(false);
    }
}
