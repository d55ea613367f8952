using Microsoft.AspNetCore.Mvc;

namespace Oncely.AspNetCore;

/// <summary>Serialises problem details without reflection when no problem-details service writes them.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(ProblemDetails))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class ProblemJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
