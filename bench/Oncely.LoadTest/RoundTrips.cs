using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Npgsql;
using Oncely.AspNetCore;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.LoadTest;

/// <summary>What one payment costs on the wire, averaged over <see cref="RoundTrips.Payments"/> payments of one variant and path.</summary>
internal sealed record WireCost(string Variant, string Path, double RoundTrips, double Statements, IReadOnlyList<string> Sample);

/// <summary>
/// Counts the round trips and statements of one payment on PostgreSQL, with and without Oncely. Each variant of
/// <see cref="PostgresTransferServer"/> connects through a <see cref="CountingProxy"/> of its own, which counts the
/// client's sends (a round trip is one send: Npgsql writes a whole batch, or a command with its Sync, and then
/// waits), and its database logs every statement (<c>log_statement = all</c>, with the database's name in each log
/// line). The payments run one at a time (c=1), after a warm-up that fills the pool, so every count is the payment's own.
/// </summary>
internal static class RoundTrips
{
    public const int Payments = 200;
    private const int WarmUp = 50;

    public static async Task<IReadOnlyList<WireCost>> MeasureAsync()
    {
        await using var server = await PostgresServer.StartNewAsync();
        await using (var admin = new NpgsqlConnection(server.ConnectionString("postgres", 1)))
        {
            await admin.OpenAsync();
            await using var command = new NpgsqlCommand("ALTER SYSTEM SET log_line_prefix = '%m [%p] db=%d '; SELECT pg_reload_conf();", admin);
            await command.ExecuteNonQueryAsync();
        }

        var costs = new List<WireCost>();
        foreach (var (name, mode) in new[]
        {
            (BenchPlan.PostgresPaymentWithout, PaymentMode.WithoutOncely),
            (BenchPlan.PostgresPaymentTwoCommit, PaymentMode.TwoCommits),
            (BenchPlan.PostgresPaymentOneCommit, PaymentMode.OneCommit),
            (BenchPlan.PostgresPaymentOneCommitApart, PaymentMode.OneCommitReservationApart),
        })
        {
            var database = await server.CreateDatabaseAsync("wire");
            await using (var admin = new NpgsqlConnection(server.ConnectionString("postgres", 1)))
            {
                await admin.OpenAsync();
                await using var command = new NpgsqlCommand($"ALTER DATABASE \"{database}\" SET log_statement = 'all'", admin);
                await command.ExecuteNonQueryAsync();
            }

            await using var proxy = CountingProxy.Start(server.Port, BenchPlan.DatabaseLatency);
            var connectionString = new NpgsqlConnectionStringBuilder(server.ConnectionString(database, 16)) { Port = proxy.Port }.ConnectionString;
            await using var transfers = await PostgresTransferServer.StartAsync(connectionString, mode);
            using var client = new HttpClient { BaseAddress = transfers.BaseAddress };
            var prefix = "wire-" + Guid.NewGuid().ToString("N")[..8] + "-";
            await SendAsync(client, Enumerable.Range(0, WarmUp).Select(i => prefix + "w" + i.ToString(CultureInfo.InvariantCulture)), replay: false);

            var keys = Enumerable.Range(0, Payments).Select(i => prefix + i.ToString(CultureInfo.InvariantCulture)).ToList();
            costs.Add(await CountAsync(server, database, proxy, name, HttpCell.Execute, () => SendAsync(client, keys, replay: false)));
            if (mode is PaymentMode.TwoCommits or PaymentMode.OneCommit)
            {
                costs.Add(await CountAsync(server, database, proxy, name, HttpCell.Replay, () => SendAsync(client, keys, replay: true)));
            }
        }

        return costs;
    }

    /// <summary>The table for the report.</summary>
    public static string Table(IReadOnlyList<WireCost> costs)
    {
        var text = new StringBuilder();
        text.Append("| variant | path | round trips per payment | statements per payment | one payment's statements, in order |\n");
        text.Append("|---|---|--:|--:|---|\n");
        foreach (var cost in costs)
        {
            text.Append(string.Create(CultureInfo.InvariantCulture,
                $"| {cost.Variant} | {cost.Path} | {cost.RoundTrips:0.00} | {cost.Statements:0.00} | {string.Join("; ", cost.Sample.Select(s => "`" + s + "`"))} |\n"));
        }

        return text.ToString();
    }

    private static async Task<WireCost> CountAsync(PostgresServer server, string database, CountingProxy proxy, string variant, string path, Func<Task> run)
    {
        var logBefore = server.ReadLog().Length;
        var sendsBefore = proxy.ClientSends;
        await run();
        await Task.Delay(300); // the log is written by the server process; let it flush
        var sends = proxy.ClientSends - sendsBefore;
        var lines = server.ReadLog()[logBefore..]
            .Split('\n')
            .Where(l => l.Contains($"db={database} ", StringComparison.Ordinal) && (l.Contains("LOG:  statement: ", StringComparison.Ordinal) || l.Contains("LOG:  execute ", StringComparison.Ordinal)))
            .Select(Statement)
            .ToList();

        // One payment's statements: those of the last payment, which starts with the last BEGIN (or the last up-front read).
        var sample = lines.Count <= Payments ? lines : lines.Skip(lines.Count - (int)Math.Round(lines.Count / (double)Payments)).ToList();
        return new WireCost(variant, path, sends / (double)Payments, lines.Count / (double)Payments, sample);
    }

    // "…LOG:  execute s3: UPDATE bench_accounts SET …" → "UPDATE bench_accounts" (the first words, enough to recognise it).
    private static string Statement(string line)
    {
        var at = line.IndexOf("LOG:  ", StringComparison.Ordinal) + 6;
        var text = line[at..];
        var colon = text.IndexOf(": ", StringComparison.Ordinal);
        var prepared = text.StartsWith("execute ", StringComparison.Ordinal) && !text.StartsWith("execute <unnamed>", StringComparison.Ordinal) ? " (prepared)" : string.Empty;
        var sql = colon >= 0 ? text[(colon + 2)..].Trim() : text;
        var words = sql.Split([' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries).Take(sql.StartsWith("SELECT set_config", StringComparison.Ordinal) ? 1 : 3);
        var head = string.Join(' ', words);
        if (sql.StartsWith("SELECT set_config", StringComparison.Ordinal))
        {
            head = "SELECT set_config(…)";
        }
        else if (sql.StartsWith("WITH clock", StringComparison.Ordinal))
        {
            head = "WITH … reservation";
        }
        else if (sql.StartsWith("SET SESSION AUTHORIZATION DEFAULT", StringComparison.Ordinal))
        {
            head = "SET SESSION AUTHORIZATION DEFAULT;RESET ALL;… (reset)";
        }

        return head + prepared;
    }

    private static async Task SendAsync(HttpClient client, IEnumerable<string> keys, bool replay)
    {
        foreach (var key in keys)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, TransferServer.Transfer.Path) { Content = new StringContent(TransferServer.Transfer.Body, Encoding.UTF8) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.TryAddWithoutValidation(IdempotencyOptions.HeaderName, key);
            using var response = await client.SendAsync(request);
            if (response.StatusCode != HttpStatusCode.Created || response.Headers.Contains(IdempotencyOptions.ReplayedHeaderName) != replay)
            {
                throw new InvalidOperationException($"Key {key} answered {(int)response.StatusCode} (replay expected: {replay}): {await response.Content.ReadAsStringAsync()}");
            }
        }
    }
}

/// <summary>
/// A loopback TCP proxy to a PostgreSQL server that counts the client's sends: each read from the client's socket is
/// one burst the client wrote and flushed (Npgsql disables Nagle and writes a round trip's messages, then flushes once).
/// </summary>
internal sealed class CountingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _pumps = [];
    private readonly NetworkLatency? _latency;
    private long _clientSends;

    private CountingProxy(int target, TimeSpan delay)
    {
        _target = target;
        _latency = delay > TimeSpan.Zero ? new NetworkLatency(delay) : null;
        _listener = new TcpListener(IPAddress.Loopback, 0);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public long ClientSends => Interlocked.Read(ref _clientSends);

    /// <summary>Starts the proxy; <paramref name="delay"/> holds every client send that long before passing it on (a network's round trip, <c>--db-latency-ms</c>).</summary>
    public static CountingProxy Start(int target, TimeSpan delay = default)
    {
        var proxy = new CountingProxy(target, delay);
        proxy._listener.Start();
        proxy._pumps.Add(proxy.AcceptAsync());
        return proxy;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await Task.WhenAll(_pumps.ToArray());
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
        _latency?.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            var server = new TcpClient { NoDelay = true };
            await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            client.NoDelay = true;
            lock (_pumps)
            {
                _pumps.Add(PumpAsync(client, server, count: true));
                _pumps.Add(PumpAsync(server, client, count: false));
            }
        }
    }

    private async Task PumpAsync(TcpClient from, TcpClient to, bool count)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            var input = from.GetStream();
            var output = to.GetStream();
            while (true)
            {
                var read = await input.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                if (count)
                {
                    Interlocked.Increment(ref _clientSends);
                    if (_latency is not null)
                    {
                        await _latency.WaitAsync();
                    }
                }

                await output.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            from.Close();
            to.Close();
        }
    }
}

/// <summary>
/// A constant delay with sub-millisecond precision, for <see cref="CountingProxy"/>: <c>Task.Delay</c> rounds up to the
/// runtime's timer tick (about 4 ms per wait on this machine), so one thread sleeps with <c>usleep</c> (precise to about
/// 0.1 ms here) until each send is due, in arrival order (every send waits the same time, so arrival order is due order).
/// </summary>
internal sealed class NetworkLatency : IDisposable
{
    private readonly long _delayTicks;
    private readonly System.Collections.Concurrent.BlockingCollection<(long Due, TaskCompletionSource Done)> _due = new();
    private readonly Thread _thread;

    public NetworkLatency(TimeSpan delay)
    {
        _delayTicks = (long)(delay.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        _thread = new Thread(Run) { IsBackground = true, Name = "bench network latency" };
        _thread.Start();
    }

    /// <summary>Completes one delay after it was asked for.</summary>
    public Task WaitAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _due.Add((System.Diagnostics.Stopwatch.GetTimestamp() + _delayTicks, done));
        return done.Task;
    }

    public void Dispose() => _due.CompleteAdding();

    private void Run()
    {
        foreach (var (due, done) in _due.GetConsumingEnumerable())
        {
            var left = due - System.Diagnostics.Stopwatch.GetTimestamp();
            if (left > 0)
            {
                _ = usleep((uint)(left * 1_000_000 / System.Diagnostics.Stopwatch.Frequency));
            }

            done.TrySetResult();
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int usleep(uint microseconds);
}
