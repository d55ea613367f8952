namespace Oncely.AspNetCore.Tests;

/// <summary>Wraps a real store and makes chosen transitions fail the way an unreachable database does.</summary>
public sealed class FaultyStore(IIdempotencyStore inner) : IIdempotencyStore
{
    private int _completeAttempts;

    public bool FailReserve { get; set; }

    public bool HangReserve { get; set; }

    public bool FailComplete { get; set; }

    public int CompleteAttempts => Volatile.Read(ref _completeAttempts);

    public async ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        if (HangReserve)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        if (FailReserve)
        {
            throw new IdempotencyStoreUnavailableException("connection refused (test)");
        }

        return await inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);
    }

    public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _completeAttempts);
        return FailComplete
            ? throw new IdempotencyStoreUnavailableException("connection reset (test)")
            : inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);
    }

    public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
        => inner.TryReleaseAsync(id, fencingToken, cancellationToken);

    public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
        => inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken);

    public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
        => inner.TryRenewLeaseAsync(id, fencingToken, lease, cancellationToken);

    public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
        => inner.GetAsync(id, cancellationToken);
}

/// <summary>A body stream without a length, so the client sends it chunked.</summary>
public sealed class NonSeekableStream(byte[] data) : Stream
{
    private int _position;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = Math.Min(count, data.Length - _position);
        Array.Copy(data, _position, buffer, offset, n);
        _position += n;
        return n;
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
