namespace Payments.Ledger;

/// <summary>A payment provider's settlement, credited to one of our accounts.</summary>
/// <param name="Id">Our id for the settlement (<c>stl_…</c>).</param>
/// <param name="Provider">The provider that reported it (the webhook's verified sender).</param>
/// <param name="ProviderPayment">The provider's id of the payment that settled.</param>
/// <param name="AccountId">The account credited.</param>
/// <param name="Amount">Minor units credited.</param>
/// <param name="Currency">ISO 4217 code.</param>
/// <param name="Balance">The account's balance after the credit.</param>
/// <param name="CreatedAt">When it was booked.</param>
public sealed record Settlement(string Id, string Provider, string ProviderPayment, string AccountId, long Amount, string Currency, long Balance, DateTimeOffset CreatedAt);

public sealed partial class LedgerWrite
{
    /// <summary>
    /// The <c>settlements</c> table, created after the ledger's own tables. Deliberately without a UNIQUE constraint on the
    /// provider's payment id: the sample shows what Oncely alone guarantees (the demo counts the rows per payment).
    /// </summary>
    public static readonly IReadOnlyList<string> SettlementSchema =
    [
        """
        CREATE TABLE IF NOT EXISTS settlements (
            id               TEXT   NOT NULL PRIMARY KEY,
            provider         TEXT   NOT NULL,
            provider_payment TEXT   NOT NULL,
            account_id       TEXT   NOT NULL REFERENCES accounts (id),
            amount           BIGINT NOT NULL CHECK (amount > 0),
            currency         TEXT   NOT NULL,
            created_at       BIGINT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS settlements_provider_payment ON settlements (provider, provider_payment)",
    ];

    /// <summary>
    /// Credits a settled card payment to <paramref name="accountId"/> (whichever tenant holds it: the provider names our
    /// account), debiting the currency's external funding account, and records the settlement.
    /// </summary>
    public async Task<LedgerResult<Settlement>> SettleAsync(string provider, string providerPayment, string accountId, long amount, string currency, CancellationToken cancellationToken)
    {
        string? held;
        await using (var command = Sql.Command(_connection, Transaction, "SELECT currency FROM accounts WHERE id = @id AND kind = 'customer'" + _dialect.LockRows, ("@id", accountId)))
        {
            held = await command.ExecuteScalarAsync(cancellationToken) as string;
        }

        if (held is null)
        {
            return LedgerResult<Settlement>.Refused(LedgerRefusal.AccountNotFound, $"There is no account '{accountId}'.");
        }

        if (held != currency)
        {
            return LedgerResult<Settlement>.Refused(LedgerRefusal.CurrencyMismatch, $"The settlement is in {currency}, but account '{accountId}' holds {held}.");
        }

        var external = ExternalAccountId(currency);
        var now = Now();
        await ExecuteAsync(
            "INSERT INTO accounts (id, tenant, name, currency, kind, balance, created_at) VALUES (@id, '_system', @name, @currency, 'external', 0, @now) ON CONFLICT (id) DO NOTHING",
            cancellationToken,
            ("@id", external),
            ("@name", $"External funding {currency}"),
            ("@currency", currency),
            ("@now", now));
        var id = NewId("stl");
        await ExecuteAsync(
            "INSERT INTO settlements (id, provider, provider_payment, account_id, amount, currency, created_at) VALUES (@id, @provider, @payment, @account, @amount, @currency, @now)",
            cancellationToken,
            ("@id", id),
            ("@provider", provider),
            ("@payment", providerPayment),
            ("@account", accountId),
            ("@amount", amount),
            ("@currency", currency),
            ("@now", now));
        await MoveAsync(id, external, accountId, amount, currency, now, cancellationToken);
        var balance = await BalanceAsync(accountId, cancellationToken);
        return new(new Settlement(id, provider, providerPayment, accountId, amount, currency, balance, DateTimeOffset.FromUnixTimeMilliseconds(now)), LedgerRefusal.None);
    }
}
