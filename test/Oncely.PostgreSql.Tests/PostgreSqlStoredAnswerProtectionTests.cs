using System.Data.Common;
using System.Globalization;
using System.Text;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Storage.Specification;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Stored answers encrypted at rest on a real PostgreSQL. "At rest" is every column of every row of every table (every schema) in the
/// test class's database (records, audit, business rows), read with the driver's own types (<c>bytea</c> as bytes).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlStoredAnswerProtectionTests(PostgresFixture fixture) : TransactionalStoredAnswerProtectionSpecification, IAsyncLifetime
{
    private static int s_tables;

    private readonly string _table = $"protected_{Interlocked.Increment(ref s_tables)}";
    private readonly List<PostgreSqlIdempotencyStore> _stores = [];
    private NpgsqlDataSource _dataSource = null!;

    public async Task InitializeAsync()
    {
        var database = await fixture.DatabaseForAsync(GetType());
        _dataSource = fixture.Server.CreateDataSource(database);
    }

    public async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        await _dataSource.DisposeAsync();
    }

    protected override async ValueTask<IIdempotencyStore> OpenStoreAsync()
    {
        var store = StoreTestBase.CreateStore(_dataSource, o => o.TableName = _table);
        _stores.Add(store);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override async Task<IReadOnlyList<byte[]>> ReadAtRestAsync()
    {
        var held = new List<byte[]>();
        await using var connection = await _dataSource.OpenConnectionAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        foreach (var table in tables)
        {
            await using var select = new NpgsqlCommand($"SELECT * FROM {table}", connection);
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                for (var i = 0; i < reader.FieldCount; i++)
                {
                    held.Add(reader.GetValue(i) switch
                    {
                        byte[] bytes => bytes,
                        string text => Encoding.UTF8.GetBytes(text),
                        var other => Encoding.UTF8.GetBytes(Convert.ToString(other, CultureInfo.InvariantCulture) ?? string.Empty),
                    });
                }
            }
        }

        return held;
    }

    protected override async Task CompleteInTransactionAsync(IdempotencyExecution execution, IdempotentResponse answer)
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using DbTransaction transaction = await connection.BeginTransactionAsync();
        await execution.ReserveInTransactionAsync(transaction);
        await using (var command = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS protected_payments (idem_key text NOT NULL); INSERT INTO protected_payments (idem_key) VALUES (@key)", connection, (NpgsqlTransaction)transaction))
        {
            command.Parameters.AddWithValue("key", execution.Id.Key);
            await command.ExecuteNonQueryAsync();
        }

        await execution.CompleteInTransactionAsync(transaction, answer);
        await transaction.CommitAsync();
    }
}
