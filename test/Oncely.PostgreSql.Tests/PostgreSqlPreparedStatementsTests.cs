using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Issue 20, item 2: the store prepares the statements of a request's path on each physical connection, also on the
/// application's own data source (where <c>Max Auto Prepare</c> is 0 unless the application set it), and they survive
/// the pool's reset when a connection is returned and reused; <see cref="PostgreSqlIdempotencyStoreOptions.PrepareStatements"/>
/// = false leaves the server with none (for poolers without prepared statements).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlPreparedStatementsTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    [Fact]
    public async Task RequestPath_OnTheApplicationsDataSource_IsPreparedOnceAndStaysPreparedAcrossPooledReuse()
    {
        // One physical connection: every call below, and the check, run on the same server session.
        await using var dataSource = Server.CreateDataSource(Database, maxPoolSize: 1);
        await using var store = CreateStore(dataSource);
        for (var i = 0; i < 5; i++)
        {
            var id = NewId();
            var reserved = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
            Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
            Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 1 }), Hour, default));
            Assert.Equal(IdempotencyRecordState.Completed, (await store.GetAsync(id, default))!.State);

            // One-commit: the reservation and the completion inside the application's transaction.
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            var inTransaction = NewId();
            var mine = await store.TryReserveAsync(transaction, inTransaction, Fingerprint('a'), Minute, Hour, TimeSpan.FromSeconds(5), default);
            Assert.Equal(ReservationOutcome.Acquired, mine.Outcome);
            Assert.True(await store.TryCompleteAsync(transaction, inTransaction, mine.Record!.FencingToken, new IdempotentResponse(201, [], new byte[] { 1 }), Hour, default));
            await transaction.CommitAsync();
        }

        var prepared = await PreparedAsync(dataSource);
        // Npgsql prepares each statement of a command on its own: the reservation (one text for both paths) and the
        // two lock_timeout statements around it in the transaction (keep-and-set before, put back after).
        Assert.Equal(1, prepared.Count(s => s.Contains("clock AS MATERIALIZED", StringComparison.Ordinal)));
        Assert.Equal(2, prepared.Count(s => s.Contains("set_config", StringComparison.Ordinal)));
        Assert.Equal(1, prepared.Count(s => s.StartsWith("SELECT fingerprint, state", StringComparison.Ordinal)));
        Assert.Equal(1, prepared.Count(s => s.TrimStart().StartsWith("UPDATE", StringComparison.Ordinal) && s.Contains("body_omitted", StringComparison.Ordinal)));
    }

    // The one-commit reservation of a new key is a plain insert: the full reservation statement is not even prepared
    // on the session until a key that a row already holds sends the store on to it.
    [Fact]
    public async Task OneCommitReservation_NewKeysArePlainInserts_TheFullStatementOnlyForAHeldKey()
    {
        await using var dataSource = Server.CreateDataSource(Database, maxPoolSize: 1);
        await using var store = CreateStore(dataSource);
        Assert.Null(await store.GetAsync(NewId(), default)); // the schema, created while the pool's one connection is free
        var held = NewId();
        for (var i = 0; i < 3; i++)
        {
            var id = i == 0 ? held : NewId();
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            var mine = await store.TryReserveAsync(transaction, id, Fingerprint('a'), Minute, Hour, TimeSpan.FromSeconds(5), default);
            Assert.Equal(ReservationOutcome.Acquired, mine.Outcome);
            Assert.True(await store.TryCompleteAsync(transaction, id, mine.Record!.FencingToken, new IdempotentResponse(201, [], new byte[] { 1 }), Hour, default));
            await transaction.CommitAsync();
        }

        var prepared = await PreparedAsync(dataSource);
        Assert.Equal(1, prepared.Count(IsPlainInsert));
        Assert.Equal(0, prepared.Count(IsFullReservation));

        await using (var connection = await dataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            // The completed record holds the key: the plain insert answers no row, and the full statement replays it.
            var again = await store.TryReserveAsync(transaction, held, Fingerprint('a'), Minute, Hour, TimeSpan.FromSeconds(5), default);
            Assert.Equal(ReservationOutcome.Completed, again.Outcome);
            Assert.Equal(new byte[] { 1 }, again.Record!.Response!.Body.ToArray());
        }

        prepared = await PreparedAsync(dataSource);
        Assert.Equal(1, prepared.Count(IsPlainInsert));
        Assert.Equal(1, prepared.Count(IsFullReservation));

        static bool IsPlainInsert(string statement) => statement.TrimStart().StartsWith("INSERT INTO", StringComparison.Ordinal) && statement.Contains("ON CONFLICT", StringComparison.Ordinal);
        static bool IsFullReservation(string statement) => statement.Contains("clock AS MATERIALIZED", StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrepareStatementsOff_LeavesNothingPrepared()
    {
        await using var dataSource = Server.CreateDataSource(Database, maxPoolSize: 1);
        await using var store = CreateStore(dataSource, o => o.PrepareStatements = false);
        for (var i = 0; i < 5; i++)
        {
            var id = NewId();
            var reserved = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
            Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 1 }), Hour, default));
        }

        Assert.Empty(await PreparedAsync(dataSource));
    }

    // The session's prepared statements, read on the pool's one connection (the statement text as prepared).
    private static async Task<List<string>> PreparedAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("SELECT statement FROM pg_prepared_statements");
        await using var reader = await command.ExecuteReaderAsync();
        var statements = new List<string>();
        while (await reader.ReadAsync())
        {
            statements.Add(reader.GetString(0));
        }

        return statements;
    }
}
