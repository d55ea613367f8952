using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace Oncely.PostgreSql;

/// <summary>
/// The store's quoted object names and its ordered schema migrations. Names are validated by
/// <see cref="PostgreSqlIdempotencyStoreOptions"/> and always quoted, so nothing from options reaches SQL unescaped.
/// </summary>
internal sealed class PostgreSqlSchema
{
    public PostgreSqlSchema(string schema, string table)
    {
        SchemaName = schema;
        TableName = table;
        Schema = Quote(schema);
        Table = $"{Schema}.{Quote(table)}";
        Sequence = $"{Schema}.{Quote(table + "_fencing_seq")}";
        AuditTable = $"{Schema}.{Quote(table + "_key_reuse_audit")}";
        VersionTable = $"{Schema}.{Quote(table + "_schema_version")}";
        ExpiresAtIndex = Quote(table + "_expires_at_idx");
        AuditIndex = Quote(table + "_key_reuse_audit_key_idx");
        AuditRecordedAtIndex = Quote(table + "_audit_recorded_idx");
        InProgressIndex = Quote(table + "_in_progress_idx");
        ReserveFreshFunction = $"{Schema}.{Quote(table + "_reserve_fresh")}";

        // A stable 64-bit key for pg_advisory_xact_lock, the same in every process for the same schema and table.
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"oncely-schema:{schema}.{table}"));
        MigrationLockKey = BitConverter.ToInt64(hash, 0);

        Migrations =
        [
            new Migration(1, "records, fencing sequence, key-reuse audit", $"""
                CREATE SEQUENCE {Sequence} AS bigint;

                CREATE TABLE {Table} (
                    tenant            text        NOT NULL,
                    operation         text        NOT NULL,
                    idem_key          text        NOT NULL,
                    fingerprint       text        NOT NULL,
                    state             smallint    NOT NULL,
                    fencing_token     bigint      NOT NULL,
                    lease_expires_at  timestamptz NOT NULL,
                    expires_at        timestamptz NOT NULL,
                    recovery_point    text        NULL,
                    status_code       integer     NULL,
                    headers           jsonb       NULL,
                    body              bytea       NULL,
                    body_omitted      boolean     NOT NULL DEFAULT false,
                    created_at        timestamptz NOT NULL,
                    updated_at        timestamptz NOT NULL,
                    CONSTRAINT {Quote(table + "_scope_key_uq")} UNIQUE (tenant, operation, idem_key)
                );

                CREATE INDEX {ExpiresAtIndex} ON {Table} (expires_at);

                CREATE TABLE {AuditTable} (
                    id                    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    tenant                text        NOT NULL,
                    operation             text        NOT NULL,
                    idem_key              text        NOT NULL,
                    stored_fingerprint    text        NOT NULL,
                    attempted_fingerprint text        NOT NULL,
                    payload               text        NOT NULL,
                    occurred_at           timestamptz NOT NULL,
                    recorded_at           timestamptz NOT NULL DEFAULT now()
                );

                CREATE INDEX {AuditIndex} ON {AuditTable} (tenant, operation, idem_key);
                """),
            new Migration(2, "key-reuse audit retention index", $"""
                CREATE INDEX IF NOT EXISTS {AuditRecordedAtIndex} ON {AuditTable} (recorded_at);
                """),

            // The operator API's "stuck keys" listing (InProgress records, newest first) reads this small partial index
            // instead of the table. IF NOT EXISTS: an operator may build it beforehand with CREATE INDEX CONCURRENTLY.
            new Migration(3, "index of InProgress records for the operator API", $"""
                CREATE INDEX IF NOT EXISTS {InProgressIndex} ON {Table} (created_at) WHERE state = 0;
                """),

            // How many executions have held the record (1 at reservation, one more per take-over). A constant default
            // is stored in the catalogue, not written into every row (PostgreSQL 11 and later): rows already in the
            // table read as 1 at once, without a table rewrite. IF NOT EXISTS: an operator may have added it by hand.
            new Migration(4, "attempts: how many executions have held a record", $"""
                ALTER TABLE {Table} ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 1;
                """),

            // The one-commit reservation's plain insert, with its lock_timeout set for the insert only, as one function:
            // sent inside the application's batch (ReserveAndExecuteAsync), where the store's statements cannot be
            // prepared, the call is one statement that is cheap to parse, and PL/pgSQL keeps the insert's plan for the
            // session. It answers in the shape of the statements' plain insert (PostgreSqlStatements): one row when it
            // inserted, none when any row holds the key. use_column: the output columns share the table's names.
            new Migration(5, "the one-commit reservation's plain insert as a function", $"""
                CREATE OR REPLACE FUNCTION {ReserveFreshFunction}(
                    p_tenant text, p_operation text, p_key text, p_fingerprint text,
                    p_lease interval, p_expiration interval, p_lock_timeout text)
                RETURNS TABLE (mine boolean, fingerprint text, state smallint, fencing_token bigint,
                               lease_expires_at timestamptz, expires_at timestamptz, recovery_point text,
                               status_code integer, headers text, body bytea, body_omitted boolean,
                               ts timestamptz, fresh boolean, attempts integer)
                LANGUAGE plpgsql
                AS $reserve$
                #variable_conflict use_column
                DECLARE
                    lock_timeout_before text := current_setting('lock_timeout');
                BEGIN
                    PERFORM set_config('lock_timeout', p_lock_timeout, true);
                    RETURN QUERY
                        INSERT INTO {Table} AS r
                            (tenant, operation, idem_key, fingerprint, state, fencing_token, lease_expires_at, expires_at,
                             recovery_point, status_code, headers, body, body_omitted, created_at, updated_at, attempts)
                        SELECT p_tenant, p_operation, p_key, p_fingerprint, 0::smallint, nextval('{Sequence}'),
                               c.now + p_lease, c.now + p_expiration, NULL, NULL, NULL, NULL, false, c.now, c.now, 1
                        FROM (SELECT clock_timestamp() AS now) c
                        ON CONFLICT (tenant, operation, idem_key) DO NOTHING
                        RETURNING true, r.fingerprint, r.state, r.fencing_token, r.lease_expires_at, r.expires_at,
                                  r.recovery_point, NULL::integer, NULL::text, NULL::bytea, false, r.created_at, true,
                                  r.attempts;
                    PERFORM set_config('lock_timeout', lock_timeout_before, true);
                END
                $reserve$;
                """),
        ];
    }

    /// <summary>The schema name as configured (unquoted).</summary>
    public string SchemaName { get; }

    /// <summary>The table name as configured (unquoted).</summary>
    public string TableName { get; }

    /// <summary>The quoted schema.</summary>
    public string Schema { get; }

    /// <summary>The quoted, schema-qualified records table.</summary>
    public string Table { get; }

    /// <summary>The quoted, schema-qualified sequence the fencing tokens come from.</summary>
    public string Sequence { get; }

    /// <summary>The quoted, schema-qualified key-reuse audit table.</summary>
    public string AuditTable { get; }

    /// <summary>The quoted, schema-qualified table listing applied migrations.</summary>
    public string VersionTable { get; }

    /// <summary>The quoted index on <c>expires_at</c> (the sweeper's path).</summary>
    public string ExpiresAtIndex { get; }

    /// <summary>The quoted index on the audit table's key columns.</summary>
    public string AuditIndex { get; }

    /// <summary>The quoted index on the audit table's <c>recorded_at</c> (the audit retention purge's path).</summary>
    public string AuditRecordedAtIndex { get; }

    /// <summary>The quoted partial index on the <c>created_at</c> of InProgress records (the operator API's stuck-keys listing).</summary>
    public string InProgressIndex { get; }

    /// <summary>The quoted, schema-qualified function of the one-commit reservation's plain insert (schema version 5).</summary>
    public string ReserveFreshFunction { get; }

    /// <summary>The advisory lock that serialises migrations of this schema and table across processes.</summary>
    public long MigrationLockKey { get; }

    /// <summary>The migrations, in the order they apply. Never edit one that has shipped; append a new one.</summary>
    public IReadOnlyList<Migration> Migrations { get; }

    /// <summary>The version the newest migration brings the schema to.</summary>
    public int LatestVersion => Migrations[^1].Version;

    /// <summary>Quotes an identifier for PostgreSQL (doubles embedded quotes, though validation already forbids them).</summary>
    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>
    /// Brings the schema to <see cref="LatestVersion"/>: a read when it is current (no lock, no DDL, no CREATE
    /// privilege), otherwise the missing migrations in one transaction under an advisory lock, so instances starting
    /// together apply each migration once.
    /// </summary>
    /// <param name="dataSource">Where to connect.</param>
    /// <param name="commandTimeoutSeconds">Every command's timeout, in whole seconds.</param>
    /// <param name="cancellationToken">Cancels the migration (nothing is committed).</param>
    /// <returns>A task that completes once the schema is current.</returns>
    public async Task MigrateAsync(NpgsqlDataSource dataSource, int commandTimeoutSeconds, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Fast path: an up-to-date schema needs no lock and no DDL (and no CREATE privilege).
            if (await ReadVersionAsync(connection, null, commandTimeoutSeconds, cancellationToken).ConfigureAwait(false) >= LatestVersion)
            {
                return;
            }

            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                // Several instances starting together queue here; each re-reads the version after the lock, so the
                // first applies the migrations and the rest find nothing left to do.
                await ExecuteAsync(connection, transaction, commandTimeoutSeconds, "SELECT pg_advisory_xact_lock(@lock)", cancellationToken,
                    new NpgsqlParameter<long>("lock", NpgsqlDbType.Bigint) { TypedValue = MigrationLockKey }).ConfigureAwait(false);

                var schemaExists = await ScalarAsync<bool>(connection, transaction, commandTimeoutSeconds,
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = @schema)", cancellationToken,
                    new NpgsqlParameter<string>("schema", NpgsqlDbType.Text) { TypedValue = SchemaName }).ConfigureAwait(false);
                if (!schemaExists)
                {
                    await ExecuteAsync(connection, transaction, commandTimeoutSeconds, $"CREATE SCHEMA IF NOT EXISTS {Schema}", cancellationToken).ConfigureAwait(false);
                }

                await ExecuteAsync(connection, transaction, commandTimeoutSeconds, $"""
                    CREATE TABLE IF NOT EXISTS {VersionTable} (
                        version     integer     PRIMARY KEY,
                        description text        NOT NULL,
                        applied_at  timestamptz NOT NULL DEFAULT now()
                    )
                    """, cancellationToken).ConfigureAwait(false);

                var current = await ReadVersionAsync(connection, transaction, commandTimeoutSeconds, cancellationToken).ConfigureAwait(false);
                foreach (var migration in Migrations)
                {
                    if (migration.Version <= current)
                    {
                        continue;
                    }

                    await ExecuteAsync(connection, transaction, commandTimeoutSeconds, migration.Sql, cancellationToken).ConfigureAwait(false);
                    await ExecuteAsync(connection, transaction, commandTimeoutSeconds, $"INSERT INTO {VersionTable} (version, description) VALUES (@version, @description)", cancellationToken,
                        new NpgsqlParameter<int>("version", NpgsqlDbType.Integer) { TypedValue = migration.Version },
                        new NpgsqlParameter<string>("description", NpgsqlDbType.Text) { TypedValue = migration.Description }).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task<int> ReadVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, int commandTimeoutSeconds, CancellationToken cancellationToken)
    {
        var exists = await ScalarAsync<bool>(connection, transaction, commandTimeoutSeconds, "SELECT to_regclass(@name) IS NOT NULL", cancellationToken,
            new NpgsqlParameter<string>("name", NpgsqlDbType.Text) { TypedValue = VersionTable }).ConfigureAwait(false);
        if (!exists)
        {
            return 0;
        }

        return await ScalarAsync<int>(connection, transaction, commandTimeoutSeconds, $"SELECT coalesce(max(version), 0) FROM {VersionTable}", cancellationToken).ConfigureAwait(false);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, int commandTimeoutSeconds, string sql, CancellationToken cancellationToken, params NpgsqlParameter[] parameters)
    {
        using var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = commandTimeoutSeconds };
        command.Parameters.AddRange(parameters);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, NpgsqlTransaction? transaction, int commandTimeoutSeconds, string sql, CancellationToken cancellationToken, params NpgsqlParameter[] parameters)
    {
        using var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = commandTimeoutSeconds };
        command.Parameters.AddRange(parameters);
        var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        Debug.Assert(value is T, "The scalar query returns the expected type.");
        return (T)value!;
    }

    /// <summary>One schema step.</summary>
    /// <param name="Version">The version the schema has once the step is applied.</param>
    /// <param name="Description">What the step does.</param>
    /// <param name="Sql">The DDL, run in the migration transaction.</param>
    internal sealed record Migration(int Version, string Description, string Sql);
}
