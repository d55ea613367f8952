using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Oncely.AspNetCore;

/// <summary>
/// The request body read once into pooled memory, so the same bytes are fingerprinted and handed to the handler.
/// Once <see cref="AttachToRequest"/> is called (only when the handler will run), <see cref="HttpRequest.Body"/> reads
/// from it; <see cref="Dispose"/> puts the server's own stream back before the memory returns to the pool, so nothing
/// that runs after the middleware (an outer logger, an <c>OnCompleted</c> callback) can read another request's bytes
/// through it.
/// </summary>
internal sealed class RequestBodyBuffer : IDisposable
{
    private readonly HttpRequest? _request;
    private Stream? _original;
    private IRequestBodyPipeFeature? _originalPipe;
    private byte[]? _rented;

    private RequestBodyBuffer(RequestBodyOutcome outcome, HttpRequest? request = null, byte[]? rented = null, int length = 0, int failureStatus = 0)
    {
        Outcome = outcome;
        _request = request;
        _rented = rented;
        Length = length;
        FailureStatus = failureStatus;
    }

    public RequestBodyOutcome Outcome { get; }

    public int Length { get; }

    /// <summary>For <see cref="RequestBodyOutcome.Unreadable"/>: the status the server chose (400, or 408 for a stalled body).</summary>
    public int FailureStatus { get; }

    public ReadOnlyMemory<byte> Body => _rented is null ? ReadOnlyMemory<byte>.Empty : _rented.AsMemory(0, Length);

    /// <summary>Lets the handler read the buffered bytes as the request body.</summary>
    public void AttachToRequest()
    {
        if (_request is not null && _rented is not null && _original is null)
        {
            _original = _request.Body;
            _originalPipe = _request.HttpContext.Features.Get<IRequestBodyPipeFeature>();
            var attached = new AttachedBody(_rented, Length);
            _request.Body = attached;
            _request.HttpContext.Features.Set<IRequestBodyPipeFeature>(attached);
        }
    }

    public static async ValueTask<RequestBodyBuffer> ReadAsync(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength > limit)
        {
            return new RequestBodyBuffer(RequestBodyOutcome.TooLarge);
        }

        if (request.ContentLength == 0)
        {
            return new RequestBodyBuffer(RequestBodyOutcome.Read);
        }

        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(request.ContentLength ?? 4096, (long)limit + 1));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > limit)
                    {
                        break;
                    }

                    var grown = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, (long)limit + 1));
                    buffer.AsSpan(0, length).CopyTo(grown);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = grown;
                }

                var read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                length += read;
                // Read to the end even when Content-Length bytes are here: a middleware before this one (request
                // decompression) may have put a stream in Body that gives more bytes than the header declares.
                if (length > limit)
                {
                    break;
                }
            }
        }
        catch (BadHttpRequestException ex)
        {
            // A body shorter than its Content-Length, a body below the minimum data rate, bad chunking: the server
            // has already decided the status (400, or 408 for a stalled body). Nothing was reserved, so the key stays
            // usable.
            ArrayPool<byte>.Shared.Return(buffer);
            return new RequestBodyBuffer(RequestBodyOutcome.Unreadable, failureStatus: ex.StatusCode);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client gave up while sending: nobody is left to answer.
            ArrayPool<byte>.Shared.Return(buffer);
            return new RequestBodyBuffer(RequestBodyOutcome.ClientGone);
        }
        catch (IOException)
        {
            // Other framing errors (a chunk size that overflows) and broken connections surface as IOException; the
            // framework's own body binding answers them 400, and so does this.
            ArrayPool<byte>.Shared.Return(buffer);
            return new RequestBodyBuffer(RequestBodyOutcome.Unreadable, failureStatus: StatusCodes.Status400BadRequest);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        if (length > limit)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return new RequestBodyBuffer(RequestBodyOutcome.TooLarge);
        }

        if (length == 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return new RequestBodyBuffer(RequestBodyOutcome.Read);
        }

        return new RequestBodyBuffer(RequestBodyOutcome.Read, request, buffer, length);
    }

    public void Dispose()
    {
        if (_rented is { } rented)
        {
            _rented = null;
            if (_original is not null)
            {
                _request!.Body = _original;
                _request.HttpContext.Features.Set(_originalPipe);
                _original = null;
                _originalPipe = null;
            }

            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// The buffered bytes as the request body, for both ways a handler reads it: <see cref="HttpRequest.Body"/> (this
    /// stream) and <see cref="HttpRequest.BodyReader"/> (a reader straight over the same memory). Without the second, the
    /// server would wrap the replaced stream in a <see cref="PipeReader"/> of its own, with its own buffers and one more
    /// copy of every byte (JSON model binding reads through <c>BodyReader</c>). The two do not share a position, as a
    /// handler reads its body one way or the other.
    /// </summary>
    private sealed class AttachedBody : MemoryStream, IRequestBodyPipeFeature
    {
        private readonly byte[] _buffer;
        private readonly int _length;
        private PipeReader? _reader;

        public AttachedBody(byte[] buffer, int length)
            : base(buffer, 0, length, writable: false)
        {
            _buffer = buffer;
            _length = length;
        }

        public PipeReader Reader => _reader ??= PipeReader.Create(new ReadOnlySequence<byte>(_buffer, 0, _length));
    }
}
