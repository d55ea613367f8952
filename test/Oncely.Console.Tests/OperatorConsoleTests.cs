using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using OpenQA.Selenium;

namespace Oncely.Console.Tests;

/// <summary>
/// Issue 22: the operator console, driven in headless Chromium against the Payments sample on Kestrel and SQLite. An
/// operator signs in with the sample's operator key, finds a stuck key, releases it with the fencing token shown, and
/// the client's retry then creates the account once; tenant keys and no key see nothing but the API's problem.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed partial class OperatorConsoleTests(ConsoleBrowser browser)
{
    private const string StuckRoute = "/dev/stuck-keys/accounts";
    private const string ConsoleCsp =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private PaymentsServer Server => browser.Server;

    [Fact]
    public async Task StuckKey_OperatorReleasesItWithTheTokenShown_GoneAndTheRetryCreatesTheAccountOnce()
    {
        var key = "stuck-" + Guid.NewGuid().ToString("N")[..8];
        var name = "carol-" + key;
        var body = $"{{\"name\":\"{name}\",\"currency\":\"EUR\"}}";
        using var tenant = Server.Client(PaymentsServer.TenantA);
        using (var done = await PaymentsServer.PostJsonAsync(tenant, "/accounts", "{\"name\":\"dora\",\"currency\":\"EUR\"}", "done-" + key))
        {
            Assert.Equal(HttpStatusCode.Created, done.StatusCode);
        }

        var token = await StrandAsync(tenant, key, body);
        using (var blocked = await PaymentsServer.PostJsonAsync(tenant, "/accounts", body, key))
        {
            Assert.Equal(HttpStatusCode.Conflict, blocked.StatusCode);
        }

        Assert.Equal(0, await Server.CountAccountsAsync("tenant-a", name));

        browser.ConsoleErrors(); // from here on, the browser console's errors are this test's
        browser.Open();
        browser.Screenshot("01-sign-in");
        browser.SignIn(PaymentsServer.Operator);
        var row = WaitForRow(key);
        browser.WaitUntil(() => browser.Driver.FindElements(By.CssSelector("#counts-svg g.bar")).Count == 2, "the counts chart");

        // The list: state in words, tenant, operation, the token, oldest first.
        var cells = row.FindElements(By.TagName("td")).Select(c => c.Text).ToList();
        Assert.Equal(["In progress", "1", "tenant-a", "POST /accounts", token.ToString(System.Globalization.CultureInfo.InvariantCulture)], [cells[0], cells[2], cells[3], cells[4], cells[5]]);
        Assert.Matches("^[0-9]+ s$|^[0-9]+ min [0-9]+ s$", cells[1]);
        // Times in the browser's zone (Europe/Berlin here), UTC on hover.
        var created = row.FindElement(By.TagName("time"));
        var utc = DateTimeOffset.Parse(created.GetAttribute("datetime")!, System.Globalization.CultureInfo.InvariantCulture);
        var berlin = TimeZoneInfo.ConvertTime(utc, TimeZoneInfo.FindSystemTimeZoneById(ConsoleBrowser.TimeZone));
        Assert.Equal(utc.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture) + " UTC", created.GetAttribute("title"));
        Assert.Matches($"\\b0?({berlin.Hour}|{(berlin.Hour + 11) % 12 + 1}):{berlin:mm:ss}\\b", created.Text);
        Assert.Matches("CET|GMT\\+1", created.Text);
        Assert.DoesNotContain("UTC", created.Text, StringComparison.Ordinal);
        Assert.StartsWith("In-progress records, oldest first:", browser.Element("records-caption").Text, StringComparison.Ordinal);

        // The charts count what the API lists: at least this stuck key in progress, the finished one completed.
        var inProgress = ChartValue("counts-svg", "In progress");
        Assert.True(inProgress >= 1);
        Assert.True(ChartValue("counts-svg", "Completed") >= 1);
        Assert.Equal(inProgress, browser.Driver.FindElements(By.CssSelector("#ages-svg g.bar")).Sum(bar => int.Parse(bar.GetAttribute("data-value")!, System.Globalization.CultureInfo.InvariantCulture)));
        browser.Screenshot("02-overview", scrollTo: "overview");
        browser.Screenshot("03-records", scrollTo: "records");

        // Keyboard only: Enter on the key opens the record; focus moves to its heading.
        row.FindElement(By.CssSelector("th button")).SendKeys(Keys.Enter);
        browser.WaitUntil(() => browser.Visible("detail") && browser.Element("d-fencing-token").Text == token.ToString(System.Globalization.CultureInfo.InvariantCulture), "the record's detail");
        Assert.Equal("detail-title", browser.Driver.SwitchTo().ActiveElement().GetAttribute("id"));
        Assert.Contains("ends in", browser.Element("d-lease").Text, StringComparison.Ordinal);
        Assert.Equal("none", browser.Element("d-recovery-point").Text);
        Assert.Contains("runs the operation again", browser.Element("release-effect").Text, StringComparison.Ordinal);
        Assert.StartsWith("1 ", browser.Element("d-attempts").Text, StringComparison.Ordinal);
        Assert.StartsWith("None yet", browser.Element("answer-summary").Text, StringComparison.Ordinal);
        Assert.False(browser.Visible("headers-table"));
        browser.Screenshot("04-detail", scrollTo: "detail");

        browser.Element("release-token").SendKeys(token.ToString(System.Globalization.CultureInfo.InvariantCulture) + Keys.Enter);
        browser.WaitUntil(() => browser.Element("release-answer").Text.Contains("Released (204)", StringComparison.Ordinal), "the release's answer");
        browser.WaitUntil(() => browser.Element("d-state").Text.StartsWith("Gone", StringComparison.Ordinal), "the record to show as gone");
        browser.WaitUntil(() => browser.Driver.FindElements(By.CssSelector($"#records-table tr[data-key='{key}']")).Count == 0, "the key to leave the list");
        Assert.False(browser.Visible("release"));
        browser.Screenshot("05-released", scrollTo: "release-answer", block: "end");

        // The client's retry now runs the operation, once; the next is a replay.
        using var retry = await PaymentsServer.PostJsonAsync(tenant, "/accounts", body, key);
        using var replay = await PaymentsServer.PostJsonAsync(tenant, "/accounts", body, key);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(1, await Server.CountAccountsAsync("tenant-a", name));

        // No script error, no CSP violation; everything the page loaded or fetched came from the application itself.
        // The one failed load is expected: the record's detail after the release is the API's 404 (the record is gone).
        Assert.DoesNotContain(browser.ConsoleErrors(), e => !(e.Contains("/admin/idempotency/records/detail?", StringComparison.Ordinal) && e.Contains("status of 404", StringComparison.Ordinal)));
        var urls = browser.LoadedUrls();
        Assert.Contains(urls, url => url.Contains("/admin/idempotency/records/release", StringComparison.Ordinal) is false && url.Contains("/admin/idempotency/records", StringComparison.Ordinal));
        Assert.Contains(urls, url => url.EndsWith("/console.js", StringComparison.Ordinal));
        Assert.All(urls, url => Assert.Equal(Server.Address.GetLeftPart(UriPartial.Authority), new Uri(url).GetLeftPart(UriPartial.Authority)));
    }

    [Fact]
    public async Task Release_TokenTypedWrongOrRecordChangedOrGone_NothingReleasedAndTheApisAnswerInWords()
    {
        var key = "stale-" + Guid.NewGuid().ToString("N")[..8];
        var body = $"{{\"name\":\"erin-{key}\",\"currency\":\"EUR\"}}";
        using var tenant = Server.Client(PaymentsServer.TenantA);
        using var ops = Server.Client(PaymentsServer.Operator);
        var first = await StrandAsync(tenant, key, body);

        browser.Open();
        browser.SignIn(PaymentsServer.Operator);
        WaitForRow(key).FindElement(By.CssSelector("th button")).SendKeys(Keys.Enter);
        browser.WaitUntil(() => browser.Element("d-fencing-token").Text == first.ToString(System.Globalization.CultureInfo.InvariantCulture), "the record's detail");

        // A token other than the one shown is not sent at all.
        browser.Element("release-token").SendKeys("999999" + Keys.Enter);
        browser.WaitUntil(() => browser.Element("release-answer").Text.Contains("Not sent", StringComparison.Ordinal), "the refusal to send");
        Assert.Contains($"is not the fencing token shown ({first})", browser.Element("release-answer").Text, StringComparison.Ordinal);
        Assert.Equal(first, (await LookUpAsync(ops, key))?.GetProperty("fencingToken").GetInt64());

        // The record moves on while the page shows the old token: released and reserved again by someone else.
        await ReleaseAsync(ops, key, first, HttpStatusCode.NoContent);
        var second = await StrandAsync(tenant, key, body);
        Assert.NotEqual(first, second);
        var input = browser.Element("release-token");
        input.Clear();
        input.SendKeys(first.ToString(System.Globalization.CultureInfo.InvariantCulture) + Keys.Enter);
        browser.WaitUntil(() => browser.Element("release-answer").Text.Contains("HTTP status 409", StringComparison.Ordinal), "the stale-token answer");
        var stale = browser.Element("release-answer").Text;
        Assert.StartsWith("Not released: ", stale, StringComparison.Ordinal);
        Assert.Contains($"The record now carries fencing token {second}, not {first}", stale, StringComparison.Ordinal);
        Assert.Contains("idempotency-fencing-token-stale", stale, StringComparison.Ordinal);
        browser.WaitUntil(() => browser.Element("d-fencing-token").Text == second.ToString(System.Globalization.CultureInfo.InvariantCulture), "the detail to show the current token");
        Assert.Equal(second, (await LookUpAsync(ops, key))?.GetProperty("fencingToken").GetInt64());
        browser.Screenshot("06-stale-token", scrollTo: "release-answer", block: "end");

        // Gone before the operator confirms: 404 in words.
        await ReleaseAsync(ops, key, second, HttpStatusCode.NoContent);
        input = browser.Element("release-token");
        input.Clear();
        input.SendKeys(second.ToString(System.Globalization.CultureInfo.InvariantCulture) + Keys.Enter);
        browser.WaitUntil(() => browser.Element("release-answer").Text.Contains("HTTP status 404", StringComparison.Ordinal), "the not-found answer");
        Assert.Contains("Not released: Record not found\nThe record is gone (already released, or expired)", browser.Element("release-answer").Text, StringComparison.Ordinal);
        Assert.Contains("idempotency-record-not-found", browser.Element("release-answer").Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompletedPayment_DetailShowsItsStoredStatusAndHeaders_TheBodyWithheldAndWhy()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var key = "paid-" + suffix;
        using var tenant = Server.Client(PaymentsServer.TenantA);
        var from = await CreateAccountAsync(tenant, "ivy-" + suffix);
        var to = await CreateAccountAsync(tenant, "jack-" + suffix);
        using (var deposit = await PaymentsServer.PostJsonAsync(tenant, $"/accounts/{from}/deposits", "{\"amount\":10000}", "deposit-" + suffix))
        {
            Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        }

        using var payment = await PaymentsServer.PostJsonAsync(tenant, "/payments", $"{{\"from\":\"{from}\",\"to\":\"{to}\",\"amount\":2500,\"currency\":\"EUR\"}}", key);
        Assert.Equal(HttpStatusCode.Created, payment.StatusCode);
        var location = payment.Headers.Location!.OriginalString;

        browser.Open();
        browser.SignIn(PaymentsServer.Operator);
        browser.Element("f-state").SendKeys("Completed"); // keyboard only: typing picks the option
        Assert.Equal("Completed", browser.Element("f-state").GetDomProperty("value"));
        browser.Element("f-operation").SendKeys("POST /payments" + Keys.Enter);
        var row = WaitForRow(key);
        var cells = row.FindElements(By.TagName("td")).Select(c => c.Text).ToList();
        Assert.Equal(["Completed", "1", "POST /payments"], [cells[0], cells[2], cells[4]]);

        row.FindElement(By.CssSelector("th button")).SendKeys(Keys.Enter);
        browser.WaitUntil(() => browser.Visible("detail") && browser.Element("d-key").Text == key && browser.Visible("answer"), "the payment's detail");

        Assert.Equal("201", browser.Element("d-status").Text);
        var summary = browser.Element("answer-summary").Text;
        Assert.StartsWith("Status 201, body ", summary, StringComparison.Ordinal);
        Assert.Contains("Encrypted at rest; decrypted here for operators.", summary, StringComparison.Ordinal);
        var headers = browser.Driver.FindElements(By.CssSelector("#headers-table tbody tr"))
            .Select(r => (r.FindElement(By.TagName("th")).Text, r.FindElement(By.TagName("td")).Text)).ToList();
        Assert.Contains(("Location", location), headers);
        Assert.Contains(headers, h => h.Item1.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) && h.Item2.StartsWith("application/json", StringComparison.Ordinal));
        Assert.Equal("th", browser.Driver.FindElement(By.CssSelector("#headers-table thead th[scope='col']")).TagName);
        Assert.StartsWith("Stored headers, in the order they are replayed:", browser.Element("headers-caption").Text, StringComparison.Ordinal);
        Assert.Contains("ShowStoredBodies", browser.Element("answer-body-note").Text, StringComparison.Ordinal);
        Assert.False(browser.Visible("answer-body"));
        Assert.False(browser.Visible("release"));
        browser.Screenshot("12-completed-detail", scrollTo: "detail");
    }

    [Theory]
    [InlineData(PaymentsServer.TenantA, 403, "07-tenant-key-403")]
    [InlineData("", 401, "08-no-key-401")]
    [InlineData("sk_test_nobody", 401, null)]
    public async Task SignIn_NotAnOperatorKey_NoDataAndTheApisProblemShown(string credential, int status, string? screenshot)
    {
        using var tenant = Server.Client(PaymentsServer.TenantA);
        await StrandAsync(tenant, "hidden-" + Guid.NewGuid().ToString("N")[..8], "{\"name\":\"frank\",\"currency\":\"EUR\"}");

        browser.Open();
        browser.SignIn(credential);
        browser.WaitUntil(() => browser.Visible("problem"), "the API's problem");

        var problem = browser.Element("problem").Text;
        Assert.Contains($"HTTP status {status}", problem, StringComparison.Ordinal);
        Assert.Contains("Not signed in", problem, StringComparison.Ordinal);
        Assert.Contains("Type: https://", problem, StringComparison.Ordinal);
        Assert.False(browser.Visible("records"));
        Assert.False(browser.Visible("overview"));
        Assert.False(browser.Visible("audit"));
        Assert.Empty(browser.Driver.FindElements(By.CssSelector("#records-table tbody tr")));
        Assert.Null(browser.Driver.ExecuteScript("return sessionStorage.getItem('oncely-console-credential');"));
        Assert.Empty(browser.Driver.Manage().Cookies.AllCookies);
        if (screenshot is not null)
        {
            browser.Screenshot(screenshot);
        }
    }

    [Fact]
    public void SignIn_KeptForThisTab_SurvivesAReloadUntilSignOutAndNeverBecomesACookie()
    {
        browser.Open();
        browser.Element("remember").SendKeys(Keys.Space);
        browser.Element("credential").SendKeys(PaymentsServer.Operator + Keys.Enter);
        browser.WaitUntil(() => browser.Visible("records"), "the signed-in console");
        Assert.Equal(PaymentsServer.Operator, browser.Driver.ExecuteScript("return sessionStorage.getItem('oncely-console-credential');"));

        browser.Driver.Navigate().Refresh();
        browser.WaitUntil(() => browser.Visible("records") && browser.Visible("sign-out"), "the console signed in again after the reload");
        Assert.Empty(browser.Driver.Manage().Cookies.AllCookies);

        browser.Element("sign-out").SendKeys(Keys.Enter);
        browser.WaitUntil(() => browser.Visible("signin"), "the sign-in form");
        Assert.False(browser.Visible("records"));
        Assert.Null(browser.Driver.ExecuteScript("return sessionStorage.getItem('oncely-console-credential');"));
        Assert.Equal("credential", browser.Driver.SwitchTo().ActiveElement().GetAttribute("id"));
    }

    [Fact]
    public async Task Audit_KeyReusedWithAnotherPayload_ShownAsTheApiGivesIt()
    {
        var key = "reused-" + Guid.NewGuid().ToString("N")[..8];
        using var tenant = Server.Client(PaymentsServer.TenantA);
        using var ops = Server.Client(PaymentsServer.Operator);
        using (var created = await PaymentsServer.PostJsonAsync(tenant, "/accounts", "{\"name\":\"gina\",\"currency\":\"EUR\"}", key))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        using (var reused = await PaymentsServer.PostJsonAsync(tenant, "/accounts", "{\"name\":\"gina\",\"currency\":\"USD\"}", key))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        }

        var audit = await ops.GetFromJsonAsync<JsonElement>($"/admin/idempotency/audit?key={key}");
        var entry = Assert.Single(audit.GetProperty("entries").EnumerateArray());

        browser.Open();
        browser.SignIn(PaymentsServer.Operator);
        browser.WaitUntil(() => browser.Driver.FindElements(By.XPath($"//table[@id='audit-table']//td[text()='{key}']")).Count == 1, "the audit entry");
        browser.Element("a-key").SendKeys(key + Keys.Enter);
        browser.WaitUntil(() => browser.Driver.FindElements(By.CssSelector("#audit-table tbody tr")).Count == 1, "the audit filtered by key");
        var row = browser.Driver.FindElement(By.CssSelector("#audit-table tbody tr"));
        Assert.Equal(entry.GetProperty("payload").GetString(), row.FindElement(By.CssSelector("td.payload pre")).Text);
        Assert.Equal(key, row.FindElements(By.TagName("td"))[0].Text);
        Assert.NotNull(row.FindElement(By.CssSelector("th[scope='row'] time")).GetAttribute("title"));
        browser.Screenshot("09-audit", scrollTo: "audit");
    }

    [Fact]
    public async Task PhoneWidth_RecordsAndDetail_FitTheScreen()
    {
        var key = "phone-" + Guid.NewGuid().ToString("N")[..8];
        using var tenant = Server.Client(PaymentsServer.TenantA);
        await StrandAsync(tenant, key, $"{{\"name\":\"hal-{key}\",\"currency\":\"EUR\"}}");

        browser.Open(390, 844);
        browser.SignIn(PaymentsServer.Operator);
        var row = WaitForRow(key);
        var width = Convert.ToInt64(browser.Driver.ExecuteScript("return document.documentElement.scrollWidth;"), System.Globalization.CultureInfo.InvariantCulture);
        var viewport = Convert.ToInt64(browser.Driver.ExecuteScript("return document.documentElement.clientWidth;"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(width <= viewport, $"The page is {width} px wide in a {viewport} px viewport: only the tables may scroll sideways.");
        browser.Screenshot("10-phone-records", scrollTo: "records-table");

        row.FindElement(By.CssSelector("th button")).SendKeys(Keys.Enter);
        browser.WaitUntil(() => browser.Visible("detail") && browser.Element("d-key").Text == key, "the record's detail");
        width = Convert.ToInt64(browser.Driver.ExecuteScript("return document.documentElement.scrollWidth;"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(width <= viewport, $"The detail is {width} px wide in a {viewport} px viewport.");
        browser.Screenshot("11-phone-detail", scrollTo: "detail");
    }

    [Fact]
    public async Task Files_StrictCspNosniffNoCookies_RevalidatedByETag()
    {
        using var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false };
        using var client = new HttpClient(handler) { BaseAddress = Server.Address };

        using var bare = await client.GetAsync("/admin/idempotency/console");
        using var page = await client.GetAsync("/admin/idempotency/console/");
        var html = await page.Content.ReadAsStringAsync();
        using var revalidated = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/admin/idempotency/console/") { Headers = { { "If-None-Match", page.Headers.ETag!.Tag } } });
        using var script = await client.GetAsync("/admin/idempotency/console/console.js");
        using var style = await client.GetAsync("/admin/idempotency/console/console.css");
        using var missing = await client.GetAsync("/admin/idempotency/console/secrets.json");

        Assert.Equal(HttpStatusCode.Redirect, bare.StatusCode);
        Assert.Equal("/admin/idempotency/console/", bare.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.NotModified, revalidated.StatusCode);
        Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
        Assert.Equal("text/css", style.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        foreach (var answer in new[] { page, script, style })
        {
            Assert.Equal(ConsoleCsp, Assert.Single(answer.Headers.GetValues("Content-Security-Policy")));
            Assert.Equal("nosniff", Assert.Single(answer.Headers.GetValues("X-Content-Type-Options")));
            Assert.Equal("no-cache", answer.Headers.CacheControl!.ToString());
            Assert.False(answer.Headers.Contains("Set-Cookie"));
        }

        // No inline script or style, nothing from another origin; the page learns the API's address and credential header.
        Assert.DoesNotMatch(InlineScript(), html);
        Assert.DoesNotContain("<style", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(" style=", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotMatch(ExternalUrl(), html);
        Assert.Contains("<meta name=\"oncely-api\" content=\"/admin/idempotency\">", html, StringComparison.Ordinal);
        Assert.Contains("<meta name=\"oncely-credential-header\" content=\"Authorization\">", html, StringComparison.Ordinal);
        Assert.Contains("<meta name=\"oncely-credential-scheme\" content=\"Bearer\">", html, StringComparison.Ordinal);
    }

    [GeneratedRegex("<script(?![^>]*\\bsrc=)[^>]*>", RegexOptions.IgnoreCase)]
    private static partial Regex InlineScript();

    [GeneratedRegex("(src|href)=\"(https?:)?//", RegexOptions.IgnoreCase)]
    private static partial Regex ExternalUrl();

    private IWebElement WaitForRow(string key)
    {
        browser.WaitUntil(() => browser.Driver.FindElements(By.CssSelector($"#records-table tr[data-key='{key}']")).Count == 1, $"the row of {key}");
        return browser.Driver.FindElement(By.CssSelector($"#records-table tr[data-key='{key}']"));
    }

    private int ChartValue(string chart, string label)
        => int.Parse(browser.Driver.FindElement(By.CssSelector($"#{chart} g.bar[data-label='{label}']")).GetAttribute("data-value")!, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Leaves the tenant's POST /accounts record for the key InProgress (the sample's Development route); its fencing token.</summary>
    private static async Task<long> StrandAsync(HttpClient tenant, string key, string body)
    {
        using var stranded = await PaymentsServer.PostJsonAsync(tenant, $"{StuckRoute}?key={key}", body);
        Assert.Equal(HttpStatusCode.Created, stranded.StatusCode);
        return (await stranded.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("fencingToken").GetInt64();
    }

    private static async Task<string> CreateAccountAsync(HttpClient tenant, string name)
    {
        using var created = await PaymentsServer.PostJsonAsync(tenant, "/accounts", $"{{\"name\":\"{name}\",\"currency\":\"EUR\"}}", "account-" + name);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement?> LookUpAsync(HttpClient ops, string key)
    {
        var found = await ops.GetFromJsonAsync<JsonElement>($"/admin/idempotency/records?tenant=tenant-a&key={key}");
        var records = found.GetProperty("records").EnumerateArray().ToList();
        return records.Count == 0 ? null : records[0];
    }

    private static async Task ReleaseAsync(HttpClient ops, string key, long token, HttpStatusCode expected)
    {
        using var released = await ops.PostAsJsonAsync("/admin/idempotency/records/release", new { tenant = "tenant-a", operation = "POST /accounts", key, fencingToken = token });
        Assert.Equal(expected, released.StatusCode);
    }
}
