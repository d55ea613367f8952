using System.Data.Common;
using System.Net;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Oncely;

namespace Payments.Tests;

/// <summary>
/// <see cref="LedgerTransaction.CompleteAndCommitAsync"/> hands the answer to the store inside the ledger's still-open transaction,
/// and refuses a store that cannot join it.
/// </summary>
public sealed class TransactionalCompletionTests
{
    [Fact]
    public async Task Payment_StoreJoinsSqliteTransactions_CompletesInsideTheOpenTransaction()
    {
        var store = new TransactionalProbeStore();
        await using var host = await PaymentsHost.StartAsync(services => services.AddIdempotency().UseStore(_ => store));
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 250, currency = "EUR" };
        var completionsBefore = store.CompletedInTransaction;
        var reservationsBefore = store.ReservedInTransaction;
        var committedBefore = store.CompletedAndCommitted;

        using var first = await PaymentsHost.PostAsync(client, "/payments", body, "tx-1");
        using var retry = await PaymentsHost.PostAsync(client, "/payments", body, "tx-1");

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(completionsBefore + 1, store.CompletedInTransaction);
        Assert.Equal(committedBefore + 1, store.CompletedAndCommitted); // one call: one round trip on PostgreSQL
        Assert.Equal(reservationsBefore + 1, store.ReservedInTransaction);
        Assert.Equal(0, store.CompletedOutsideTransaction);
        Assert.Equal("true", Assert.Single(retry.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal(1, await host.Ledger.CountPaymentsAsync());
    }

    [Fact]
    public async Task MoneyMovement_StoreCannotJoinTheTransaction_RefusedAndNothingCommitted()
    {
        await using var host = await PaymentsHost.StartAsync(services => services.AddIdempotency().UseStore(_ => new InMemoryIdempotencyStore()));
        using var client = host.Client();

        using var refused = await PaymentsHost.PostAsync(client, "/accounts", new { name = "alice", currency = "EUR" }, "tx-2");
        Assert.Equal(HttpStatusCode.InternalServerError, refused.StatusCode);
    }

    private sealed class TransactionalProbeStore : IIdempotencyStore, ITransactionalIdempotencyStore
    {
        private readonly InMemoryIdempotencyStore _inner = new(TimeProvider.System);
        private int _inTransaction;
        private int _outside;
        private int _reservedInTransaction;
        private int _completedAndCommitted;

        public int CompletedInTransaction => Volatile.Read(ref _inTransaction);

        public int CompletedOutsideTransaction => Volatile.Read(ref _outside);

        public ValueTask<bool> TryCompleteAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        {
            // The ledger's transaction is still open: the payment is not committed yet.
            Assert.IsType<SqliteTransaction>(transaction);
            Assert.NotNull(transaction.Connection);
            Interlocked.Increment(ref _inTransaction);
            return _inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);
        }

        public int ReservedInTransaction => Volatile.Read(ref _reservedInTransaction);

        public int CompletedAndCommitted => Volatile.Read(ref _completedAndCommitted);

        // The store's one call for the completion and the commit (PostgreSQL sends them as one batch): the completion
        // inside the open transaction, then the commit, as the interface's default does.
        public async ValueTask<bool> TryCompleteAndCommitAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _completedAndCommitted);
            if (!await TryCompleteAsync(transaction, id, fencingToken, response, expiration, cancellationToken))
            {
                return false;
            }

            await transaction.CommitAsync(cancellationToken);
            return true;
        }

        // Money movements are one-commit endpoints: they reserve inside the ledger's open transaction too.
        public async ValueTask<TransactionalReservationResult> TryReserveAsync(DbTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
        {
            Assert.IsType<SqliteTransaction>(transaction);
            Assert.NotNull(transaction.Connection);
            Interlocked.Increment(ref _reservedInTransaction);
            var result = await _inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);
            return new TransactionalReservationResult(result.Outcome, result.Record);
        }

        public ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
            => _inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken);

        public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
            => _inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);

        public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _outside);
            return _inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);
        }

        public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
            => _inner.TryReleaseAsync(id, fencingToken, cancellationToken);

        public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
            => _inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken);

        public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
            => _inner.TryRenewLeaseAsync(id, fencingToken, lease, cancellationToken);

        public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
            => _inner.GetAsync(id, cancellationToken);
    }
}
