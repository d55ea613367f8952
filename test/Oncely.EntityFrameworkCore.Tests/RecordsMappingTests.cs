using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;

namespace Oncely.EntityFrameworkCore.Tests;

/// <summary>How <c>ApplyOncelyRecords</c> maps the attempts count in each layout (the model only: no database is opened).</summary>
public sealed class RecordsMappingTests
{
    public static TheoryData<string> Layouts => ["Sqlite", "PostgreSql"];

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Attempts_MappedToTheStoresColumn_IntegerNotNullDefaultOne_NeverGeneratedByEfCore(string layout)
    {
        using DbContext context = layout == "Sqlite"
            ? new SqliteShopContext(new DbContextOptionsBuilder<SqliteShopContext>().UseSqlite("Data Source=:memory:").Options)
            : new PostgresShopContext(new DbContextOptionsBuilder<PostgresShopContext>().UseNpgsql("Host=127.0.0.1;Database=unused").Options);

        var entity = context.GetService<IDesignTimeModel>().Model.FindEntityType(typeof(IdempotencyRecordEntity))!;
        var attempts = entity.FindProperty(nameof(IdempotencyRecordEntity.Attempts))!;
        var table = StoreObjectIdentifier.Table(entity.GetTableName()!, entity.GetSchema());

        Assert.Equal("attempts", attempts.GetColumnName(table));
        Assert.Equal(layout == "Sqlite" ? "INTEGER" : "integer", attempts.GetColumnType());
        Assert.False(attempts.IsNullable);
        Assert.Equal(1, attempts.GetDefaultValue());
        Assert.Equal(ValueGenerated.Never, attempts.ValueGenerated);
        Assert.True(entity.IsTableExcludedFromMigrations());
        Assert.Equal(1, new IdempotencyRecordEntity().Attempts);
    }
}
