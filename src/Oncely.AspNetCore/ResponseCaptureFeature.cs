using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Oncely.AspNetCore;

/// <summary>
/// The response body while the handler runs: <see cref="Stream"/> is the <see cref="ResponseCaptureStream"/> over the
/// server's stream, and <see cref="Writer"/> a tee over the server's own <see cref="PipeWriter"/> that keeps a copy of
/// each block as it is committed, in the same capture. A handler writing through <c>BodyWriter</c> (minimal APIs' JSON
/// results, for one) thus writes straight into the server's buffers, with no stream adapter and no second buffer between
/// them; both paths keep one copy in the order the bytes were written. The same object is the request's
/// <see cref="IIdempotencyFeature"/> and, over the server's own, its <see cref="IHttpRequestLifetimeFeature"/> (which notes an
/// application's own <c>Abort()</c> at once: the server signals it to <c>RequestAborted</c> asynchronously): one object per
/// execution instead of three.
/// </summary>
internal sealed class ResponseCaptureFeature(IHttpResponseBodyFeature inner, ResponseCaptureStream capture, IdempotencyExecution execution, IHttpRequestLifetimeFeature? lifetime)
    : IHttpResponseBodyFeature, IIdempotencyFeature, IHttpRequestLifetimeFeature
{
    private CapturePipeWriter? _writer;

    public IdempotencyExecution Execution => execution;

    // Only registered as the lifetime feature when the server has one (lifetime is then not null).
    CancellationToken IHttpRequestLifetimeFeature.RequestAborted
    {
        get => lifetime!.RequestAborted;
        set => lifetime!.RequestAborted = value;
    }

    void IHttpRequestLifetimeFeature.Abort()
    {
        capture.AbortedByApplication = true;
        lifetime!.Abort();
    }

    public Stream Stream => capture;

    public PipeWriter Writer => _writer ??= new CapturePipeWriter(inner.Writer, capture);

    public void DisableBuffering() => inner.DisableBuffering();

    // Starting the response commits the headers (snapshotted first) the way the server does it: without sending them on
    // their own. A flush here would cost a send of the headers alone, one more packet and system call per response, and a
    // client reading the answer in two parts (minimal APIs' JSON results start the response before writing).
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        capture.BeforeForward();
        Task starting;
        try
        {
            starting = inner.StartAsync(cancellationToken);
        }
        catch
        {
            capture.WriteFailed = true;
            throw;
        }

        return starting.IsCompletedSuccessfully ? Task.CompletedTask : AwaitStartAsync(starting);
    }

    private async Task AwaitStartAsync(Task starting)
    {
        try
        {
            await starting.ConfigureAwait(false);
        }
        catch
        {
            capture.WriteFailed = true;
            throw;
        }
    }

    // The file's bytes go through the capture like any other write.
    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
        => SendFileFallback.SendFileAsync(capture, path, offset, count, cancellationToken);

    // Called by the middleware once the handler returned: whatever the handler committed but did not flush goes out now,
    // so a client that went away shows as a failed flush before the record is written. The server's writer is not
    // completed: the server ends the response itself. A handler that wrote only through the writer and flushed it (JSON
    // results do) has nothing left to send: no empty flush of either path then.
    public async Task CompleteAsync()
    {
        if (_writer is not null && !(_writer.CanGetUnflushedBytes && _writer.UnflushedBytes == 0))
        {
            await _writer.FlushAsync().ConfigureAwait(false);
        }

        if (_writer is null || capture.UsedAsStream)
        {
            await capture.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>A <see cref="PipeWriter"/> that hands out the server's memory and copies each committed block into the capture.</summary>
    private sealed class CapturePipeWriter(PipeWriter inner, ResponseCaptureStream capture) : PipeWriter
    {
        private Memory<byte> _lent;

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override Memory<byte> GetMemory(int sizeHint = 0)
        {
            capture.BeforeForward();
            return _lent = inner.GetMemory(sizeHint);
        }

        public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

        public override void Advance(int bytes)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(bytes);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(bytes, _lent.Length);
            capture.Keep(_lent.Span[..bytes]);
            _lent = _lent[bytes..];
            inner.Advance(bytes);
        }

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            capture.Keep(source.Span);
            capture.BeforeForward();
            ValueTask<FlushResult> pending;
            try
            {
                pending = inner.WriteAsync(source, cancellationToken);
            }
            catch
            {
                capture.WriteFailed = true;
                throw;
            }

            return Track(pending);
        }

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            capture.BeforeForward();
            ValueTask<FlushResult> pending;
            try
            {
                pending = inner.FlushAsync(cancellationToken);
            }
            catch
            {
                capture.WriteFailed = true;
                throw;
            }

            return Track(pending);
        }

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        // Completing the handler's writer flushes what it wrote; the server's writer stays open (the server ends the
        // response), as it did when the handler's writer was an adapter over the capture stream.
        public override void Complete(Exception? exception = null)
        {
        }

        public override async ValueTask CompleteAsync(Exception? exception = null)
        {
            if (exception is null)
            {
                await FlushAsync().ConfigureAwait(false);
            }
        }

        // A flush that failed or was cancelled means the client did not get the whole body (see ResponseCaptureStream.WriteFailed);
        // so does one that answers IsCompleted: the server stopped reading the response (the client went away), and a
        // writer such as System.Text.Json's then stops quietly and returns, before the server has signalled RequestAborted.
        private ValueTask<FlushResult> Track(ValueTask<FlushResult> pending)
        {
            if (!pending.IsCompletedSuccessfully)
            {
                return AwaitAsync(pending);
            }

            var result = pending.Result;
            if (result.IsCanceled || result.IsCompleted)
            {
                capture.WriteFailed = true;
            }

            return new ValueTask<FlushResult>(result);
        }

        private async ValueTask<FlushResult> AwaitAsync(ValueTask<FlushResult> pending)
        {
            try
            {
                var result = await pending.ConfigureAwait(false);
                if (result.IsCanceled || result.IsCompleted)
                {
                    capture.WriteFailed = true;
                }

                return result;
            }
            catch
            {
                capture.WriteFailed = true;
                throw;
            }
        }
    }
}
