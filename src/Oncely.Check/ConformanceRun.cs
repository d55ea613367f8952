using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Oncely.Check;

/// <summary>
/// Runs the checks against one endpoint, in a fixed order, and judges each from the answers (and, with
/// <c>--effects-url</c>, from the number of effects the server says it performed).
/// </summary>
internal sealed class ConformanceRun(CheckSettings settings, CheckPlan plan, Probe probe, TimeProvider clock)
{
    private readonly List<CheckResult> _results = [];

    public async Task<CheckReport> RunAsync(CancellationToken cancellationToken)
    {
        var started = clock.GetUtcNow();
        var timer = Stopwatch.StartNew();

        var before = await ReadEffectsAsync("before the retry", cancellationToken).ConfigureAwait(false);
        var first = await probe.SendAsync(plan.RetryFirst, cancellationToken).ConfigureAwait(false);
        var afterFirst = await ReadEffectsAsync("after retry #1", cancellationToken).ConfigureAwait(false);
        var second = await probe.SendAsync(plan.RetrySecond, cancellationToken).ConfigureAwait(false);
        var afterSecond = await ReadEffectsAsync("after retry #2", cancellationToken).ConfigureAwait(false);
        JudgeRetry(first, second, before, afterFirst, afterSecond);

        Exchange? other = null;
        if (plan.OtherBody is not null)
        {
            other = await probe.SendAsync(plan.OtherBody, cancellationToken).ConfigureAwait(false);
        }

        var afterOther = await ReadEffectsAsync("after the other body", cancellationToken).ConfigureAwait(false);
        JudgeOtherBody(first, other, afterSecond, afterOther);

        var copies = await Task.WhenAll(plan.Concurrent.Select(request => probe.SendAsync(request, cancellationToken))).ConfigureAwait(false);
        var afterConcurrent = await ReadEffectsAsync("after the concurrent copies", cancellationToken).ConfigureAwait(false);
        JudgeConcurrent(first, second, copies, afterOther, afterConcurrent);

        var missing = await probe.SendAsync(plan.MissingKey, cancellationToken).ConfigureAwait(false);
        var afterMissing = await ReadEffectsAsync("after the request without a key", cancellationToken).ConfigureAwait(false);
        JudgeMissingKey(missing, afterConcurrent, afterMissing);

        var longKey = await probe.SendAsync(plan.LongKey, cancellationToken).ConfigureAwait(false);
        JudgeLongKey(first, longKey);
        var overlong = await probe.SendAsync(plan.OverlongKey, cancellationToken).ConfigureAwait(false);
        JudgeOverlongKey(overlong);
        var control = await probe.SendAsync(plan.ControlCharacterKey, cancellationToken).ConfigureAwait(false);
        JudgeMalformed("key-control-characters", "A key with a control character is refused", "2.1, 5", control,
            "a key with a control character is not a structured-field string (RFC 8941, Section 3.3.3)");
        var conflicting = await probe.SendAsync(plan.ConflictingKeys, cancellationToken).ConfigureAwait(false);
        JudgeMalformed("conflicting-key-fields", "Two conflicting key fields are refused", "2.1", conflicting,
            "two values are not the one String item the header must be, and the server cannot know which key the client meant");

        Exchange? secondCaller = null;
        if (plan.SecondCaller is not null)
        {
            secondCaller = await probe.SendAsync(plan.SecondCaller, cancellationToken).ConfigureAwait(false);
        }

        JudgeSecondCaller(first, second, longKey, secondCaller);
        JudgeProblemJson([other, .. copies, missing, longKey, overlong, control, conflicting, secondCaller]);
        JudgeNoServerErrors(probe.Exchanges);

        return new CheckReport(settings.Url, settings.Method.Method, started, timer.Elapsed, probe.Sent, settings.OtherBodyChange, [.. _results]);
    }

    private async Task<long?> ReadEffectsAsync(string label, CancellationToken cancellationToken)
    {
        if (plan.EffectsRead(label) is not { } read)
        {
            return null;
        }

        var answer = await probe.SendAsync(read, cancellationToken).ConfigureAwait(false);
        if (!answer.IsSuccess)
        {
            throw new CheckAbortedException($"--effects-url answered {answer.StatusText}: give a GET that answers 200 with a number or a JSON array.");
        }

        return ParseEffects(answer.Body) ?? throw new CheckAbortedException(
            "--effects-url did not answer a number or a JSON array: " + Text.Abbreviate(Text.Visible(Encoding.UTF8.GetString(answer.Body)), 80));
    }

    internal static long? ParseEffects(byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind switch
            {
                JsonValueKind.Number when document.RootElement.TryGetInt64(out var count) => count,
                JsonValueKind.Array => document.RootElement.GetArrayLength(),
                JsonValueKind.String when long.TryParse(document.RootElement.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var count) => count,
                _ => null,
            };
        }
        catch (JsonException)
        {
            return long.TryParse(Encoding.UTF8.GetString(body).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var count) ? count : null;
        }
    }

    private void JudgeRetry(Exchange first, Exchange second, long? before, long? afterFirst, long? afterSecond)
    {
        var problems = new List<string>();
        var notes = new List<string>();
        if (!first.Answered || !second.Answered)
        {
            problems.Add("a request got no answer");
        }
        else
        {
            if (first.Status != second.Status)
            {
                problems.Add(Text.Invariant($"the status changed: {first.Status} then {second.Status}"));
            }

            if (!first.Body.AsSpan().SequenceEqual(second.Body))
            {
                problems.Add(Text.Invariant($"the body is not byte-identical ({first.Body.Length} B then {second.Body.Length} B{FirstDifference(first.Body, second.Body)})"));
            }

            foreach (var name in (string[])["Location", "ETag", "Content-Type"])
            {
                if (first.Header(name) != second.Header(name))
                {
                    problems.Add($"{name} changed: {Shown(first.Header(name))} then {Shown(second.Header(name))}");
                }
            }

            if (!first.IsSuccess)
            {
                notes.Add(Text.Invariant($"the first answer is {first.StatusText}, not a success: check --header (credentials) and --body, the other checks are weaker for it"));
            }

            notes.Add(second.ReplayMarker is { } marker
                ? $"replay marker: {marker.Name}: {marker.Value}"
                : "no replay marker header on the retry (Idempotent-Replayed is a common one; optional)");
        }

        if (Delta(before, afterFirst) is { } executed && Delta(afterFirst, afterSecond) is { } again)
        {
            if (again != 0)
            {
                problems.Add(Text.Invariant($"the retry performed {again} more effect(s) (effects {afterFirst} → {afterSecond})"));
            }

            notes.Add(Text.Invariant($"effects: {before} → {afterFirst} after the first request, {afterSecond} after the retry"));
            if (executed != 1 && first.IsSuccess)
            {
                notes.Add(Text.Invariant($"the first request performed {executed} effects, not 1: does --effects-url count this operation?"));
            }
        }

        Add("retry-replays", "A retry with the same key and body gets the first answer", "2.6",
            problems.Count > 0 ? CheckOutcome.Fail : first.IsSuccess ? CheckOutcome.Pass : CheckOutcome.Warning,
            problems.Count > 0
                ? "The retry was not answered with the first answer: " + string.Join("; ", problems) + "."
                : "Same status, byte-identical body, same Location, ETag and Content-Type.",
            [.. notes, Describe(first), Describe(second)]);
    }

    private void JudgeOtherBody(Exchange first, Exchange? other, long? before, long? after)
    {
        const string id = "other-body-refused";
        const string title = "The same key with another body is refused (422)";
        if (other is null)
        {
            Add(id, title, "2.2, 2.7", CheckOutcome.Skipped,
                "No other payload: the body is not JSON with a number or a string to change; give --other-body.", []);
            return;
        }

        var change = settings.OtherBodyChange is { } said ? "changed " + said : "the --other-body payload";
        var effects = Delta(before, after);
        var evidence = new List<string> { change, Describe(other) };
        if (effects is { } count)
        {
            evidence.Insert(1, Text.Invariant($"effects: {before} → {after}"));
        }

        CheckOutcome outcome;
        string summary;
        if (effects is > 0)
        {
            outcome = CheckOutcome.Fail;
            summary = Text.Invariant($"The reused key with another body performed {effects} effect(s): a client bug became a second operation.");
        }
        else if (!other.Answered || other.IsServerError)
        {
            outcome = CheckOutcome.Fail;
            summary = Text.Invariant($"Answered {other.StatusText}: a reused key must be refused with a 4xx, not an error.");
        }
        else if (other.IsSuccess || other.Status is >= 300 and < 400)
        {
            outcome = CheckOutcome.Fail;
            summary = first.Body.AsSpan().SequenceEqual(other.Body)
                ? Text.Invariant($"Answered {other.StatusText} with the first payload's answer: the change was silently ignored instead of refused.")
                : Text.Invariant($"Answered {other.StatusText}: the other payload was accepted under a key already used.");
        }
        else if (other.Status == 422)
        {
            outcome = CheckOutcome.Pass;
            summary = "Refused with 422, as the draft recommends.";
        }
        else
        {
            outcome = CheckOutcome.Warning;
            summary = other.Status == 409
                ? "Refused with 409, not the draft's 422; many clients (Stripe's SDKs among them) retry every 409 automatically, so a reused key may loop."
                : Text.Invariant($"Refused with {other.StatusText}, not the draft's 422.");
        }

        Add(id, title, "2.2, 2.7", outcome, summary, evidence);
    }

    private void JudgeConcurrent(Exchange first, Exchange second, Exchange[] copies, long? before, long? after)
    {
        // Any 2xx is an answer (some servers replay a 201 as 200: retry-replays reports that); 409 is "in progress".
        var answers = copies.Where(copy => copy.IsSuccess || (first.Answered && copy.Status == first.Status && copy.Status != 409)).ToList();
        var inProgress = copies.Where(copy => copy.Status == 409).ToList();
        var others = copies.Except(answers).Except(inProgress).ToList();
        var problems = new List<string>();
        var notes = new List<string>
        {
            Text.Invariant($"{copies.Length} copies of one key sent at once: {answers.Count} answered {string.Join("/", answers.Select(answer => answer.Status).Distinct())}, {inProgress.Count} answered 409, {others.Count} other"),
        };

        var distinct = answers.Select(answer => Convert.ToHexString(answer.Body)).Distinct(StringComparer.Ordinal).Count();
        if (answers.Count == 0)
        {
            problems.Add("no copy got the operation's answer");
        }

        if (distinct > 1)
        {
            problems.Add(Text.Invariant($"{distinct} different answer bodies: the operation ran more than once"));
        }

        var markerKnown = second.SaysReplayed;
        if (markerKnown)
        {
            var fresh = answers.Count(answer => !answer.SaysReplayed);
            notes.Add(Text.Invariant($"{fresh} fresh answer(s) and {answers.Count - fresh} marked as replays"));
            if (fresh != 1 && answers.Count > 0)
            {
                problems.Add(Text.Invariant($"{fresh} fresh answers (without the replay marker), not exactly one"));
            }
        }

        foreach (var other in others)
        {
            problems.Add(Text.Invariant($"{other.Request.Label} answered {other.StatusText}: expected the answer, a replay or 409 with Retry-After"));
        }

        var withoutRetryAfter = inProgress.Count(conflict => conflict.Header("Retry-After") is null);
        if (Delta(before, after) is { } effects)
        {
            notes.Add(Text.Invariant($"effects: {before} → {after}"));
            if (effects != 1)
            {
                problems.Add(Text.Invariant($"{effects} effects performed, not exactly one"));
            }
        }

        CheckOutcome outcome;
        string summary;
        if (problems.Count > 0)
        {
            outcome = CheckOutcome.Fail;
            summary = "Concurrent duplicates were not held to one execution: " + string.Join("; ", problems) + ".";
        }
        else if (withoutRetryAfter > 0)
        {
            outcome = CheckOutcome.Warning;
            summary = Text.Invariant($"One execution, but {withoutRetryAfter} 409 answer(s) lack Retry-After: clients cannot tell when to retry.");
        }
        else if (after is null && !markerKnown)
        {
            outcome = CheckOutcome.Pass;
            summary = "All answers are byte-identical and the rest 409 with Retry-After; executions were not counted (give --effects-url to count them).";
        }
        else
        {
            outcome = CheckOutcome.Pass;
            summary = "Exactly one execution; the other copies were replays or 409 with Retry-After.";
        }

        var shown = copies.OrderBy(copy => copy.SaysReplayed).ThenBy(copy => copy.Status).Take(4).Select(Describe).ToList();
        if (copies.Length > shown.Count)
        {
            shown.Add(Text.Invariant($"… {copies.Length - shown.Count} more"));
        }

        Add("concurrent-duplicates", "Concurrent copies of one key execute once", "2.6, 2.7", outcome, summary, [.. notes, .. shown]);
    }

    private void JudgeMissingKey(Exchange missing, long? before, long? after)
    {
        var evidence = new List<string> { Describe(missing) };
        if (Delta(before, after) is { } effects)
        {
            evidence.Insert(0, Text.Invariant($"effects: {before} → {after}"));
        }

        var (outcome, summary) = missing switch
        {
            { Answered: false } or { IsServerError: true } => (CheckOutcome.Fail, Text.Invariant($"Answered {missing.StatusText}: a request without a key must get a clear answer, never a server error.")),
            { Status: 400 } => (CheckOutcome.Pass, "Refused with 400: the endpoint requires a key."),
            { IsSuccess: true } => (CheckOutcome.Warning, Text.Invariant($"Executed without a key ({missing.StatusText}): the key is optional here, so a client that forgets it gets no protection on retry.")),
            _ => (CheckOutcome.Warning, Text.Invariant($"Refused with {missing.StatusText}, not the draft's 400.")),
        };
        Add("missing-key", "A request without a key is refused with 400", "2.7", outcome, summary, evidence);
    }

    private void JudgeLongKey(Exchange first, Exchange longKey)
    {
        var (outcome, summary) = longKey switch
        {
            { Answered: false } or { IsServerError: true } => (CheckOutcome.Fail, Text.Invariant($"Answered {longKey.StatusText} to a {CheckPlan.LongKeyLength}-character key: never a server error.")),
            _ when longKey.Status == first.Status || longKey.IsSuccess => (CheckOutcome.Pass, Text.Invariant($"A {CheckPlan.LongKeyLength}-character key was accepted.")),
            _ => (CheckOutcome.Warning, Text.Invariant($"A {CheckPlan.LongKeyLength}-character key was refused ({longKey.StatusText}); the draft sets no maximum and common clients send up to {CheckPlan.LongKeyLength}: publish the limit.")),
        };
        Add("key-255-accepted", Text.Invariant($"A {CheckPlan.LongKeyLength}-character key is accepted"), "2.1, 2.2", outcome, summary, [Describe(longKey)]);
    }

    private void JudgeOverlongKey(Exchange overlong)
    {
        var (outcome, summary) = overlong switch
        {
            { Answered: false } or { IsServerError: true } => (CheckOutcome.Fail, Text.Invariant($"Answered {overlong.StatusText} to a {CheckPlan.LongKeyLength + 1}-character key: an overlong key must be refused with 400, never a server error.")),
            { Status: 400 } => (CheckOutcome.Pass, "Refused with 400."),
            { IsClientError: true } => (CheckOutcome.Warning, Text.Invariant($"Refused with {overlong.StatusText} rather than 400.")),
            _ => (CheckOutcome.Warning, Text.Invariant($"Accepted a {CheckPlan.LongKeyLength + 1}-character key ({overlong.StatusText}): keys without a published, enforced format are a storage and injection risk (Section 5).")),
        };
        Add("key-overlong-refused", "An overlong key is refused with 400", "5", outcome, summary, [Describe(overlong)]);
    }

    private void JudgeMalformed(string id, string title, string section, Exchange answer, string why)
    {
        var (outcome, summary) = answer switch
        {
            { Answered: false } => (CheckOutcome.Warning, "The connection ended without an answer: refused, but not with a clear 400."),
            { IsServerError: true } => (CheckOutcome.Fail, Text.Invariant($"Answered {answer.StatusText}: {why}; it must be refused with 400, never a server error.")),
            { Status: 400 } => (CheckOutcome.Pass, "Refused with 400."),
            { IsClientError: true } => (CheckOutcome.Warning, Text.Invariant($"Refused with {answer.StatusText} rather than 400.")),
            _ => (CheckOutcome.Fail, Text.Invariant($"Accepted ({answer.StatusText}): {why}.")),
        };
        Add(id, title, section, outcome, summary, [Describe(answer)]);
    }

    private void JudgeSecondCaller(Exchange first, Exchange second, Exchange longKey, Exchange? caller)
    {
        const string id = "caller-isolation";
        const string title = "Another caller reusing the key never receives the first caller's answer";
        if (caller is null)
        {
            Add(id, title, "5", CheckOutcome.Skipped, "Not run: give --second-header with a second caller's credentials (another tenant).", []);
            return;
        }

        // Two fresh executions that answer the same bytes (no id, no timestamp) make a body comparison meaningless.
        var bodiesTell = !(longKey.IsSuccess && first.IsSuccess && longKey.Body.AsSpan().SequenceEqual(first.Body));
        var sameBody = caller.Answered && caller.Body.AsSpan().SequenceEqual(first.Body);
        var (outcome, summary) = caller switch
        {
            { Answered: false } or { IsServerError: true } => (CheckOutcome.Fail, Text.Invariant($"Answered {caller.StatusText} to the second caller.")),
            { IsSuccess: true } when caller.SaysReplayed => (CheckOutcome.Fail, "The second caller got a replay under the first caller's key: keys are not scoped by caller, so one caller can read another's answers."),
            { IsSuccess: true } when sameBody && bodiesTell => (CheckOutcome.Fail, "The second caller received the first caller's answer byte for byte: keys are not scoped by caller, so one caller can read another's answers."),
            { IsSuccess: true } when sameBody => (CheckOutcome.Warning, "The second caller's answer equals the first caller's, but so do any two answers of this endpoint and there is no replay marker: cannot tell."),
            { IsSuccess: true } => (CheckOutcome.Pass, "The second caller's request ran on its own: its answer is not the first caller's."),
            { Status: 401 or 403 } => (CheckOutcome.Warning, Text.Invariant($"The second caller was refused ({caller.StatusText}): check the --second-header credentials.")),
            _ => (CheckOutcome.Warning, Text.Invariant($"The second caller was refused ({caller.StatusText}): no answer leaked, but one caller's key blocks another and reveals that the key is in use; scope keys by caller.")),
        };
        Add(id, title, "5", outcome, summary, [Describe(first), Describe(caller)]);
    }

    private void JudgeProblemJson(IEnumerable<Exchange?> candidates)
    {
        var refusals = candidates.OfType<Exchange>().Where(answer => answer.IsClientError).ToList();
        var plain = refusals.Where(answer => !answer.IsProblemJson).ToList();
        var (outcome, summary) = (refusals.Count, plain.Count) switch
        {
            (0, _) => (CheckOutcome.Pass, "No idempotency refusal to look at."),
            (_, 0) => (CheckOutcome.Pass, Text.Invariant($"All {refusals.Count} refusals are application/problem+json.")),
            _ => (CheckOutcome.Warning, Text.Invariant($"{plain.Count} of {refusals.Count} refusals are not application/problem+json: clients cannot read why they were refused.")),
        };
        Add("refusals-problem-json", "Refusals are application/problem+json", "2.7", outcome, summary,
            [.. (plain.Count > 0 ? plain : refusals).Take(6).Select(answer => Text.Invariant($"{answer.Request.Label} → {answer.Status}, Content-Type: {Shown(answer.Header("Content-Type"))}"))]);
    }

    private void JudgeNoServerErrors(IReadOnlyList<Exchange> exchanges)
    {
        var errors = exchanges.Where(exchange => exchange.IsServerError).ToList();
        Add("no-server-errors", "No request in the run gets a 5xx", "2.7",
            errors.Count == 0 ? CheckOutcome.Pass : CheckOutcome.Fail,
            errors.Count == 0
                ? Text.Invariant($"None of the {exchanges.Count} requests got a 5xx.")
                : Text.Invariant($"{errors.Count} of {exchanges.Count} requests got a 5xx: a client cannot tell whether the operation ran."),
            [.. errors.Take(6).Select(Describe)]);
    }

    private static long? Delta(long? before, long? after) => before is { } b && after is { } a ? a - b : null;

    private static string Shown(string? value) => value is null ? "(none)" : Text.Abbreviate(Text.Visible(value), 60);

    private static string FirstDifference(byte[] a, byte[] b)
    {
        var at = a.AsSpan().CommonPrefixLength(b);
        return Text.Invariant($", first difference at byte {at}");
    }

    private string Describe(Exchange exchange) => exchange.Describe(settings);

    private void Add(string id, string title, string section, CheckOutcome outcome, string summary, IReadOnlyList<string> evidence)
        => _results.Add(new CheckResult(id, title, section, outcome, summary, evidence));
}
