using System.Globalization;

namespace Oncely.LoadTest;

/// <summary>
/// Every performance target of the load test, in one list, read at c=16 (each row also shows c=1 and c=64): a throughput
/// ratio against a cell measured in the same repetition, or an allocation bound. A target that is not reached is
/// reported with its sentence (<see cref="Target.WhenMissed"/>): what the measurements say the cost is made of.
/// </summary>
internal static class Targets
{
    public const int ReadAt = 16;

    public static readonly Target[] All =
    [
        // Issue 20: the payment path against itself without Oncely (one transaction, the same statements).
        Ratio("20", "PostgreSQL payment: one-commit execute / the same transfer without Oncely", BenchPlan.PostgresPaymentOneCommit, HttpCell.Execute, BenchPlan.PostgresPaymentWithout, HttpCell.Execute, 0.90,
            "the payment itself is two round trips (the ledger batch, the commit); Oncely adds one, the up-front read that keeps retries write-free (the reservation rides with the ledger batch, ReserveAndExecuteAsync, and the completion with the COMMIT), plus the reservation's and the completion's work, and their CPU on cores that wrk, Kestrel and PostgreSQL share (see the round-trip table below). The database's own work for a key held during the payment and an answer stored with it already sets a ceiling of 0.76–0.87× on this machine, whatever the library (\"The reservation's statement, and the database's floor\" in docs/benchmarks.md)."),
        Ratio("20", "PostgreSQL payment: one-commit execute / two-commit execute", BenchPlan.PostgresPaymentOneCommit, HttpCell.Execute, BenchPlan.PostgresPaymentTwoCommit, HttpCell.Execute, 1.00,
            "both make three round trips now (one-commit: the up-front read, the reservation with the ledger batch, the completion with the COMMIT); one-commit saves a commit, whose WAL flush is cheap on this disk, and runs the up-front read that keeps its retries write-free, so the two stay within the run's noise of each other."),
        Ratio("20", "PostgreSQL payment: one-commit execute, reservation with the ledger batch / reservation apart", BenchPlan.PostgresPaymentOneCommit, HttpCell.Execute, BenchPlan.PostgresPaymentOneCommitApart, HttpCell.Execute, 1.00,
            "one loopback round trip is smaller than this machine's noise between cells: at c=16 the CPU of the two cores bounds both, and at c=1 separate runs of the same code disagree (docs/benchmarks.md, \"The reservation with the ledger batch, measured\"); the round trip is saved (the count above), and is worth more across a network."),
        Ratio("20", "PostgreSQL payment: one-commit replay / the transfer without Oncely", BenchPlan.PostgresPaymentOneCommit, HttpCell.Replay, BenchPlan.PostgresPaymentWithout, HttpCell.Execute, 3.00,
            "a replay is one indexed read plus HTTP, and the payment without Oncely is two round trips with one commit: on this machine, where CPU rather than the WAL flush bounds the transfer, that is about 2–3×, not more."),
        Ratio("20", "PostgreSQL payment: two-commit replay / the transfer without Oncely", BenchPlan.PostgresPaymentTwoCommit, HttpCell.Replay, BenchPlan.PostgresPaymentWithout, HttpCell.Execute, 3.00,
            "a two-commit replay is answered by the reservation statement itself (its insert and update find nothing to do and write nothing), a heavier statement than the one-commit path's plain read, plus HTTP."),
        Ratio("20", "SQLite payment: one-commit execute / the same transfer without Oncely", BenchPlan.SqlitePaymentOneCommit, HttpCell.Execute, BenchPlan.SqlitePaymentWithout, HttpCell.Execute, 0.90,
            "SQLite has one writer: the reservation and the completion run inside the write transaction, with the engine's work between them, so the single write lock is held longer per payment than by the transfer alone; the up-front read waits for nothing."),
        Ratio("20", "SQLite payment: one-commit execute / two-commit execute", BenchPlan.SqlitePaymentOneCommit, HttpCell.Execute, BenchPlan.SqlitePaymentTwoCommit, HttpCell.Execute, 1.00,
            "the two-commit reservation is a short write transaction of its own that no longer syncs the WAL (synchronous = NORMAL), while one-commit holds the payment's write lock across the reservation, the engine and the completion."),
        Ratio("20", "SQLite payment: one-commit replay / the transfer without Oncely", BenchPlan.SqlitePaymentOneCommit, HttpCell.Replay, BenchPlan.SqlitePaymentWithout, HttpCell.Execute, 3.00,
            "a replay is one read, which never waits for the writer; the transfer without Oncely is bounded by the single writer, so how far apart they are depends on the disk's sync cost."),
        Ratio("20", "SQLite payment: two-commit replay / the transfer without Oncely", BenchPlan.SqlitePaymentTwoCommit, HttpCell.Replay, BenchPlan.SqlitePaymentWithout, HttpCell.Execute, 3.00,
            "as the one-commit replay."),
        Ratio("20", "PostgreSQL execute (two commits) / raw two-statement write", BenchPlan.Postgres, HttpCell.Execute, BenchPlan.PostgresRaw, BenchPlan.ReserveComplete, 0.75,
            "the raw primitive has no HTTP: Kestrel, routing, the engine and the response capture cost CPU on the same two cores that PostgreSQL and wrk use."),
        Ratio("20", "SQLite execute (two commits) / raw two-statement write", BenchPlan.Sqlite, HttpCell.Execute, BenchPlan.SqliteRaw, BenchPlan.ReserveComplete, 0.60,
            "the store's reservation is a read and then a write transaction (BEGIN IMMEDIATE, upsert, commit) and the completion a second one, against two autocommit statements; the single writer serialises both."),
        Ratio("20", "PostgreSQL replay / raw indexed read of the same row", BenchPlan.Postgres, HttpCell.Replay, BenchPlan.PostgresRaw, BenchPlan.ReadCompleted, 0.80,
            "the raw read has no HTTP: a replay adds Kestrel, the fingerprint and the stored answer's headers and body to one read."),
        Ratio("20", "SQLite replay / no-Oncely baseline", BenchPlan.Sqlite, HttpCell.Replay, BenchPlan.Baseline, HttpCell.Execute, 0.60,
            "each replay opens a pooled connection and runs a synchronous SELECT through Microsoft.Data.Sqlite, which holds a thread for the read."),
        Allocation("20", "PostgreSQL payment: one-commit execute allocations / two-commit execute allocations", BenchPlan.PostgresPaymentOneCommit, BenchPlan.PostgresPaymentTwoCommit,
            "the one-commit path does more: the up-front read (a command, a pooled connection, its parameters and reader) and a reader over the application's batch with the reservation in it, about 1–2 KiB; the two-commit path's reservation answers replays itself."),
        Allocation("20", "SQLite payment: one-commit execute allocations / two-commit execute allocations", BenchPlan.SqlitePaymentOneCommit, BenchPlan.SqlitePaymentTwoCommit,
            "the one-commit path reads the record up front (a pooled connection of its own, a command and a reader) before the handler's transaction, and then reserves inside it: the same read and write the two-commit store call makes, plus the engine's one-commit bookkeeping."),
        Ratio("20", "in-memory execute / no-Oncely baseline", BenchPlan.InMemory, HttpCell.Execute, BenchPlan.Baseline, HttpCell.Execute, 0.85,
            "see \"Where an in-memory execution spends its time\" below."),
        Bytes("20", "Redis execute: server allocations per request", BenchPlan.Redis, HttpCell.Execute, 5 * 1024,
            "two StackExchange.Redis script calls cost about 1 KiB by themselves, and the engine's asynchronous store path (its StoreTimeout wait per call) about 1 KiB more than the in-memory path's; see \"Redis allocations\" in docs/benchmarks.md."),

        Ratio("19", "protected in-memory execute / in-memory execute", BenchPlan.InMemoryProtected, HttpCell.Execute, BenchPlan.InMemory, HttpCell.Execute, 0.90,
            "sealing an answer with Data Protection (AES-256-CBC + HMAC-SHA256, a fresh subkey per payload) costs more than an in-memory store call."),
        Ratio("19", "protected in-memory replay / in-memory replay", BenchPlan.InMemoryProtected, HttpCell.Replay, BenchPlan.InMemory, HttpCell.Replay, 0.90,
            "opening a sealed answer (HMAC check, key derivation, decryption) on every replay costs more than copying stored bytes."),

        // Issue 10's targets that issue 20 did not replace.
        Ratio("10", "in-memory replay / no-Oncely baseline", BenchPlan.InMemory, HttpCell.Replay, BenchPlan.Baseline, HttpCell.Execute, 1.00,
            "a replay writes stored bytes and skips the handler; on a trivial endpoint the two are within the noise."),
        Ratio("10", "SQLite execute / raw SQLite reserve+complete", BenchPlan.Sqlite, HttpCell.Execute, BenchPlan.SqliteRaw, BenchPlan.ReserveComplete, 0.90,
            "as the 0.60× row above: two write transactions and a read against two autocommit statements."),
        Ratio("10", "PostgreSQL execute / raw PostgreSQL reserve+complete", BenchPlan.Postgres, HttpCell.Execute, BenchPlan.PostgresRaw, BenchPlan.ReserveComplete, 0.90,
            "as the 0.75× row above: HTTP and the engine on the cores PostgreSQL uses."),
        Ratio("10", "Redis execute / raw Redis reserve+complete scripts", BenchPlan.Redis, HttpCell.Execute, BenchPlan.RedisRaw, BenchPlan.ReserveComplete, 0.90,
            "HTTP alone costs more CPU here than a Redis round trip (see scaling.md)."),
        Ratio("10", "Redis replay / raw Redis read script on a completed record", BenchPlan.Redis, HttpCell.Replay, BenchPlan.RedisRaw, BenchPlan.ReadScript, 0.80,
            "HTTP alone costs more CPU here than a Redis round trip (see scaling.md)."),
    ];

    private static Target Ratio(string issue, string label, string variant, string path, string againstVariant, string againstPath, double bound, string whenMissed)
        => new(issue, label, (results, c) => MedianRatio(results, variant, path, againstVariant, againstPath, c, r => r.PerSecond), AtLeast: true, bound,
            Invariant($"≥ {bound:0.00}×"), v => Invariant($"{v:0.00}"), whenMissed);

    // Allocations per request of one execute cell over another's, per repetition (allocation counts barely move between runs).
    private static Target Allocation(string issue, string label, string variant, string againstVariant, string whenMissed)
        => new(issue, label, (results, c) => MedianRatio(results, variant, HttpCell.Execute, againstVariant, HttpCell.Execute, c, r => r.AllocatedBytesPerOperation ?? 0), AtLeast: false, 1.00,
            "≤ 1.00×", v => Invariant($"{v:0.00}"), whenMissed);

    private static Target Bytes(string issue, string label, string variant, string path, double bound, string whenMissed)
        => new(issue, label, (results, c) => MedianOf(results.Where(r => r.Variant == variant && r.Path == path && r.Concurrency == c).Select(r => r.AllocatedBytesPerOperation).OfType<double>()), AtLeast: false, bound,
            Invariant($"≤ {bound / 1024:0.#} KiB"), v => Invariant($"{v / 1024:0.0} KiB"), whenMissed);

    private static double? MedianRatio(IReadOnlyList<CellResult> results, string variant, string path, string againstVariant, string againstPath, int concurrency, Func<CellResult, double> value)
        => MedianOf(results
            .Where(r => r.Variant == variant && r.Path == path && r.Concurrency == concurrency)
            .Select(r => (Measured: r, Against: results.FirstOrDefault(b => b.Variant == againstVariant && b.Path == againstPath && b.Concurrency == concurrency && b.Repetition == r.Repetition)))
            .Where(p => p.Against is not null && value(p.Against) > 0)
            .Select(p => value(p.Measured) / value(p.Against!)));

    private static double? MedianOf(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        if (sorted.Count == 0)
        {
            return null;
        }

        var middle = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>One target: its value per concurrency, the bound at c=16 and what a miss is made of.</summary>
internal sealed record Target(
    string Issue,
    string Label,
    Func<IReadOnlyList<CellResult>, int, double?> Value,
    bool AtLeast,
    double Bound,
    string BoundText,
    Func<double, string> Format,
    string WhenMissed)
{
    public bool Met(double value) => AtLeast ? value >= Bound : value <= Bound;
}
