using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Oncely.Check;

/// <summary>
/// The default <c>--other-body</c>: the body with one JSON value changed, so the same key meets a different payload.
/// The first number (in document order) is incremented by one; failing that, the first string gets <c>-other</c>
/// appended. A body that is not JSON, or has neither, yields nothing (the check is then skipped and says why).
/// </summary>
internal static class OtherBody
{
    public static (byte[] Body, string Change)? Derive(byte[] body)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(body);
        }
        catch (JsonException)
        {
            return null;
        }

        if (root is null)
        {
            return null;
        }

        var change = ChangeFirst(root, "$", numbers: true) ?? ChangeFirst(root, "$", numbers: false);
        return change is null ? null : (Encoding.UTF8.GetBytes(root.ToJsonString()), change);
    }

    private static string? ChangeFirst(JsonNode node, string path, bool numbers)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (name, child) in obj.ToList())
                {
                    if (child is JsonValue value && TryChange(value, numbers, out var replacement, out var was))
                    {
                        obj[name] = replacement;
                        return $"{path}.{name}: {was} → {replacement.ToJsonString()}";
                    }

                    if (child is not null && ChangeFirst(child, $"{path}.{name}", numbers) is { } deeper)
                    {
                        return deeper;
                    }
                }

                return null;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    if (array[i] is JsonValue value && TryChange(value, numbers, out var replacement, out var was))
                    {
                        array[i] = replacement;
                        return $"{path}[{i}]: {was} → {replacement.ToJsonString()}";
                    }

                    if (array[i] is { } child && ChangeFirst(child, $"{path}[{i}]", numbers) is { } deeper)
                    {
                        return deeper;
                    }
                }

                return null;
            default:
                // A bare scalar body has no member to name: --other-body is needed.
                return null;
        }
    }

    private static bool TryChange(JsonValue value, bool numbers, out JsonNode replacement, out string was)
    {
        was = value.ToJsonString();
        replacement = null!;
        var element = value.GetValue<JsonElement>();
        if (numbers && element.ValueKind == JsonValueKind.Number)
        {
            replacement = element.TryGetInt64(out var whole)
                ? JsonValue.Create(whole == long.MaxValue ? whole - 1 : whole + 1)
                : JsonValue.Create(element.GetDouble() + 1)!;
            return true;
        }

        if (!numbers && element.ValueKind == JsonValueKind.String)
        {
            replacement = JsonValue.Create(element.GetString() + "-other")!;
            return true;
        }

        return false;
    }
}
