using System.Buffers;

namespace Oncely.AspNetCore;

/// <summary>
/// Writes through to the client's stream and keeps a copy of what passed, up to a limit. Past the limit the copy is
/// dropped (and its pooled memory returned) while the writes still reach the client.
/// </summary>
internal sealed class ResponseCaptureStream : Stream
{
    private readonly Stream _inner;
    private readonly int _limit;
    private readonly Func<object, List<KeyValuePair<string, string>>>? _snapshotHeaders;
    private readonly object? _snapshotState;
    private byte[]? _buffer;
    private int _length;

    /// <param name="inner">The client's stream (or whatever a middleware outside Oncely put in its place).</param>
    /// <param name="limit">The most bytes kept.</param>
    /// <param name="snapshotHeaders">
    /// Called with <paramref name="snapshotState"/> once, just before the first write or flush is passed on, to keep the
    /// headers that describe the body as the application left them: a middleware outside Oncely (response compression)
    /// sets its own (<c>Content-Encoding</c>, <c>Vary</c>) as the first bytes reach it, and those describe its output,
    /// not the bytes kept here.
    /// </param>
    /// <param name="snapshotState">The state for <paramref name="snapshotHeaders"/> (the response), so no closure is needed.</param>
    public ResponseCaptureStream(Stream inner, int limit, Func<object, List<KeyValuePair<string, string>>>? snapshotHeaders = null, object? snapshotState = null)
    {
        _inner = inner;
        _limit = limit;
        _snapshotHeaders = snapshotHeaders;
        _snapshotState = snapshotState;
    }

    /// <summary>What <c>snapshotHeaders</c> returned before the first write or flush was passed on; <see langword="null"/> until then.</summary>
    public List<KeyValuePair<string, string>>? HeadersAtFirstWrite { get; private set; }

    /// <summary>Whether the body grew past the limit (the copy was dropped).</summary>
    public bool Overflowed { get; private set; }

    /// <summary>The bytes written so far (total, including past the limit).</summary>
    public long BytesWritten { get; private set; }

    /// <summary>
    /// Whether a write or flush to the client failed or was cancelled: the client did not receive the whole body, and
    /// whatever the handler then did (many result types swallow the cancellation) the captured copy is incomplete.
    /// </summary>
    public bool WriteFailed { get; set; }

    /// <summary>Whether anything wrote to or flushed this stream itself (rather than only the capture's pipe writer).</summary>
    public bool UsedAsStream { get; private set; }

    /// <summary>Whether the application aborted the connection while this response was being produced.</summary>
    public bool AbortedByApplication { get; set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>The captured copy; empty after an overflow.</summary>
    public ReadOnlyMemory<byte> Captured => Overflowed || _buffer is null ? ReadOnlyMemory<byte>.Empty : _buffer.AsMemory(0, _length);

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        UsedAsStream = true;
        Keep(buffer);
        BeforeForward();
        try
        {
            _inner.Write(buffer);
        }
        catch
        {
            WriteFailed = true;
            throw;
        }
    }

    public override void WriteByte(byte value) => Write([value]);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        UsedAsStream = true;
        Keep(buffer.Span);
        if (cancellationToken.IsCancellationRequested)
        {
            WriteFailed = true;
            return ValueTask.FromCanceled(cancellationToken);
        }

        BeforeForward();
        ValueTask pending;
        try
        {
            pending = _inner.WriteAsync(buffer, cancellationToken);
        }
        catch
        {
            WriteFailed = true;
            throw;
        }

        return pending.IsCompletedSuccessfully ? ValueTask.CompletedTask : AwaitWriteAsync(pending);
    }

    public override IAsyncResult BeginWrite(byte[] buffer, int offset, int count, AsyncCallback? callback, object? state)
        => TaskToAsyncResult.Begin(WriteAsync(buffer, offset, count), callback, state);

    public override void EndWrite(IAsyncResult asyncResult) => TaskToAsyncResult.End(asyncResult);

    public override void Flush()
    {
        UsedAsStream = true;
        BeforeForward();
        try
        {
            _inner.Flush();
        }
        catch
        {
            WriteFailed = true;
            throw;
        }
    }

    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        UsedAsStream = true;
        BeforeForward();
        try
        {
            await _inner.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            WriteFailed = true;
            throw;
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Returns the pooled buffer. The captured copy is unusable afterwards.</summary>
    public void ReleaseBuffer()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }

        _length = 0;
    }

    protected override void Dispose(bool disposing)
    {
        // The client's stream belongs to the server; only the copy is ours.
        ReleaseBuffer();
        base.Dispose(disposing);
    }

    private async ValueTask AwaitWriteAsync(ValueTask pending)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        catch
        {
            WriteFailed = true;
            throw;
        }
    }

    /// <summary>Takes the header snapshot if this is the first write or flush passed on to the client.</summary>
    internal void BeforeForward()
    {
        if (_snapshotHeaders is not null && HeadersAtFirstWrite is null)
        {
            HeadersAtFirstWrite = _snapshotHeaders(_snapshotState!);
        }
    }

    /// <summary>Counts <paramref name="data"/> and keeps a copy of it, up to the limit.</summary>
    internal void Keep(ReadOnlySpan<byte> data)
    {
        BytesWritten += data.Length;
        if (Overflowed || data.IsEmpty)
        {
            return;
        }

        if (_length + data.Length > _limit)
        {
            Overflowed = true;
            ReleaseBuffer();
            return;
        }

        if (_buffer is null || _length + data.Length > _buffer.Length)
        {
            var size = Math.Min(_limit, Math.Max(_length + data.Length, Math.Max(256, (_buffer?.Length ?? 0) * 2)));
            var grown = ArrayPool<byte>.Shared.Rent(size);
            if (_buffer is not null)
            {
                _buffer.AsSpan(0, _length).CopyTo(grown);
                ArrayPool<byte>.Shared.Return(_buffer);
            }

            _buffer = grown;
        }

        data.CopyTo(_buffer.AsSpan(_length));
        _length += data.Length;
    }
}
