namespace Oncely.AspNetCore;

/// <summary>Added by <c>WithIdempotencyOperation(…)</c>: the operation the endpoint's records are kept under.</summary>
internal sealed class IdempotencyOperationMetadata(string operation)
{
    public string Operation { get; } = operation;
}
