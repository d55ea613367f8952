using System.Runtime.InteropServices;
using Microsoft.EntityFrameworkCore;

namespace Oncely.EntityFrameworkCore;

/// <summary>Transactional completion with EF Core: the application's own <c>SaveChangesAsync</c> stores the answer.</summary>
public static class IdempotencyExecutionDbContextExtensions
{
    // The columns a completion writes (besides updated_at, which only the PostgreSQL layout has).
    private static readonly string[] CompletionProperties =
    [
        nameof(IdempotencyRecordEntity.State), nameof(IdempotencyRecordEntity.StatusCode), nameof(IdempotencyRecordEntity.Headers),
        nameof(IdempotencyRecordEntity.Body), nameof(IdempotencyRecordEntity.BodyOmitted), nameof(IdempotencyRecordEntity.ExpiresAt),
    ];

    /// <summary>
    /// Stages the completion of <paramref name="execution"/>'s record in <paramref name="dbContext"/>: the record entity
    /// is attached (no query is sent) as InProgress with this attempt's fencing token, then set Completed with
    /// <paramref name="response"/>, and the engine is told not to write the completion again
    /// (<see cref="IdempotencyExecution.MarkCompletedInTransaction"/>). The application's next
    /// <c>SaveChangesAsync</c> writes its business entities and the completion in one transaction. If the lease was
    /// taken over meanwhile, the guarded <c>UPDATE</c> matches no row, EF Core throws
    /// <see cref="DbUpdateConcurrencyException"/> and nothing of that <c>SaveChangesAsync</c> is saved.
    /// </summary>
    /// <param name="execution">The running attempt (in ASP.NET Core: <c>HttpContext.GetIdempotencyExecution()</c>).</param>
    /// <param name="dbContext">The application's context; its model must call <see cref="OncelyModelBuilderExtensions.ApplyOncelyRecords"/> and it must use the store's database.</param>
    /// <param name="response">The answer the operation returns (build it first, then return exactly it).</param>
    /// <param name="timeProvider">
    /// The clock for the Completed record's expiry (<c>now + execution.Expiration</c>); default <see cref="TimeProvider.System"/>.
    /// Only the expiry is computed here, never a lease: see docs/transactional-completion.md.
    /// </param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes once the completion is staged; no I/O happens until <c>SaveChangesAsync</c>.</returns>
    /// <exception cref="InvalidOperationException">The context's model does not map the records, or maps them for another database provider.</exception>
    public static ValueTask StageCompletionAsync(
        this IdempotencyExecution execution,
        DbContext dbContext,
        IdempotentResponse response,
        TimeProvider? timeProvider = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(execution);
        ArgumentNullException.ThrowIfNull(dbContext);
        ArgumentNullException.ThrowIfNull(response);
        cancellationToken.ThrowIfCancellationRequested();

        var entityType = dbContext.Model.FindEntityType(typeof(IdempotencyRecordEntity))
            ?? throw new InvalidOperationException(
                $"{dbContext.GetType().Name} does not map Oncely's idempotency records: call modelBuilder.ApplyOncelyRecords(OncelyRecordsLayout.Sqlite or .PostgreSql) in OnModelCreating.");
        CheckProvider(dbContext, entityType.FindAnnotation(OncelyModelBuilderExtensions.LayoutAnnotation)?.Value as string);

        var id = execution.Id;
        var set = dbContext.Set<IdempotencyRecordEntity>();
        var entity = set.Local.FirstOrDefault(e => e.Tenant == id.Tenant && e.Operation == id.Operation && e.Key == id.Key);
        if (entity is null)
        {
            entity = new IdempotencyRecordEntity
            {
                Tenant = id.Tenant,
                Operation = id.Operation,
                Key = id.Key,
                Fingerprint = execution.Fingerprint,
                State = IdempotencyRecordState.InProgress,
                FencingToken = execution.FencingToken,
                RecoveryPoint = execution.RecoveryPoint,
            };
            set.Attach(entity);
        }

        // The guard: the UPDATE only matches the row while it is InProgress with this attempt's token, whatever an
        // earlier query may have loaded into the context.
        var entry = dbContext.Entry(entity);
        entry.Property(e => e.FencingToken).OriginalValue = execution.FencingToken;
        entry.Property(e => e.FencingToken).CurrentValue = execution.FencingToken;
        entry.Property(e => e.State).OriginalValue = IdempotencyRecordState.InProgress;

        // What the store keeps: minimised and sealed as the engine is configured (ProtectStoredAnswers), as on every other completion path.
        response = execution.ForStore(response);
        var now = (timeProvider ?? TimeProvider.System).GetUtcNow();
        entry.Property(e => e.State).CurrentValue = IdempotencyRecordState.Completed;
        entry.Property(e => e.StatusCode).CurrentValue = response.StatusCode;
        entry.Property(e => e.Headers).CurrentValue = StoredHeaders.Serialize(response.Headers);
        entry.Property(e => e.Body).CurrentValue = AsArray(response.Body);
        entry.Property(e => e.BodyOmitted).CurrentValue = response.BodyOmitted;
        entry.Property(e => e.ExpiresAt).CurrentValue = now + execution.Expiration;
        foreach (var property in CompletionProperties)
        {
            entry.Property(property).IsModified = true;
        }

        if (entityType.FindProperty(nameof(IdempotencyRecordEntity.UpdatedAt)) is not null)
        {
            entry.Property(e => e.UpdatedAt).CurrentValue = now;
            entry.Property(e => e.UpdatedAt).IsModified = true;
        }

        execution.MarkCompletedInTransaction();
        return ValueTask.CompletedTask;
    }

    private static void CheckProvider(DbContext dbContext, string? layout)
    {
        var provider = dbContext.Database.ProviderName ?? string.Empty;
        var expected = layout switch
        {
            nameof(OncelyRecordsLayout.Sqlite) => "Sqlite",
            nameof(OncelyRecordsLayout.PostgreSql) => "Npgsql",
            _ => null,
        };
        if (expected is not null && !provider.Contains(expected, StringComparison.OrdinalIgnoreCase) && !provider.Contains("InMemory", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException(
                $"{dbContext.GetType().Name} maps Oncely's records with OncelyRecordsLayout.{layout}, but it uses the database provider '{provider}'. Pass the layout of the store the records live in, on the same database.");
        }
    }

    private static byte[] AsArray(ReadOnlyMemory<byte> body)
        => MemoryMarshal.TryGetArray(body, out var segment) && segment.Array is { } array && segment.Offset == 0 && segment.Count == array.Length
            ? array
            : body.ToArray();
}
