using System.Data;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Payments.Ledger;

/// <summary>
/// Everything that differs between the ledger's databases, and nothing else: how to connect, the DDL, and how a write
/// transaction takes its locks. The repository's queries are plain SQL both engines run as written.
/// </summary>
public abstract class LedgerDialect : IAsyncDisposable
{
    public abstract string Name { get; }

    /// <summary>Statements that create the ledger's tables when they are missing (idempotent).</summary>
    public abstract IReadOnlyList<string> Schema { get; }

    /// <summary>Appended to the SELECT that reads the accounts a money movement touches.</summary>
    public abstract string LockRows { get; }

    public abstract ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>Begins the one transaction a money movement runs in.</summary>
    public abstract ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken);

    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    // Shared column types: identifiers are text, money is a 64-bit integer of minor units, time is Unix milliseconds.
    protected static IReadOnlyList<string> Tables(string identityColumn) =>
    [
        """
        CREATE TABLE IF NOT EXISTS accounts (
            id         TEXT   NOT NULL PRIMARY KEY,
            tenant     TEXT   NOT NULL,
            name       TEXT   NOT NULL,
            currency   TEXT   NOT NULL,
            kind       TEXT   NOT NULL CHECK (kind IN ('customer', 'external')),
            balance    BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            CONSTRAINT accounts_balance_not_negative CHECK (kind = 'external' OR balance >= 0)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS payments (
            id           TEXT   NOT NULL PRIMARY KEY,
            tenant       TEXT   NOT NULL,
            from_account TEXT   NOT NULL REFERENCES accounts (id),
            to_account   TEXT   NOT NULL REFERENCES accounts (id),
            amount       BIGINT NOT NULL CHECK (amount > 0),
            currency     TEXT   NOT NULL,
            status       TEXT   NOT NULL,
            reference    TEXT   NULL,
            created_at   BIGINT NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS deposits (
            id         TEXT   NOT NULL PRIMARY KEY,
            tenant     TEXT   NOT NULL,
            account_id TEXT   NOT NULL REFERENCES accounts (id),
            amount     BIGINT NOT NULL CHECK (amount > 0),
            currency   TEXT   NOT NULL,
            created_at BIGINT NOT NULL
        )
        """,
        $"""
        CREATE TABLE IF NOT EXISTS ledger_entries (
            id             {identityColumn},
            transaction_id TEXT   NOT NULL,
            account_id     TEXT   NOT NULL REFERENCES accounts (id),
            currency       TEXT   NOT NULL,
            amount         BIGINT NOT NULL CHECK (amount <> 0),
            created_at     BIGINT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS ledger_entries_account ON ledger_entries (account_id)",
        "CREATE INDEX IF NOT EXISTS payments_tenant_reference ON payments (tenant, reference)",
    ];
}

/// <summary>SQLite: one file, one writer at a time. A write transaction is <c>BEGIN IMMEDIATE</c>, so it holds the write lock from its first statement.</summary>
public sealed class SqliteLedgerDialect(string connectionString) : LedgerDialect
{
    public override string Name => "Sqlite";

    public override IReadOnlyList<string> Schema { get; } =
    [
        "PRAGMA journal_mode = WAL",
        .. Tables("INTEGER PRIMARY KEY AUTOINCREMENT"),
    ];

    // The IMMEDIATE transaction already serialises writers.
    public override string LockRows => string.Empty;

    public override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";
            await pragma.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public override ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken)
        => ValueTask.FromResult<DbTransaction>(((SqliteConnection)connection).BeginTransaction(deferred: false));
}

/// <summary>PostgreSQL: READ COMMITTED, with the touched accounts locked <c>FOR UPDATE</c> in id order (no deadlocks between transfers).</summary>
public sealed class PostgreSqlLedgerDialect(string connectionString) : LedgerDialect
{
    private readonly NpgsqlDataSource _dataSource = NpgsqlDataSource.Create(connectionString);

    public override string Name => "PostgreSql";

    public override IReadOnlyList<string> Schema { get; } = Tables("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY");

    public override string LockRows => " FOR UPDATE";

    public override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken)
        => await _dataSource.OpenConnectionAsync(cancellationToken);

    public override async ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken)
        => await ((NpgsqlConnection)connection).BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);

    public override async ValueTask DisposeAsync()
    {
        await _dataSource.DisposeAsync();
        await base.DisposeAsync();
    }
}
