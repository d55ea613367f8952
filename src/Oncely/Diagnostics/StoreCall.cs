namespace Oncely;

/// <summary>A store call, as named in spans (<c>oncely.store.reserve</c>) and in <see cref="IdempotencyDiagnostics.StoreOperationTag"/>.</summary>
internal sealed class StoreCall
{
    public static readonly StoreCall Reserve = new("reserve");
    public static readonly StoreCall Get = new("get");
    public static readonly StoreCall Complete = new("complete");
    public static readonly StoreCall Release = new("release");
    public static readonly StoreCall RenewLease = new("renew_lease");
    public static readonly StoreCall SetRecoveryPoint = new("set_recovery_point");
    public static readonly StoreCall ReserveInTransaction = new("reserve_in_transaction");
    public static readonly StoreCall CompleteInTransaction = new("complete_in_transaction");
    public static readonly StoreCall SetRecoveryPointInTransaction = new("set_recovery_point_in_transaction");
    public static readonly StoreCall AppendAudit = new("append_audit");

    private StoreCall(string name)
    {
        Name = name;
        ActivityName = IdempotencyDiagnostics.StoreActivityPrefix + name;
    }

    public string Name { get; }

    public string ActivityName { get; }
}
