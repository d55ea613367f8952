using System.Data.Common;
using System.Globalization;

namespace Payments.Ledger;

/// <summary>
/// The ledger's data access. Reads go straight to the database; every money movement goes through a
/// <see cref="LedgerWrite"/>: one database transaction that the caller commits (after, where the store supports it,
/// writing the idempotency record's completion into the same transaction).
/// </summary>
public sealed class LedgerRepository(LedgerDialect dialect, TimeProvider clock)
{
    private readonly SemaphoreSlim _schemaGate = new(1, 1);
    private volatile bool _schemaReady;

    public LedgerDialect Dialect => dialect;

    public async Task EnsureSchemaAsync(CancellationToken cancellationToken = default)
    {
        if (_schemaReady)
        {
            return;
        }

        await _schemaGate.WaitAsync(cancellationToken);
        try
        {
            if (_schemaReady)
            {
                return;
            }

            await using var connection = await dialect.OpenAsync(cancellationToken);
            foreach (var statement in dialect.Schema)
            {
                await using var command = Sql.Command(connection, null, statement);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            _schemaReady = true;
        }
        finally
        {
            _schemaGate.Release();
        }
    }

    /// <summary>Opens a connection and begins the one transaction a money movement runs in.</summary>
    public async Task<LedgerWrite> BeginAsync(CancellationToken cancellationToken)
    {
        await EnsureSchemaAsync(cancellationToken);
        var connection = await dialect.OpenAsync(cancellationToken);
        try
        {
            var transaction = await dialect.BeginWriteAsync(connection, cancellationToken);
            return new LedgerWrite(connection, transaction, dialect, clock);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async Task<Account?> GetAccountAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        await EnsureSchemaAsync(cancellationToken);
        await using var connection = await dialect.OpenAsync(cancellationToken);
        await using var command = Sql.Command(
            connection,
            null,
            "SELECT id, name, currency, balance FROM accounts WHERE id = @id AND tenant = @tenant AND kind = 'customer'",
            ("@id", id),
            ("@tenant", tenant));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new Account(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3))
            : null;
    }

    public async Task<Payment?> GetPaymentAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        await EnsureSchemaAsync(cancellationToken);
        await using var connection = await dialect.OpenAsync(cancellationToken);
        await using var command = Sql.Command(
            connection,
            null,
            "SELECT id, from_account, to_account, amount, currency, status, reference, created_at FROM payments WHERE id = @id AND tenant = @tenant",
            ("@id", id),
            ("@tenant", tenant));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new Payment(
            reader.GetString(0),
            reader.GetString(1),
            reader.GetString(2),
            reader.GetInt64(3),
            reader.GetString(4),
            reader.GetString(5),
            reader.IsDBNull(6) ? null : reader.GetString(6),
            DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(7)));
    }

    /// <summary>Measures the double-entry invariants over the whole database (every tenant).</summary>
    public async Task<LedgerCheck> CheckAsync(CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken);
        await using var connection = await dialect.OpenAsync(cancellationToken);
        var sums = new SortedDictionary<string, long>(StringComparer.Ordinal);
        await using (var command = Sql.Command(connection, null, "SELECT currency, SUM(amount) FROM ledger_entries GROUP BY currency"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                sums[reader.GetString(0)] = Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture);
            }
        }

        var negative = await Sql.CountAsync(connection, "SELECT COUNT(*) FROM accounts WHERE kind = 'customer' AND balance < 0", cancellationToken);
        var mismatched = await Sql.CountAsync(
            connection,
            "SELECT COUNT(*) FROM accounts a WHERE a.balance <> COALESCE((SELECT SUM(e.amount) FROM ledger_entries e WHERE e.account_id = a.id), 0)",
            cancellationToken);
        var unbalanced = await Sql.CountAsync(
            connection,
            "SELECT COUNT(*) FROM (SELECT transaction_id FROM ledger_entries GROUP BY transaction_id HAVING SUM(amount) <> 0) t",
            cancellationToken);
        return new LedgerCheck(sums, negative, mismatched, unbalanced);
    }

    /// <summary>Payments per client reference, for every tenant (the demo's measurements).</summary>
    public async Task<IReadOnlyList<ReferenceTotal>> PaymentsByReferenceAsync(CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken);
        await using var connection = await dialect.OpenAsync(cancellationToken);
        await using var command = Sql.Command(
            connection,
            null,
            "SELECT reference, COUNT(*), SUM(amount) FROM payments WHERE reference IS NOT NULL GROUP BY reference ORDER BY reference");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var totals = new List<ReferenceTotal>();
        while (await reader.ReadAsync(cancellationToken))
        {
            totals.Add(new ReferenceTotal(
                reader.GetString(0),
                Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture),
                Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture)));
        }

        return totals;
    }

    /// <summary>How many customer accounts <paramref name="tenant"/> has (the effects counter of the Development-only <c>GET /dev/effects/accounts</c>).</summary>
    public async Task<long> CountAccountsAsync(string tenant, CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken);
        await using var connection = await dialect.OpenAsync(cancellationToken);
        await using var command = Sql.Command(connection, null, "SELECT COUNT(*) FROM accounts WHERE tenant = @tenant AND kind = 'customer'", ("@tenant", tenant));
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    public async Task<long> CountPaymentsAsync(CancellationToken cancellationToken = default)
    {
        await EnsureSchemaAsync(cancellationToken);
        await using var connection = await dialect.OpenAsync(cancellationToken);
        return await Sql.CountAsync(connection, "SELECT COUNT(*) FROM payments", cancellationToken);
    }
}

internal static class Sql
{
    public static DbCommand Command(DbConnection connection, DbTransaction? transaction, string text, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = text;
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }

        return command;
    }

    public static async Task<long> CountAsync(DbConnection connection, string text, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, null, text);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }
}
