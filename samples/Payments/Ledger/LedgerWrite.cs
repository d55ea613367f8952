using System.Data.Common;

namespace Payments.Ledger;

/// <summary>
/// One money movement's database transaction. Each method writes the business rows and their balanced ledger entries;
/// nothing is visible until <see cref="CommitAsync"/>. Disposing without committing rolls everything back.
/// </summary>
public sealed partial class LedgerWrite : IAsyncDisposable
{
    private readonly DbConnection _connection;
    private readonly LedgerDialect _dialect;
    private readonly TimeProvider _clock;
    private bool _committed;

    internal LedgerWrite(DbConnection connection, DbTransaction transaction, LedgerDialect dialect, TimeProvider clock)
    {
        _connection = connection;
        Transaction = transaction;
        _dialect = dialect;
        _clock = clock;
    }

    /// <summary>The open transaction (a <c>SqliteTransaction</c> or an <c>NpgsqlTransaction</c>).</summary>
    public DbTransaction Transaction { get; }

    public static string ExternalAccountId(string currency) => $"external_{currency}";

    public async Task<Account> CreateAccountAsync(string tenant, string name, string currency, CancellationToken cancellationToken)
    {
        var id = NewId("acc");
        await ExecuteAsync(
            "INSERT INTO accounts (id, tenant, name, currency, kind, balance, created_at) VALUES (@id, @tenant, @name, @currency, 'customer', 0, @now)",
            cancellationToken,
            ("@id", id),
            ("@tenant", tenant),
            ("@name", name),
            ("@currency", currency),
            ("@now", Now()));
        return new Account(id, name, currency, 0);
    }

    /// <summary>
    /// Credits <paramref name="amount"/> to the account, debiting the currency's external funding account (the money's
    /// source outside the ledger, the only account allowed below zero).
    /// </summary>
    public async Task<LedgerResult<Deposit>> DepositAsync(string tenant, string accountId, long amount, CancellationToken cancellationToken)
    {
        var accounts = await LockAccountsAsync(tenant, [accountId], cancellationToken);
        if (!accounts.TryGetValue(accountId, out var currency))
        {
            return LedgerResult<Deposit>.Refused(LedgerRefusal.AccountNotFound, $"There is no account '{accountId}'.");
        }

        var external = ExternalAccountId(currency);
        var now = Now();
        await ExecuteAsync(
            "INSERT INTO accounts (id, tenant, name, currency, kind, balance, created_at) VALUES (@id, '_system', @name, @currency, 'external', 0, @now) ON CONFLICT (id) DO NOTHING",
            cancellationToken,
            ("@id", external),
            ("@name", $"External funding {currency}"),
            ("@currency", currency),
            ("@now", now));

        var id = NewId("dep");
        await ExecuteAsync(
            "INSERT INTO deposits (id, tenant, account_id, amount, currency, created_at) VALUES (@id, @tenant, @account, @amount, @currency, @now)",
            cancellationToken,
            ("@id", id),
            ("@tenant", tenant),
            ("@account", accountId),
            ("@amount", amount),
            ("@currency", currency),
            ("@now", now));
        await MoveAsync(id, external, accountId, amount, currency, now, cancellationToken);
        var balance = await BalanceAsync(accountId, cancellationToken);
        return new(new Deposit(id, accountId, amount, currency, balance, DateTimeOffset.FromUnixTimeMilliseconds(now)), LedgerRefusal.None);
    }

    /// <summary>Moves <paramref name="amount"/> between two of the tenant's accounts of the same currency.</summary>
    public async Task<LedgerResult<Payment>> TransferAsync(string tenant, string from, string to, long amount, string currency, string? reference, CancellationToken cancellationToken)
    {
        var accounts = await LockAccountsAsync(tenant, [from, to], cancellationToken);
        foreach (var id in (string[])[from, to])
        {
            if (!accounts.ContainsKey(id))
            {
                return LedgerResult<Payment>.Refused(LedgerRefusal.AccountNotFound, $"There is no account '{id}'.");
            }
        }

        if (accounts[from] != currency || accounts[to] != currency)
        {
            return LedgerResult<Payment>.Refused(
                LedgerRefusal.CurrencyMismatch,
                $"The payment is in {currency}, but account '{from}' holds {accounts[from]} and account '{to}' holds {accounts[to]}. Both accounts must hold the payment's currency.");
        }

        var now = Now();
        var paymentId = NewId("pay");
        if (!await MoveAsync(paymentId, from, to, amount, currency, now, cancellationToken))
        {
            return LedgerResult<Payment>.Refused(LedgerRefusal.InsufficientFunds, $"Account '{from}' does not hold {amount} {currency}.");
        }

        await ExecuteAsync(
            "INSERT INTO payments (id, tenant, from_account, to_account, amount, currency, status, reference, created_at) VALUES (@id, @tenant, @from, @to, @amount, @currency, 'succeeded', @reference, @now)",
            cancellationToken,
            ("@id", paymentId),
            ("@tenant", tenant),
            ("@from", from),
            ("@to", to),
            ("@amount", amount),
            ("@currency", currency),
            ("@reference", reference),
            ("@now", now));
        return new(new Payment(paymentId, from, to, amount, currency, "succeeded", reference, DateTimeOffset.FromUnixTimeMilliseconds(now)), LedgerRefusal.None);
    }

    public async Task CommitAsync(CancellationToken cancellationToken)
    {
        await Transaction.CommitAsync(cancellationToken);
        _committed = true;
    }

    /// <summary>
    /// Commits through <paramref name="commit"/>, which must commit <see cref="Transaction"/> (Oncely's
    /// <c>execution.CompleteAndCommitAsync</c>: the stored answer and <c>COMMIT</c> in one round trip).
    /// </summary>
    public async Task CommitWithAsync(Func<DbTransaction, CancellationToken, ValueTask> commit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(commit);
        await commit(Transaction, cancellationToken);
        _committed = true;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_committed)
            {
                await Transaction.RollbackAsync(CancellationToken.None);
            }
        }
        catch (InvalidOperationException)
        {
            // Already completed by the driver (for example after a failed commit).
        }
        finally
        {
            await Transaction.DisposeAsync();
            await _connection.DisposeAsync();
        }
    }

    private static string NewId(string prefix) => $"{prefix}_{Guid.CreateVersion7():N}";

    // Reads (and on PostgreSQL locks, in id order) the tenant's customer accounts among ids: id -> currency.
    private async Task<Dictionary<string, string>> LockAccountsAsync(string tenant, string[] ids, CancellationToken cancellationToken)
    {
        await using var command = Sql.Command(
            _connection,
            Transaction,
            "SELECT id, currency FROM accounts WHERE tenant = @tenant AND kind = 'customer' AND id IN (@a, @b) ORDER BY id" + _dialect.LockRows,
            ("@tenant", tenant),
            ("@a", ids[0]),
            ("@b", ids[^1]));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var found = new Dictionary<string, string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            found[reader.GetString(0)] = reader.GetString(1);
        }

        return found;
    }

    // The double entry: the debit only happens while the source (unless external) keeps a non-negative balance,
    // checked by the same UPDATE that changes it; the CHECK constraint backs it up. Both entries sum to zero.
    private async Task<bool> MoveAsync(string transactionId, string debit, string credit, long amount, string currency, long now, CancellationToken cancellationToken)
    {
        var debited = await ExecuteAsync(
            "UPDATE accounts SET balance = balance - @amount WHERE id = @id AND (kind = 'external' OR balance >= @amount)",
            cancellationToken,
            ("@amount", amount),
            ("@id", debit));
        if (debited != 1)
        {
            return false;
        }

        await ExecuteAsync("UPDATE accounts SET balance = balance + @amount WHERE id = @id", cancellationToken, ("@amount", amount), ("@id", credit));
        await ExecuteAsync(
            "INSERT INTO ledger_entries (transaction_id, account_id, currency, amount, created_at) VALUES (@tx, @debit, @currency, @minus, @now), (@tx, @credit, @currency, @plus, @now)",
            cancellationToken,
            ("@tx", transactionId),
            ("@debit", debit),
            ("@credit", credit),
            ("@currency", currency),
            ("@minus", -amount),
            ("@plus", amount),
            ("@now", now));
        return true;
    }

    private async Task<long> BalanceAsync(string accountId, CancellationToken cancellationToken)
    {
        await using var command = Sql.Command(_connection, Transaction, "SELECT balance FROM accounts WHERE id = @id", ("@id", accountId));
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    private async Task<int> ExecuteAsync(string text, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = Sql.Command(_connection, Transaction, text, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private long Now() => _clock.GetUtcNow().ToUnixTimeMilliseconds();
}
