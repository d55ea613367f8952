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
}
