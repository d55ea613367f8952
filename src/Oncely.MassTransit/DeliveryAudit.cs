using System.Collections.Concurrent;

namespace Oncely.MassTransit;

/// <summary>
/// The key-reuse refusals already audited for one delivery: a payload of its <c>ReceiveContext</c>, which every retry
/// attempt of that delivery shares (in-memory message retry wraps the consume context, never the receive context). A
/// refusal met on any attempt is audited once; a later attempt of the same delivery that meets it again adds nothing.
/// A redelivery by the broker is a new delivery and is audited again.
/// </summary>
internal sealed class DeliveryAudit
{
    private readonly ConcurrentDictionary<IdempotencyRecordId, bool> _audited = new();

    /// <summary>Whether the refusal of <paramref name="id"/> was audited for this delivery.</summary>
    /// <param name="id">The refused record.</param>
    /// <returns><see langword="true"/> once <see cref="Audited"/> was called for it.</returns>
    public bool Contains(IdempotencyRecordId id) => _audited.ContainsKey(id);

    /// <summary>Notes that the refusal of <paramref name="id"/> is audited.</summary>
    /// <param name="id">The refused record.</param>
    public void Audited(IdempotencyRecordId id) => _audited.TryAdd(id, true);
}
