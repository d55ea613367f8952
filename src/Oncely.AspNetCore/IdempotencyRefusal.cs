namespace Oncely.AspNetCore;

/// <summary>
/// One refusal of the decision table: the row it answers, its status, its problem type and title. The detail sentence,
/// which often names the request or a limit, comes from <see cref="IdempotencyRefusals"/> (or, for rows 2 and 4, from the
/// endpoint's <see cref="IdempotencyKeySource"/>). The middleware answers with these, and the OpenAPI transformer documents
/// these, so both say the same thing.
/// </summary>
/// <param name="Row">The decision-table row (<c>docs/decision-table.md</c>), for example <c>"2"</c> or <c>"9a"</c>.</param>
/// <param name="Status">
/// The status answered; for row 8 the default of <see cref="IdempotencyOptions.KeyReusedStatusCode"/>, for row 19 the
/// usual one (the server chooses, <c>408</c> for a stalled body).
/// </param>
/// <param name="ProblemType">The problem type, appended to <see cref="IdempotencyOptions.ProblemTypeBaseUri"/>.</param>
/// <param name="Title">The problem's title.</param>
internal sealed record IdempotencyRefusal(string Row, int Status, string ProblemType, string Title);
