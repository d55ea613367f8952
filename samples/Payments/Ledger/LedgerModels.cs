namespace Payments.Ledger;

public sealed record Account(string Id, string Name, string Currency, long Balance);

public sealed record Payment(string Id, string From, string To, long Amount, string Currency, string Status, string? Reference, DateTimeOffset CreatedAt);

public sealed record Deposit(string Id, string AccountId, long Amount, string Currency, long Balance, DateTimeOffset CreatedAt);

/// <summary>Why a money movement was refused. Nothing was written when it is anything but <see cref="None"/>.</summary>
public enum LedgerRefusal
{
    None,
    AccountNotFound,
    CurrencyMismatch,
    InsufficientFunds,
}

public readonly record struct LedgerResult<T>(T? Value, LedgerRefusal Refusal, string? Detail = null)
    where T : class
{
    public static LedgerResult<T> Refused(LedgerRefusal refusal, string detail) => new(null, refusal, detail);
}

/// <summary>The ledger's invariants, measured.</summary>
/// <param name="SumByCurrency">The sum of all entries per currency: every one must be 0 (double entry).</param>
/// <param name="NegativeBalances">Customer accounts below zero: must be 0.</param>
/// <param name="BalancesNotMatchingEntries">Accounts whose balance differs from the sum of their entries: must be 0.</param>
/// <param name="UnbalancedTransactions">Payments or deposits whose entries do not sum to zero: must be 0.</param>
public sealed record LedgerCheck(IReadOnlyDictionary<string, long> SumByCurrency, long NegativeBalances, long BalancesNotMatchingEntries, long UnbalancedTransactions)
{
    public bool IsBalanced => SumByCurrency.Values.All(sum => sum == 0) && NegativeBalances == 0 && BalancesNotMatchingEntries == 0 && UnbalancedTransactions == 0;

    public override string ToString() => IsBalanced
        ? $"balanced ({string.Join(", ", SumByCurrency.Select(c => $"{c.Key} entries sum {c.Value}"))}; no negative balance; balances = entry sums)"
        : $"BROKEN (sums {string.Join(", ", SumByCurrency.Select(c => $"{c.Key}={c.Value}"))}; {NegativeBalances} negative; {BalancesNotMatchingEntries} balances off; {UnbalancedTransactions} unbalanced transactions)";
}

/// <summary>Payments grouped by the client's reference: how many rows and how much money each reference produced.</summary>
public sealed record ReferenceTotal(string Reference, long Payments, long Amount);
