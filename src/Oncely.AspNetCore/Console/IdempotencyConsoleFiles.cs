using System.Collections.Frozen;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Serves the operator console's files, embedded in this assembly as <c>Oncely.Console.{name}</c>: the page (with the
/// operator API's address and the credential header written into its meta tags) and its style sheet, scripts and icon.
/// Every answer carries the same security headers; nothing here reads a store or sets a cookie.
/// </summary>
internal sealed class IdempotencyConsoleFiles
{
    /// <summary>
    /// The page's Content-Security-Policy: its own files only, no inline script or style, no plug-ins, no forms posted
    /// anywhere, no framing. The page's requests to the operator API are same-origin (<c>connect-src 'self'</c>).
    /// </summary>
    internal const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private const string ResourcePrefix = "Oncely.Console.";
    private const string PageName = "index.html";

    private static readonly FrozenDictionary<string, string> ContentTypes = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [".html"] = "text/html; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".svg"] = "image/svg+xml",
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private readonly IdempotencyConsoleOptions _options;
    private readonly FrozenDictionary<string, (byte[] Content, string ContentType, string ETag)> _files;
    private readonly string _page;

    public IdempotencyConsoleFiles(IdempotencyConsoleOptions options)
    {
        Validate(options);
        _options = options;
        var assembly = typeof(IdempotencyConsoleFiles).Assembly;
        var files = new Dictionary<string, (byte[], string, string)>(StringComparer.Ordinal);
        string? page = null;
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            var name = resource[ResourcePrefix.Length..];
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var content = copy.ToArray();
            if (name == PageName)
            {
                page = Encoding.UTF8.GetString(content);
                continue;
            }

            files[name] = (content, ContentTypes[Path.GetExtension(name)], ETagOf(content));
        }

        _page = page ?? throw new InvalidOperationException("The operator console's page is missing from Oncely.AspNetCore's embedded resources.");
        _files = files.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary><c>GET {prefix}/</c>: the page; <c>GET {prefix}</c> redirects there, so the page's relative links resolve under it.</summary>
    public Task ServePageAsync(HttpContext context)
    {
        var request = context.Request;
        if (!request.Path.HasValue || !request.Path.Value.EndsWith('/'))
        {
            context.Response.Redirect(request.PathBase + request.Path + "/" + request.QueryString);
            return Task.CompletedTask;
        }

        // The page learns where the operator API is (under this request's path base) and how to send the credential.
        var html = HtmlEncoder.Default;
        var page = Encoding.UTF8.GetBytes(_page
            .Replace("{{api}}", html.Encode(request.PathBase + _options.ApiPrefix.TrimEnd('/')), StringComparison.Ordinal)
            .Replace("{{header}}", html.Encode(_options.CredentialHeader), StringComparison.Ordinal)
            .Replace("{{scheme}}", html.Encode(_options.CredentialScheme), StringComparison.Ordinal));
        return WriteAsync(context, page, ContentTypes[".html"], ETagOf(page));
    }

    /// <summary><c>GET {prefix}/{file}</c>: one of the page's files, or <c>404</c>.</summary>
    public Task ServeFileAsync(HttpContext context, string file)
    {
        if (!_files.TryGetValue(file, out var found))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }

        return WriteAsync(context, found.Content, found.ContentType, found.ETag);
    }

    private static async Task WriteAsync(HttpContext context, byte[] content, string contentType, string etag)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";

        // Small files that change with the package: revalidated on every load, answered 304 while unchanged.
        headers.CacheControl = "no-cache";
        headers.ETag = etag;
        if (context.Request.Headers.IfNoneMatch.Any(value => value is not null && value.Split(',').Any(tag => tag.Trim() == etag || tag.Trim() == "*")))
        {
            context.Response.StatusCode = StatusCodes.Status304NotModified;
            return;
        }

        context.Response.ContentType = contentType;
        context.Response.ContentLength = content.Length;
        if (!HttpMethods.IsHead(context.Request.Method))
        {
            await context.Response.Body.WriteAsync(content, context.RequestAborted).ConfigureAwait(false);
        }
    }

    private static string ETagOf(byte[] content) => "\"" + Convert.ToHexString(SHA256.HashData(content), 0, 16) + "\"";

    private static void Validate(IdempotencyConsoleOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.ApiPrefix) || !options.ApiPrefix.StartsWith('/') || options.ApiPrefix.Any(char.IsWhiteSpace))
        {
            throw new ArgumentException(
                $"IdempotencyConsoleOptions.ApiPrefix '{options.ApiPrefix}' is not a route prefix: give the prefix passed to MapIdempotencyAdmin, starting with '/' (default \"/admin/idempotency\").",
                nameof(options));
        }

        if (string.IsNullOrEmpty(options.CredentialHeader) || !options.CredentialHeader.All(IsTokenChar))
        {
            throw new ArgumentException(
                $"IdempotencyConsoleOptions.CredentialHeader '{options.CredentialHeader}' is not an HTTP header name: give the header the operator API reads the credential from (default \"Authorization\").",
                nameof(options));
        }

        if (options.CredentialScheme is null || !options.CredentialScheme.All(IsTokenChar))
        {
            throw new ArgumentException(
                $"IdempotencyConsoleOptions.CredentialScheme '{options.CredentialScheme}' is not an authentication scheme name: give one word such as \"Bearer\", or \"\" to send the credential alone.",
                nameof(options));
        }
    }

    private static bool IsTokenChar(char c) => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~';
}
