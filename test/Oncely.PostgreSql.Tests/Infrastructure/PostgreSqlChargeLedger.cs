using Npgsql;
using Oncely.Storage.Specification;

namespace Oncely.PostgreSql.Tests.Infrastructure;

/// <summary>
/// Charges as rows of the <c>charges</c> table in the store's own database, so the database itself says how many times
/// each operation ran. Each app instance writes through a data source (pool) of its own; a test reads through another.
/// </summary>
public sealed class PostgreSqlChargeLedger(NpgsqlDataSource dataSource) : IChargeLedger
{
    /// <summary>Creates the effect table (once per database).</summary>
    public const string CreateTableSql = """
        CREATE TABLE IF NOT EXISTS charges (
            id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key        text        NOT NULL,
            amount     bigint      NOT NULL,
            instance   text        NOT NULL,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """;

    /// <summary>Creates the <c>charges</c> table in <paramref name="dataSource"/>'s database if it is not there.</summary>
    public static async Task CreateTableAsync(NpgsqlDataSource dataSource)
    {
        await using var create = dataSource.CreateCommand(CreateTableSql);
        await create.ExecuteNonQueryAsync();
    }

    public async ValueTask<long> ChargeAsync(string key, long amount, string instance)
    {
        await using var insert = dataSource.CreateCommand("INSERT INTO charges (key, amount, instance) VALUES ($1, $2, $3) RETURNING id");
        insert.Parameters.Add(new NpgsqlParameter { Value = key });
        insert.Parameters.Add(new NpgsqlParameter { Value = amount });
        insert.Parameters.Add(new NpgsqlParameter { Value = instance });
        return (long)(await insert.ExecuteScalarAsync())!;
    }

    public async ValueTask<IReadOnlyDictionary<string, long>> ChargesPerKeyAsync()
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var command = dataSource.CreateCommand("SELECT key, count(*) FROM charges GROUP BY key");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            counts[reader.GetString(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    public async ValueTask<long?> ChargeIdAsync(string key)
    {
        await using var command = dataSource.CreateCommand("SELECT min(id) FROM charges WHERE key = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = key });
        return await command.ExecuteScalarAsync() is long id ? id : null;
    }
}
