namespace Payments.Payouts;

/// <summary>
/// "Move <see cref="Amount"/> from <see cref="From"/> to <see cref="To"/>", published by another service (a scheduler, a
/// back office). The tenant travels in the <see cref="PayoutMessaging.TenantHeader"/> header; the envelope's MessageId is
/// the idempotency key, so every redelivery and every duplicate publish of one request carries the same id.
/// </summary>
public sealed record PayoutRequested(string From, string To, long Amount, string Currency, string? Reference);
