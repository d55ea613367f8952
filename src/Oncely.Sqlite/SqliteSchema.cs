using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite;

/// <summary>
/// The store's schema as an ordered list of migrations. The version applied to a database is kept per records table
/// in <c>oncely_schema_version</c>; a migration, once released, never changes: later changes are new entries.
/// </summary>
internal static class SqliteSchema
{
    /// <summary>The table that records which schema version each records table is at.</summary>
    public const string VersionTable = "oncely_schema_version";

    /// <summary>The migrations, in order; the version of entry <c>i</c> is <c>i + 1</c>.</summary>
    public static IReadOnlyList<string> Migrations(string table, string auditTable) =>
    [
        // Version 1: records, the fencing-token counter and the audit trail.
        $"""
        CREATE TABLE IF NOT EXISTS "{table}" (
            id               INTEGER PRIMARY KEY,
            tenant           TEXT    NOT NULL,
            operation        TEXT    NOT NULL,
            idem_key         TEXT    NOT NULL,
            fingerprint      TEXT    NOT NULL,
            state            INTEGER NOT NULL,
            fencing_token    INTEGER NOT NULL,
            attempts         INTEGER NOT NULL,
            lease_expires_at INTEGER NOT NULL,
            expires_at       INTEGER NOT NULL,
            recovery_point   TEXT    NULL,
            status_code      INTEGER NULL,
            headers          TEXT    NULL,
            body             BLOB    NULL,
            body_omitted     INTEGER NOT NULL DEFAULT 0,
            created_at       INTEGER NOT NULL,
            UNIQUE (tenant, operation, idem_key)
        );
        CREATE INDEX IF NOT EXISTS "{table}_expires_at" ON "{table}" (expires_at);

        CREATE TABLE IF NOT EXISTS "{table}_fence" (
            id    INTEGER PRIMARY KEY CHECK (id = 1),
            value INTEGER NOT NULL
        );
        INSERT OR IGNORE INTO "{table}_fence" (id, value) VALUES (1, 0);

        CREATE TRIGGER IF NOT EXISTS "{table}_fence_on_insert" AFTER INSERT ON "{table}"
        BEGIN
            UPDATE "{table}_fence" SET value = NEW.fencing_token WHERE id = 1 AND value < NEW.fencing_token;
        END;
        CREATE TRIGGER IF NOT EXISTS "{table}_fence_on_update" AFTER UPDATE OF fencing_token ON "{table}"
        BEGIN
            UPDATE "{table}_fence" SET value = NEW.fencing_token WHERE id = 1 AND value < NEW.fencing_token;
        END;

        CREATE TABLE IF NOT EXISTS "{auditTable}" (
            id                    INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant                TEXT    NOT NULL,
            operation             TEXT    NOT NULL,
            idem_key              TEXT    NOT NULL,
            stored_fingerprint    TEXT    NOT NULL,
            attempted_fingerprint TEXT    NOT NULL,
            payload               TEXT    NOT NULL,
            occurred_at           INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "{auditTable}_occurred_at" ON "{auditTable}" (occurred_at);
        """,

        // Version 2: the operator API's "stuck keys" listing (InProgress records, newest first) reads a small partial
        // index instead of the whole table.
        $"""
        CREATE INDEX IF NOT EXISTS "{table}_in_progress" ON "{table}" (created_at) WHERE state = 0;
        """,
    ];

    /// <summary>The schema version this build of the store writes and expects.</summary>
    public static int CurrentVersion => Migrations("t", "a").Count;

    /// <summary>
    /// Switches the file to WAL and brings <paramref name="table"/>'s schema to <see cref="CurrentVersion"/>, in one
    /// <c>BEGIN IMMEDIATE</c> transaction: one migrator at a time across processes; a second one then sees the version
    /// written and applies nothing.
    /// </summary>
    /// <param name="connection">An open connection to the store's database.</param>
    /// <param name="table">The records table (the component whose version is kept).</param>
    /// <param name="auditTable">The key-reuse audit table.</param>
    /// <param name="dataSource">The database, for messages.</param>
    /// <param name="now">The store clock, in Unix milliseconds (recorded as <c>applied_at</c>).</param>
    /// <param name="cancellationToken">Cancels the migration (nothing is committed).</param>
    /// <returns><see langword="true"/> once the schema is current.</returns>
    public static async ValueTask<bool> MigrateAsync(SqliteConnection connection, string table, string auditTable, string dataSource, long now, CancellationToken cancellationToken)
    {
        // WAL lets readers proceed while one writer commits, and survives in the file once set.
        using (var mode = SqliteDatabase.CreateCommand(connection, "PRAGMA journal_mode;"))
        {
            var current = Convert.ToString(await mode.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            if (!string.Equals(current, "wal", StringComparison.OrdinalIgnoreCase) && !string.Equals(current, "memory", StringComparison.OrdinalIgnoreCase))
            {
                using var setWal = SqliteDatabase.CreateCommand(connection, "PRAGMA journal_mode = WAL;");
                await setWal.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        using var transaction = connection.BeginTransaction(deferred: false);
        using (var versionTable = SqliteDatabase.CreateCommand(connection, $"""CREATE TABLE IF NOT EXISTS "{VersionTable}" (component TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, applied_at INTEGER NOT NULL);""", transaction))
        {
            await versionTable.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        long applied;
        using (var read = SqliteDatabase.CreateCommand(connection, $"""SELECT version FROM "{VersionTable}" WHERE component = @component;""", transaction))
        {
            read.Parameters.AddWithValue("@component", table);
            applied = await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long version ? version : 0;
        }

        var migrations = Migrations(table, auditTable);
        if (applied > migrations.Count)
        {
            throw new IdempotencyStoreUnavailableException(
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"The SQLite idempotency table '{table}' in '{dataSource}' is at schema version {applied}, newer than this Oncely.Sqlite supports ({migrations.Count}). Upgrade the Oncely.Sqlite package."));
        }

        for (var i = (int)applied; i < migrations.Count; i++)
        {
            using var migrate = SqliteDatabase.CreateCommand(connection, migrations[i], transaction);
            await migrate.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (applied < migrations.Count)
        {
            using var record = SqliteDatabase.CreateCommand(
                connection,
                $"""
                INSERT INTO "{VersionTable}" (component, version, applied_at) VALUES (@component, @version, @applied_at)
                ON CONFLICT (component) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at;
                """,
                transaction);
            record.Parameters.AddWithValue("@component", table);
            record.Parameters.AddWithValue("@version", migrations.Count);
            record.Parameters.AddWithValue("@applied_at", now);
            await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        transaction.Commit();
        return true;
    }
}
