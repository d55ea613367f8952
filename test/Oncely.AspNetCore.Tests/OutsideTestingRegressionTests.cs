using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Regression tests for the holes outside testing found (issue 9). Each one failed on the code before its fix.
/// </summary>
public class OutsideTestingRegressionTests
{
    private static async Task<string> ProblemTypeOf(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("type").GetString()!;
    }

    // 9.1: routing matches methods case-insensitively, so the operation must too.
    [Theory]
    [InlineData("post")]
    [InlineData("Post")]
    [InlineData("pOST")]
    public async Task MethodCase_LowerCaseSpellingOfSameKey_ReplaysInsteadOfChargingAgain(string spelling)
    {
        await using var app = await TestApp.StartAsync();
        var first = await app.SendAsync(TestApp.Post("/payments", "k"));
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);

        var retry = TestApp.Post("/payments", "k");
        retry.Method = new HttpMethod(spelling);
        var second = await app.SendAsync(retry);

        Assert.Equal(HttpStatusCode.Created, second.StatusCode);
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("payments"));
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /payments", "k"), default));
    }

    // 9.2 / row 18: a body the client did not receive whole is never stored as if it were whole.
    [Theory]
    [InlineData("stream")]
    [InlineData("file")]
    [InlineData("async-enumerable")]
    [InlineData("abort")]
    public async Task ClientGoneMidResponse_BodyStoredAsOmitted_RetryGetsStatusWithoutBody_HandlerRanOnce(string mode)
    {
        var file = Path.Combine(Path.GetTempPath(), $"oncely-truncated-{Guid.NewGuid():N}.bin");
        // The file is larger than what the loopback socket buffers can absorb once the client stops reading, so the
        // server really cannot send it all; the stored-response limit is above it, so an omitted body means
        // "incomplete", not "too large".
        await File.WriteAllBytesAsync(file, new byte[40 * 1024 * 1024]);
        var handlerDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            await using var app = await PipelineApp.StartAsync(kestrel: true, configure: o => o.MaxResponseBodySize = 64 * 1024 * 1024, pipeline: (web, self) =>
            {
                web.UseAuthentication();
                web.UseIdempotency();
                web.MapPost("/download/{mode}", async (HttpContext context, string mode) =>
                {
                    self.Count(mode);
                    context.Response.OnCompleted(() =>
                    {
                        handlerDone.TrySetResult();
                        return Task.CompletedTask;
                    });
                    switch (mode)
                    {
                        case "stream":
                            return Results.Stream(new SlowStream(921_600), "application/octet-stream");
                        case "file":
                            return Results.File(file, "application/octet-stream");
                        case "async-enumerable":
                            return Results.Ok(Numbers(context.RequestAborted));
                        default:
                            context.Response.StatusCode = 201;
                            context.Response.ContentType = "application/octet-stream";
                            await context.Response.Body.WriteAsync(new byte[65_536]);
                            await context.Response.Body.FlushAsync();
                            context.Abort();
                            return Results.Empty;
                    }
                }).RequireIdempotencyKey();
            });

            using (var request = PipelineApp.Post($"/download/{mode}", "dl", json: "{}"))
            using (var response = await app.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
            {
                var stream = await response.Content.ReadAsStreamAsync();
                var buffer = new byte[65_536];
                try
                {
                    await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false);
                }
                catch (HttpRequestException)
                {
                    // "abort": the server cut the connection.
                }
                catch (IOException)
                {
                }
            }

            var record = await app.WaitForCompletedAsync(new IdempotencyRecordId(TestApp.DefaultUser, $"POST /download/{{mode}}", "dl"));
            if (mode == "file" && !record.Response!.BodyOmitted)
            {
                // A file declares its length, and once the client is gone Kestrel discards further writes without an
                // error and signals RequestAborted later, from the thread pool. When that signal comes after the copy
                // has ended, the handler has written every byte and the capture holds them all: the answer is whole
                // (row 18 forbids replaying a body known to be incomplete, and this one is not), so it is stored and
                // replayed whole. Either way the stored body is never a truncated one, and the handler ran once.
                Assert.Equal(40 * 1024 * 1024, record.Response.Body.Length);
                var whole = await app.Client.SendAsync(PipelineApp.Post($"/download/{mode}", "dl", json: "{}"));
                Assert.Equal("true", whole.Headers.GetValues("Idempotent-Replayed").Single());
                Assert.False(whole.Headers.Contains("Idempotent-Body-Omitted"));
                Assert.Equal(40 * 1024 * 1024, (await whole.Content.ReadAsByteArrayAsync()).Length);
                Assert.Equal(1, app.CallsTo(mode));
                return;
            }

            Assert.True(record.Response!.BodyOmitted, $"a truncated body ({record.Response.Body.Length} bytes) was stored as whole");
            Assert.True(record.Response.Body.IsEmpty);

            var retry = await app.Client.SendAsync(PipelineApp.Post($"/download/{mode}", "dl", json: "{}"));
            Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
            Assert.Equal("true", retry.Headers.GetValues("Idempotent-Body-Omitted").Single());
            Assert.Empty(await retry.Content.ReadAsByteArrayAsync());
            Assert.Equal(1, app.CallsTo(mode));
            Assert.Contains(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.ResponseIncomplete);
        }
        finally
        {
            File.Delete(file);
        }

        static async IAsyncEnumerable<int> Numbers([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            for (var i = 0; i < 200_000; i++)
            {
                if (i % 500 == 0)
                {
                    await Task.Delay(2, cancellationToken);
                }

                yield return i;
            }
        }
    }

    [Fact]
    public async Task ClientReadsWholeAnswer_FileWithContentLength_StoredWhole()
    {
        var file = Path.Combine(Path.GetTempPath(), $"oncely-whole-{Guid.NewGuid():N}.bin");
        var content = Enumerable.Range(0, 50_000).Select(i => (byte)i).ToArray();
        await File.WriteAllBytesAsync(file, content);
        try
        {
            await using var app = await PipelineApp.StartAsync(kestrel: true, pipeline: (web, self) =>
            {
                web.UseAuthentication();
                web.UseIdempotency();
                web.MapPost("/file", () =>
                {
                    self.Count("file");
                    return Results.File(file, "application/octet-stream");
                }).RequireIdempotencyKey();
            });

            var first = await app.Client.SendAsync(PipelineApp.Post("/file", "f", json: "{}"));
            Assert.Equal(content, await first.Content.ReadAsByteArrayAsync());
            var replay = await app.Client.SendAsync(PipelineApp.Post("/file", "f", json: "{}"));
            Assert.Equal(content, await replay.Content.ReadAsByteArrayAsync());
            Assert.False(replay.Headers.Contains("Idempotent-Body-Omitted"));
            Assert.Equal(1, app.CallsTo("file"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    // 9.3 through the pipeline: {"amount":100,"Amount":999} binds as 999; {"Amount":999,"amount":100} as 100.
    [Fact]
    public async Task CaseVariantDuplicateMembers_OtherOrderUnderSameKey_RefusedAsKeyReuse()
    {
        await using var app = await TestApp.StartAsync();
        var first = await app.PostAsync("/payments", "k", """{"amount":100,"Amount":999}""");
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Contains("\"amount\":999", await first.Content.ReadAsStringAsync());

        var second = await app.PostAsync("/payments", "k", """{"Amount":999,"amount":100}""");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, second.StatusCode);
        Assert.EndsWith("idempotency-key-reused", await ProblemTypeOf(second), StringComparison.Ordinal);
        Assert.Equal(1, app.CallsTo("payments"));
    }

    // 9.4: two endpoints with the same pattern on different hosts are two operations.
    [Fact]
    public async Task SamePatternOnTwoHosts_SameKey_EachEndpointRunsItsOwnOperation()
    {
        await using var app = await PipelineApp.StartAsync(pipeline: (web, self) =>
        {
            web.UseAuthentication();
            web.UseIdempotency();
            web.MapPost("/charges", () => Results.Ok(new { shop = "a", call = self.Count("a") })).RequireHost("a.example").RequireIdempotencyKey();
            web.MapPost("/charges", () => Results.Ok(new { shop = "b", call = self.Count("b") })).RequireHost("b.example").RequireIdempotencyKey();
        });

        var toA = PipelineApp.Post("/charges", "k");
        toA.Headers.Host = "a.example";
        var toB = PipelineApp.Post("/charges", "k");
        toB.Headers.Host = "b.example";

        var a = await app.Client.SendAsync(toA);
        var b = await app.Client.SendAsync(toB);

        Assert.Contains("\"shop\":\"a\"", await a.Content.ReadAsStringAsync());
        Assert.Contains("\"shop\":\"b\"", await b.Content.ReadAsStringAsync());
        Assert.False(b.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(1, app.CallsTo("a"));
        Assert.Equal(1, app.CallsTo("b"));
    }

    // 9.4: conventional MVC routes put every action under one pattern; each action is its own operation.
    [Fact]
    public async Task ConventionalMvcRoute_TwoActionsSameKey_EachRunsOnce()
    {
        await using var app = await PipelineApp.StartAsync(
            services: s => s.AddControllers().AddApplicationPart(typeof(LedgerController).Assembly),
            pipeline: (web, self) =>
            {
                web.UseRouting();
                web.UseAuthentication();
                web.UseIdempotency();
                web.MapControllerRoute("default", "{controller}/{action}/{id?}");
            });
        LedgerController.Calls.Clear();

        var pay = await app.Client.SendAsync(PipelineApp.Post("/Ledger/Pay", "k"));
        var refund = await app.Client.SendAsync(PipelineApp.Post("/Ledger/Refund", "k"));
        var payAgain = await app.Client.SendAsync(PipelineApp.Post("/Ledger/Pay", "k"));

        Assert.Equal("pay", await pay.Content.ReadAsStringAsync());
        Assert.Equal("refund", await refund.Content.ReadAsStringAsync());
        Assert.False(refund.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", payAgain.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, LedgerController.Calls["pay"]);
        Assert.Equal(1, LedgerController.Calls["refund"]);
    }

    [Fact]
    public async Task TwoEndpointsIndistinguishable_StartFailsSayingHowToNameThem_NamedOneStarts()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => PipelineApp.StartAsync(pipeline: (web, _) =>
        {
            web.UseIdempotency();
            web.MapPost("/twins", () => Results.Ok()).RequireIdempotencyKey();
            web.MapPost("/twins", () => Results.Ok()).RequireIdempotencyKey().WithMetadata(new ConsumesAttribute("application/xml"));
        }));
        Assert.Contains("POST /twins", error.Message, StringComparison.Ordinal);
        Assert.Contains("WithIdempotencyOperation", error.Message, StringComparison.Ordinal);

        await using var named = await PipelineApp.StartAsync(pipeline: (web, _) =>
        {
            web.UseIdempotency();
            web.MapPost("/twins", () => Results.Ok()).RequireIdempotencyKey();
            web.MapPost("/twins", () => Results.Ok()).RequireIdempotencyKey().WithIdempotencyOperation("twins.xml").WithMetadata(new ConsumesAttribute("application/xml"));
        });
    }

    // 9.5: unauthenticated callers are refused unless the endpoint opts into the anonymous scope.
    [Theory]
    [InlineData(null)]
    [InlineData("Bearer garbage")]
    public async Task Unauthenticated_OnIdempotentEndpoint_401ProblemNothingRunsNothingStored(string? authorization)
    {
        await using var app = await TestApp.StartAsync();
        var request = TestApp.Post("/payments", "k", user: null);
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        var response = await app.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.EndsWith("idempotency-caller-unauthenticated", await ProblemTypeOf(response), StringComparison.Ordinal);
        Assert.Equal(0, app.CallsTo("payments"));
        Assert.Null(await app.Store.GetAsync(new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, "POST /payments", "k"), default));
    }

    [Fact]
    public async Task AnonymousOptIn_SharedScopeIsEmptyTenant_UserNamedAnonymousNeverJoinsIt()
    {
        await using var app = await PipelineApp.StartAsync(pipeline: (web, self) =>
        {
            web.UseAuthentication();
            web.UseIdempotency();
            web.MapPost("/signups", (HttpContext context) => Results.Ok(new { call = self.Count("signups"), user = context.User.Identity?.Name }))
                .RequireIdempotencyKey()
                .AllowAnonymousIdempotency();
        });

        var anonymous = await app.Client.SendAsync(PipelineApp.Post("/signups", "k", user: null));
        var userNamedAnonymous = await app.Client.SendAsync(PipelineApp.Post("/signups", "k", user: "anonymous"));
        var anonymousAgain = await app.Client.SendAsync(PipelineApp.Post("/signups", "k", user: null));

        Assert.Equal(HttpStatusCode.OK, anonymous.StatusCode);
        Assert.False(userNamedAnonymous.Headers.Contains("Idempotent-Replayed"));
        Assert.Contains("\"user\":\"anonymous\"", await userNamedAnonymous.Content.ReadAsStringAsync());
        Assert.Equal("true", anonymousAgain.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(2, app.CallsTo("signups"));
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, "POST /signups", "k"), default));
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId("anonymous", "POST /signups", "k"), default));
    }

    [Fact]
    public async Task TenantResolverReturnsEmpty_ForAuthenticatedCaller_RefusedNeverTheAnonymousScope()
    {
        await using var app = await PipelineApp.StartAsync(
            configure: o => o.TenantResolver = _ => string.Empty,
            pipeline: (web, self) =>
            {
                web.UseAuthentication();
                web.UseIdempotency();
                web.MapPost("/signups", () => Results.Ok(new { call = self.Count("signups") })).RequireIdempotencyKey().AllowAnonymousIdempotency();
            });

        var response = await app.Client.SendAsync(PipelineApp.Post("/signups", "k"));

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.EndsWith("idempotency-tenant-unresolved", await ProblemTypeOf(response), StringComparison.Ordinal);
        Assert.Equal(0, app.CallsTo("signups"));
    }

    // 9.6: after a release, the same client key with another payload must not hand the bank the first operation's key.
    [Fact]
    public async Task DerivedKey_SameClientKeyOtherPayloadAfterRelease_OtherDownstreamKey_SamePayloadSameKey()
    {
        await using var app = await PipelineApp.StartAsync(pipeline: (web, self) =>
        {
            web.UseAuthentication();
            web.UseIdempotency();
            web.MapPost("/transfers", (HttpContext context, TestApp.Payment payment) =>
            {
                self.Count("transfers");

                // The bank call fails after the key was derived: the answer is a 502, so the record is released.
                return Results.Json(new { bankKey = context.GetIdempotencyExecution()!.DeriveKey("bank/transfer") }, statusCode: 502);
            }).RequireIdempotencyKey();
        });

        async Task<string> BankKeyFor(string json)
        {
            var response = await app.Client.SendAsync(PipelineApp.Post("/transfers", "client-key", json));
            Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
            return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("bankKey").GetString()!;
        }

        var hundred = await BankKeyFor("""{"amount":100}""");
        var other = await BankKeyFor("""{"amount":999}""");
        var hundredAgain = await BankKeyFor("""{ "amount" : 100 }""");

        Assert.NotEqual(hundred, other);
        Assert.Equal(hundred, hundredAgain);
        Assert.Equal(3, app.CallsTo("transfers"));
    }

    // 9.7 / row 19: broken framing gets the server's own 400/408, nothing is recorded, the key stays usable.
    [Theory]
    [InlineData("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n", false)]
    [InlineData("Transfer-Encoding: chunked\r\n", "-5\r\n{}\r\n0\r\n\r\n", false)]
    [InlineData("Transfer-Encoding: chunked\r\n", "2\n{}\r\n0\r\n\r\n", false)]
    [InlineData("Transfer-Encoding: chunked\r\n", "FFFFFFFFFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n", false)]
    [InlineData("Content-Length: 100\r\n", "{\"amount\":100}", true)]
    public async Task BrokenFraming_ServersOwn400_NothingRecorded_KeyStillUsable(string framing, string body, bool closeEarly)
    {
        await using var app = await PipelineApp.StartAsync(kestrel: true, pipeline: (web, self) =>
        {
            PipelineApp.UseCatchAll(web);
            web.UseAuthentication();
            web.UseIdempotency();
            web.MapPost("/payments", (TestApp.Payment payment) => Results.Created("/payments/1", new { call = self.Count("payments"), payment.Amount })).RequireIdempotencyKey();
            web.MapPost("/plain-payments", (TestApp.Payment payment) => Results.Created("/payments/1", new { call = self.Count("plain"), payment.Amount }));
        });

        var withoutOncely = await app.SendRawAsync(PipelineApp.Head("/plain-payments", "framed", framing), Encoding.ASCII.GetBytes(body), closeEarly);
        var status = await app.SendRawAsync(PipelineApp.Head("/payments", "framed", framing), Encoding.ASCII.GetBytes(body), closeEarly);

        Assert.Equal(withoutOncely, status);
        Assert.NotEqual(500, status);
        Assert.Equal(0, app.CallsTo("payments"));
        Assert.Equal(0, app.CallsTo("plain"));
        Assert.Null(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /payments", "framed"), default));
        var retry = await app.Client.SendAsync(PipelineApp.Post("/payments", "framed"));
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Fact]
    public async Task StalledBody_BelowMinimumDataRate_408NothingRecorded()
    {
        await using var app = await PipelineApp.StartAsync(
            kestrel: true,
            builderHook: b => b.WebHost.ConfigureKestrel(k => k.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 1000, gracePeriod: TimeSpan.FromSeconds(2))),
            pipeline: (web, self) =>
            {
                PipelineApp.UseCatchAll(web);
                web.UseAuthentication();
                web.UseIdempotency();
                web.MapPost("/payments", (TestApp.Payment payment) => Results.Created("/payments/1", new { call = self.Count("payments") })).RequireIdempotencyKey();
            });

        // 14 of 5,000 announced bytes, then silence.
        var status = await app.SendRawAsync(PipelineApp.Head("/payments", "stalled", "Content-Length: 5000\r\n"), Encoding.ASCII.GetBytes("{\"amount\":100,"), closeAfterSending: false);

        Assert.True(status is 408 or 0, $"answered {status}");
        Assert.Equal(0, app.CallsTo("payments"));
        Assert.Null(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /payments", "stalled"), default));
        Assert.DoesNotContain(app.Logs.Entries, e => e.Level >= LogLevel.Error && e.Message.Contains("stalled", StringComparison.Ordinal));
    }

    // 9.8: a payload the redactor cannot handle still gets the 422 (never a 500) and the audit keeps a safe summary.
    [Fact]
    public async Task KeyReused_PayloadWithLoneSurrogate_Still422()
    {
        await using var app = await TestApp.StartAsync();
        await app.PostAsync("/payments", "k", """{"amount":100}""");

        var reused = await app.PostAsync("/payments", "k", """{"amount":999,"note":"\ud800"}""");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Fact]
    public async Task KeyReused_RedactorThrows_Still422_AuditHasSummaryWithoutPayload()
    {
        await using var app = await TestApp.StartAsync(maintenance: o => o.PayloadRedactor = (_, _) => throw new InvalidOperationException("redactor bug"));
        await app.PostAsync("/payments", "k", """{"amount":100}""");

        var reused = await app.PostAsync("/payments", "k", """{"amount":999,"card":"4242424242424242"}""");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        var audit = app.Logs.Entries.Single(e => e.Id.Id == IdempotencyEventIds.KeyReused);
        Assert.DoesNotContain("4242", audit.Message, StringComparison.Ordinal);
        Assert.Contains("could not be redacted", audit.Message, StringComparison.Ordinal);
        Assert.Contains(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.AuditRedactionFailed);
    }

    // 9.11: UseIdempotency before an explicit UseRouting must fail closed, never run the endpoint unprotected.
    [Fact]
    public async Task UseIdempotencyBeforeUseRouting_EndpointRefusesToRun_NoKeyOrRepeatedKeyNeverExecutes()
    {
        // Since issue 13 the misplaced call is refused when the host starts (docs/composition.md), before any request
        // could reach the endpoint; the endpoint's own guard stays behind it for pipelines start-up cannot see.
        var calls = 0;
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => PipelineApp.StartAsync(pipeline: (web, self) =>
        {
            PipelineApp.UseCatchAll(web);
            web.UseIdempotency();
            web.UseRouting();
            web.UseAuthentication();
            web.MapPost("/payments", () => Results.Created("/payments/1", new { call = ++calls })).RequireIdempotencyKey();
        }));

        Assert.Contains("UseRouting() and UseAuthentication() are called after UseIdempotency()", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, calls);
    }

    [Fact]
    public async Task UseIdempotencyBeforeUseRouting_MvcActionRefusesToRun()
    {
        LedgerController.Calls.Clear();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => PipelineApp.StartAsync(
            services: s => s.AddControllers().AddApplicationPart(typeof(LedgerController).Assembly),
            pipeline: (web, _) =>
            {
                PipelineApp.UseCatchAll(web);
                web.UseIdempotency();
                web.UseRouting();
                web.UseAuthentication();
                web.MapControllerRoute("default", "{controller}/{action}/{id?}");
            }));

        Assert.Contains("UseRouting() and UseAuthentication() are called after UseIdempotency()", error.Message, StringComparison.Ordinal);
        Assert.False(LedgerController.Calls.ContainsKey("pay"));
    }

    [Fact]
    public async Task IdempotencyMetadataAddedWithoutTheGuard_StartFailsSayingWhatToUse()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => PipelineApp.StartAsync(pipeline: (web, _) =>
        {
            web.UseIdempotency();
            web.MapPost("/unguarded", () => Results.Ok()).WithMetadata(new IdempotentAttribute());
        }));

        Assert.Contains("RequireIdempotencyKey()", error.Message, StringComparison.Ordinal);
        Assert.Contains("/unguarded", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UseIdempotencyAfterRouting_GuardLetsHandledRequestsThrough()
    {
        await using var app = await PipelineApp.StartAsync(pipeline: (web, self) =>
        {
            web.UseRouting();
            web.UseAuthentication();
            web.UseIdempotency();
            web.MapPost("/payments", () => Results.Created("/payments/1", new { call = self.Count("payments") })).RequireIdempotencyKey();
            web.MapPost("/optional", () => Results.Ok(new { call = self.Count("optional") })).AllowIdempotencyKey();
        });

        Assert.Equal(HttpStatusCode.Created, (await app.Client.SendAsync(PipelineApp.Post("/payments", "k"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.Client.SendAsync(PipelineApp.Post("/optional", null))).StatusCode);
        Assert.Equal(1, app.CallsTo("payments"));
        Assert.Equal(1, app.CallsTo("optional"));
    }

    // 9.12: a body compressed inside the middleware is replayed with its Content-Encoding.
    [Fact]
    public async Task CompressionInsideIdempotency_ReplayKeepsContentEncoding_BodyDecodes()
    {
        await using var app = await PipelineApp.StartAsync(
            services: s => s.AddResponseCompression(o => o.EnableForHttps = true),
            pipeline: (web, self) =>
            {
                web.UseAuthentication();
                web.UseIdempotency();
                web.UseResponseCompression();
                web.MapPost("/report", () => Results.Json(new { call = self.Count("report"), rows = Enumerable.Range(0, 200).Select(i => $"row {i}") }))
                    .RequireIdempotencyKey();
            });

        HttpRequestMessage Request()
        {
            var request = PipelineApp.Post("/report", "k");
            request.Headers.AcceptEncoding.ParseAdd("gzip");
            return request;
        }

        var first = await app.Client.SendAsync(Request());
        var replay = await app.Client.SendAsync(Request());

        Assert.Equal("gzip", first.Content.Headers.ContentEncoding.Single());
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal("gzip", replay.Content.Headers.ContentEncoding.Single());
        Assert.Equal(await Gunzip(first), await Gunzip(replay));
        Assert.Equal(1, app.CallsTo("report"));

        static async Task<string> Gunzip(HttpResponseMessage response)
        {
            await using var gzip = new GZipStream(await response.Content.ReadAsStreamAsync(), CompressionMode.Decompress);
            using var reader = new StreamReader(gzip);
            return await reader.ReadToEndAsync();
        }
    }

    // 9.13: after the middleware returns, Request.Body is the server's own stream again, never a pooled buffer.
    [Fact]
    public async Task AfterMiddleware_RequestBodyIsTheOriginalStream_BufferedOuterReaderSeesItsOwnBytes()
    {
        var seen = new List<(bool SameStream, string Body)>();
        await using var app = await PipelineApp.StartAsync(pipeline: (web, self) =>
        {
            web.Use(async (context, next) =>
            {
                context.Request.EnableBuffering();
                var original = context.Request.Body;
                await next(context);
                context.Request.Body.Position = 0;
                using var reader = new StreamReader(context.Request.Body, leaveOpen: true);
                seen.Add((ReferenceEquals(original, context.Request.Body), await reader.ReadToEndAsync()));
            });
            web.UseAuthentication();
            web.UseIdempotency();
            web.MapPost("/payments", (TestApp.Payment p) => Results.Created("/payments/1", new { call = self.Count("payments"), p.Amount })).RequireIdempotencyKey();
        });

        await app.Client.SendAsync(PipelineApp.Post("/payments", "a", """{"amount":111}"""));
        await app.Client.SendAsync(PipelineApp.Post("/payments", "b", """{"amount":222}"""));

        Assert.Equal(new[] { (true, """{"amount":111}"""), (true, """{"amount":222}""") }, seen);
    }

    // 9.14: a release refused because the handler's own transaction completed the record is not a take-over.
    [Fact]
    public async Task HandlerCompletedInItsTransactionThenFailed_ReleaseRefused_LoggedAsCompletedNotAsTakeOver()
    {
        await using var app = await PipelineApp.StartAsync(pipeline: (web, self) =>
        {
            PipelineApp.UseCatchAll(web);
            web.UseAuthentication();
            web.UseIdempotency();
            web.MapPost("/payments", async (HttpContext context) =>
            {
                self.Count("payments");
                var execution = context.GetIdempotencyExecution()!;
                var store = context.RequestServices.GetRequiredService<IIdempotencyStore>();

                // What a committed transactional completion leaves behind, then the client hangs up before the answer.
                await store.TryCompleteAsync(execution.Id, execution.FencingToken, new IdempotentResponse(201, [], "{}"u8.ToArray()), TimeSpan.FromHours(1), default);
                execution.MarkCompletedInTransaction();
                throw new IOException("the client went away");
            }).RequireIdempotencyKey();
        });

        await app.Client.SendAsync(PipelineApp.Post("/payments", "k"));
        var replay = await app.Client.SendAsync(PipelineApp.Post("/payments", "k"));

        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("payments"));
        Assert.DoesNotContain(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.LeaseLost);
        Assert.Contains(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.ReleaseRefusedCompleted && e.Level == LogLevel.Debug);
    }

    // 9.16: the "too long" message names the configured limit; a 409 is routine and logged at Debug.
    [Fact]
    public async Task KeyTooLong_MessageNamesConfiguredLimit()
    {
        await using var app = await TestApp.StartAsync(o => o.MaxKeyLength = 40);

        var response = await app.PostAsync("/payments", new string('k', 41));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var detail = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("detail").GetString();
        Assert.Contains("at most 40 characters", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InProgressDuplicate_LoggedAtDebug()
    {
        await using var app = await TestApp.StartAsync();
        var first = app.PostAsync("/slow", "k");
        await app.Entered.Task;

        var duplicate = await app.PostAsync("/slow", "k");
        app.Gate.SetResult();
        await first;

        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
        var logged = app.Logs.Entries.Single(e => e.Id.Id == IdempotencyEventIds.InProgress);
        Assert.Equal(LogLevel.Debug, logged.Level);
    }

    private sealed class SlowStream(long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= length)
            {
                return 0;
            }

            await Task.Delay(5, cancellationToken);
            var n = (int)Math.Min(Math.Min(buffer.Length, 8192), length - _position);
            buffer.Span[..n].Fill(7);
            _position += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>An MVC controller reached through a conventional route.</summary>
public sealed class LedgerController : Controller
{
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> Calls = new();

    [HttpPost]
    [Idempotent]
    public IActionResult Pay()
    {
        Calls.AddOrUpdate("pay", 1, (_, n) => n + 1);
        return Content("pay");
    }

    [HttpPost]
    [Idempotent]
    public IActionResult Refund()
    {
        Calls.AddOrUpdate("refund", 1, (_, n) => n + 1);
        return Content("refund");
    }
}
