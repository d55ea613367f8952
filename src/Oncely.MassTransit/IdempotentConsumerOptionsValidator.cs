using Microsoft.Extensions.Options;

namespace Oncely.MassTransit;

internal sealed class IdempotentConsumerOptionsValidator : IValidateOptions<IdempotentConsumerOptions>
{
    public ValidateOptionsResult Validate(string? name, IdempotentConsumerOptions options)
    {
        var problems = options.Validate();
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
