namespace Oncely;

/// <summary>
/// Identifies one idempotency record: the scope <c>(tenant, operation)</c> plus the client's key.
/// Stores keep at most one live record per id (a UNIQUE constraint on exactly this triple).
/// </summary>
/// <param name="Tenant">
/// Who is calling, for example the authenticated principal's id. The empty string (<see cref="AnonymousTenant"/>) is the shared anonymous
/// scope of endpoints that opt into it: every store keeps it as a tenant of its own, distinct from every other (including
/// the text <c>anonymous</c>).
/// </param>
/// <param name="Operation">What is being done, for example <c>POST /accounts/{id}/payments</c> (method plus route pattern).</param>
/// <param name="Key">The client's idempotency key, already validated.</param>
public readonly record struct IdempotencyRecordId(string Tenant, string Operation, string Key)
{
    /// <summary>
    /// The tenant of the one scope shared by unauthenticated callers: the empty string. Tenant resolvers never produce it
    /// (an empty tenant is refused), so no real tenant id can ever equal it.
    /// </summary>
    public const string AnonymousTenant = "";

    /// <summary>
    /// The id for messages (Oncely's exceptions quote it): <c>tenant | operation | key</c>, with every card number in them
    /// masked (see <see cref="PrimaryAccountNumberRedactor"/>). Not an identity: two ids may print alike.
    /// </summary>
    /// <returns>The text.</returns>
    public override string ToString() => PrimaryAccountNumbers.Mask($"{Tenant} | {Operation} | {Key}");
}
