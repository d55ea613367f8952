using Microsoft.EntityFrameworkCore;
using Oncely.EntityFrameworkCore;

namespace Oncely.EntityFrameworkCore.Tests;

/// <summary>An application's own context: a business entity plus Oncely's records mapped onto the store's table.</summary>
public abstract class ShopContext(DbContextOptions options) : DbContext(options)
{
    public DbSet<Payment> Payments => Set<Payment>();

    protected abstract OncelyRecordsLayout Layout { get; }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<Payment>(e =>
        {
            e.ToTable("ef_payments");
            e.HasKey(p => p.Id);
            e.Property(p => p.IdempotencyKey).IsRequired();
        });
        modelBuilder.ApplyOncelyRecords(Layout);
    }
}

public sealed class SqliteShopContext(DbContextOptions<SqliteShopContext> options) : ShopContext(options)
{
    protected override OncelyRecordsLayout Layout => OncelyRecordsLayout.Sqlite;
}

public sealed class PostgresShopContext(DbContextOptions<PostgresShopContext> options) : ShopContext(options)
{
    protected override OncelyRecordsLayout Layout => OncelyRecordsLayout.PostgreSql;
}

/// <summary>A context that forgot <c>ApplyOncelyRecords</c>.</summary>
public sealed class UnmappedContext(DbContextOptions<UnmappedContext> options) : DbContext(options)
{
    public DbSet<Payment> Payments => Set<Payment>();
}

public sealed class Payment
{
    public long Id { get; set; }

    public string IdempotencyKey { get; set; } = string.Empty;

    public long Amount { get; set; }
}
