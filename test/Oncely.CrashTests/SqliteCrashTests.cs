using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Oncely.CrashTests;

/// <summary>Crash tests on a real SQLite file shared by the app's two lives.</summary>
public sealed class SqliteCrashTests : CrashSpecification, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "oncely-crash-tests", Guid.NewGuid().ToString("N"));

    public SqliteCrashTests() => Directory.CreateDirectory(_directory);

    protected override string Store => "sqlite";

    protected override Task<string> NewDatabaseAsync()
        => Task.FromResult(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_directory, "app.db") }.ToString());

    protected override DbConnection CreateConnection(string connectionString) => new SqliteConnection(connectionString);

    protected override string RecordCountSql => "SELECT COUNT(*) FROM oncely_records WHERE idem_key = @k";

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
