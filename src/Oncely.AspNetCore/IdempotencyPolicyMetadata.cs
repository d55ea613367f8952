namespace Oncely.AspNetCore;

/// <summary>The named policy an endpoint asks for (added by the policy overloads of the conventions).</summary>
internal sealed class IdempotencyPolicyMetadata(string policyName)
{
    public string PolicyName { get; } = policyName;
}
