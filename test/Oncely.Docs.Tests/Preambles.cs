namespace Oncely.Docs.Tests;

/// <summary>
/// The hidden context a fragment may ask for with <c>&lt;!-- snippet: preamble=name[,name…] --&gt;</c>. Each part adds
/// statements before the fragment and/or declarations after it, in the order named. Parts add no <c>using</c>
/// directives: a snippet shows every namespace it needs beyond the Web SDK's implicit ones. See README.md here.
/// </summary>
public static class Preambles
{
    public sealed record Part(string Before, string After);

    public static readonly IReadOnlyDictionary<string, Part> All = new Dictionary<string, Part>(StringComparer.Ordinal)
    {
        // An IServiceCollection named services (a library's or a worker's registration code).
        ["services"] = new("var services = new ServiceCollection();", string.Empty),

        // The usual Program.cs start: var builder = WebApplication.CreateBuilder(args);
        ["builder"] = new("var builder = WebApplication.CreateBuilder(args);", string.Empty),

        // The built app, for fragments that only show the pipeline and endpoints.
        ["app"] = new("var app = WebApplication.CreateBuilder(args).Build();", string.Empty),

        // The payments API the examples talk about: request and entity types, and the business methods they call.
        ["payments"] = new(
            """
            static Task<Payment> ChargeAsync(System.Data.Common.DbTransaction transaction, PaymentRequest request, CancellationToken cancellationToken) => Task.FromResult(new Payment { Amount = request.Amount });
            static Task<Guid> InsertPaymentAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, PaymentRequest request) => Task.FromResult(Guid.NewGuid());
            static Task HoldFundsAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, PaymentRequest request) => Task.CompletedTask;
            static Task RecordSettlementAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, PaymentRequest request) => Task.CompletedTask;
            static IResult CreatePayment(PaymentRequest request) => Results.Created($"/payments/{Guid.NewGuid()}", request);
            """,
            """
            public sealed record PaymentRequest(long Amount, string Currency);
            public sealed class Payment
            {
                public Guid Id { get; set; } = Guid.NewGuid();
                public long Amount { get; set; }
            }
            """),

        // Inside a payment handler: the execution, an open connection, the request, the answer, a bank client.
        ["handler"] = new(
            """
            Oncely.IdempotencyExecution execution = null!;
            System.Data.Common.DbConnection connection = null!;
            PaymentRequest request = new(250, "EUR");
            Oncely.IdempotentResponse response = null!;
            Bank bank = new();
            """,
            """
            public sealed class Bank
            {
                public Task TransferAsync(PaymentRequest request, string idempotencyKey) => Task.CompletedTask;
            }
            """),

        // Client code: an IHttpClientFactory, a logger and the values the example sends.
        ["client"] = new(
            """
            IHttpClientFactory factory = null!;
            ILogger logger = null!;
            var refund = new { Amount = 100L, Currency = "EUR" };
            var order = new { Id = 42 };
            var payment = new { Amount = 100L, Currency = "EUR" };
            """,
            string.Empty),

        // A message consumer: a store, the tenant, the message and its handler.
        ["consumer"] = new(
            """
            Oncely.IIdempotencyStore store = null!;
            var tenant = "tenant-a";
            var message = new Message("msg-1", System.Text.Encoding.UTF8.GetBytes("{}"));
            static Task<byte[]> HandleAsync(Message message, CancellationToken cancellationToken) => Task.FromResult(Array.Empty<byte>());
            """,
            "public sealed record Message(string Id, byte[] Body);"),

        // Bytes to fingerprint.
        ["body"] = new("byte[] bodyBytes = [];", string.Empty),
    };
}
