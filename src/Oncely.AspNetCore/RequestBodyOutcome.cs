using System.Buffers;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>How reading the request body ended.</summary>
internal enum RequestBodyOutcome
{
    /// <summary>The whole body is in the buffer.</summary>
    Read,

    /// <summary>The body is over the fingerprint limit (row 15).</summary>
    TooLarge,

    /// <summary>The request's framing is broken or its body stalled; the server's own status applies (row 19).</summary>
    Unreadable,

    /// <summary>The client went away while sending the body: there is nobody to answer.</summary>
    ClientGone,
}
