using Microsoft.Extensions.Options;

namespace Oncely;

/// <summary>Refuses, when the host starts, <see cref="IdempotencyMaintenanceOptions"/> that <see cref="IdempotencyMaintenanceOptions.Validate"/> finds wrong.</summary>
internal sealed class IdempotencyMaintenanceOptionsValidator : IValidateOptions<IdempotencyMaintenanceOptions>
{
    public ValidateOptionsResult Validate(string? name, IdempotencyMaintenanceOptions options)
    {
        var problems = options.Validate();
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
