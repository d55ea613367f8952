namespace Payouts.Contracts;

/// <summary>
/// The payout message of docs/messages.md's worker, declared under the page's namespace and name, so MassTransit gives
/// both the same message type (<c>urn:message:Payouts.Contracts:PayoutRequested</c>) and the worker consumes what the test sends.
/// </summary>
public sealed record PayoutRequested(string Account, long Amount);
