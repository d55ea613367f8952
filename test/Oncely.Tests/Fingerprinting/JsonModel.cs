using System.Globalization;
using System.Text;
using CsCheck;

namespace Oncely.Tests.Fingerprinting;

// A JSON value as the property tests see it, written out in many equivalent spellings.
internal abstract record JsonModel
{
    public sealed record Object(IReadOnlyList<(string Name, JsonModel Value)> Members) : JsonModel;

    public sealed record Array(IReadOnlyList<JsonModel> Items) : JsonModel;

    public sealed record String(string Value) : JsonModel;

    // Value = (Negative ? -1 : 1) × Digits × 10^Exponent; Digits has no leading zeros ("0" for zero).
    public sealed record Number(bool Negative, string Digits, int Exponent) : JsonModel;

    public sealed record Boolean(bool Value) : JsonModel;

    public sealed record Null : JsonModel;

    public sealed override string ToString() => JsonGen.Write(this);
}

internal static class JsonGen
{
    private static readonly Gen<string> Piece = Gen.OneOf(
        Gen.Char['a', 'z'].Select(c => c.ToString()),
        Gen.Char[' ', '~'].Select(c => c.ToString()),
        Gen.Char['\0', '\u001f'].Select(c => c.ToString()),
        Gen.Char['\u0080', '\ud7ff'].Select(c => c.ToString()),
        Gen.Char['\ue000', '\uffff'].Select(c => c.ToString()),
        Gen.Int[0x10000, 0x10FFFF].Select(char.ConvertFromUtf32));

    public static readonly Gen<string> Text = Piece.Array[0, 8].Select(string.Concat);

    private static readonly Gen<string> Name = Gen.Frequency(
        (3, Gen.Char['a', 'e'].Array[1, 3].Select(chars => new string(chars))),
        (1, Piece.Array[0, 3].Select(string.Concat)));

    // Integers a double holds exactly.
    private static readonly Gen<JsonModel> Integer = Gen.Long[-(1L << 53), 1L << 53].Select(n => (JsonModel)FromText(n.ToString(CultureInfo.InvariantCulture)));

    // Money: up to 15 significant digits, two decimals.
    private static readonly Gen<JsonModel> Amount = Gen.Long[-999_999_999_999_99, 999_999_999_999_99]
        .Select(n => (JsonModel)new JsonModel.Number(n < 0, Math.Abs(n).ToString(CultureInfo.InvariantCulture), -2));

    // Any finite double, spelled by its shortest round-trip text.
    private static readonly Gen<JsonModel> Double = Gen.Double.Where(double.IsFinite).Select(d => (JsonModel)FromText(d.ToString("R", CultureInfo.InvariantCulture)));

    private static readonly Gen<JsonModel> Leaf = Gen.Frequency(
        (3, Text.Select(s => (JsonModel)new JsonModel.String(s))),
        (2, Integer),
        (2, Amount),
        (2, Double),
        (1, Gen.Bool.Select(b => (JsonModel)new JsonModel.Boolean(b))),
        (1, Gen.Const<JsonModel>(new JsonModel.Null())));

    public static readonly Gen<JsonModel> Document = Gen.Frequency((4, Object(3)), (1, Array(3)), (1, Leaf));

    private static Gen<JsonModel> Node(int depth) =>
        depth == 0 ? Leaf : Gen.Frequency((3, Leaf), (1, Array(depth)), (1, Object(depth)));

    private static Gen<JsonModel> Array(int depth) =>
        Node(depth - 1).Array[0, 4].Select(items => (JsonModel)new JsonModel.Array(items));

    // Names that differ only in case are left out: the canonicaliser refuses them on purpose (ASP.NET Core binds
    // members case-insensitively), which JsonCanonicalizerTests covers.
    private static Gen<JsonModel> Object(int depth) =>
        Gen.Select(Name, Node(depth - 1)).Array[0, 5].Select(members =>
            (JsonModel)new JsonModel.Object(members.DistinctBy(m => m.Item1, StringComparer.OrdinalIgnoreCase).ToList()));

    // Parses a decimal text (JSON or .NET "R") into the model's exact form.
    public static JsonModel.Number FromText(string text)
    {
        var negative = text.StartsWith('-');
        var body = negative ? text[1..] : text;
        var exponent = 0;
        var e = body.IndexOfAny(['e', 'E']);
        if (e >= 0)
        {
            exponent = int.Parse(body[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            body = body[..e];
        }

        var dot = body.IndexOf('.', StringComparison.Ordinal);
        if (dot >= 0)
        {
            exponent -= body.Length - dot - 1;
            body = body.Remove(dot, 1);
        }

        body = body.TrimStart('0');
        if (body.Length == 0)
        {
            return new JsonModel.Number(negative, "0", 0);
        }

        var trimmed = body.TrimEnd('0');
        return new JsonModel.Number(negative, trimmed, exponent + body.Length - trimmed.Length);
    }

    public static int CountLeaves(JsonModel node) => node switch
    {
        JsonModel.Object o => o.Members.Sum(m => CountLeaves(m.Value)),
        JsonModel.Array a => a.Items.Sum(CountLeaves),
        _ => 1,
    };

    // Replaces the index-th leaf (depth first) with a different value.
    public static JsonModel ChangeLeaf(JsonModel node, int index) => ChangeLeaf(node, ref index);

    private static JsonModel ChangeLeaf(JsonModel node, ref int index)
    {
        switch (node)
        {
            case JsonModel.Object o:
            {
                var members = new List<(string, JsonModel)>();
                foreach (var (name, value) in o.Members)
                {
                    members.Add((name, ChangeLeaf(value, ref index)));
                }

                return new JsonModel.Object(members);
            }

            case JsonModel.Array a:
            {
                var items = new List<JsonModel>();
                foreach (var item in a.Items)
                {
                    items.Add(ChangeLeaf(item, ref index));
                }

                return new JsonModel.Array(items);
            }

            default:
                if (index-- != 0)
                {
                    return node;
                }

                return node switch
                {
                    JsonModel.String s => new JsonModel.String(s.Value + "x"),
                    JsonModel.Number { Digits: "0" } => new JsonModel.Number(false, "1", 0),
                    JsonModel.Number n => n with { Negative = !n.Negative },
                    JsonModel.Boolean b => new JsonModel.Boolean(!b.Value),
                    _ => new JsonModel.Boolean(false),
                };
        }
    }

    /// <summary>Writes the model as JSON; with a random source, in a random but equivalent spelling.</summary>
    public static string Write(JsonModel node, Random? random = null)
    {
        var builder = new StringBuilder();
        Write(builder, node, random);
        Space(builder, random);
        return builder.ToString();
    }

    private static void Write(StringBuilder builder, JsonModel node, Random? random)
    {
        Space(builder, random);
        switch (node)
        {
            case JsonModel.Object o:
            {
                builder.Append('{');
                var members = o.Members.ToArray();
                random?.Shuffle(members);
                for (var i = 0; i < members.Length; i++)
                {
                    if (i > 0)
                    {
                        Space(builder, random);
                        builder.Append(',');
                    }

                    Space(builder, random);
                    WriteString(builder, members[i].Name, random);
                    Space(builder, random);
                    builder.Append(':');
                    Write(builder, members[i].Value, random);
                }

                Space(builder, random);
                builder.Append('}');
                break;
            }

            case JsonModel.Array a:
                builder.Append('[');
                for (var i = 0; i < a.Items.Count; i++)
                {
                    if (i > 0)
                    {
                        Space(builder, random);
                        builder.Append(',');
                    }

                    Write(builder, a.Items[i], random);
                }

                Space(builder, random);
                builder.Append(']');
                break;
            case JsonModel.String s:
                WriteString(builder, s.Value, random);
                break;
            case JsonModel.Number n:
                WriteNumber(builder, n, random);
                break;
            case JsonModel.Boolean b:
                builder.Append(b.Value ? "true" : "false");
                break;
            default:
                builder.Append("null");
                break;
        }
    }

    private static void Space(StringBuilder builder, Random? random)
    {
        if (random is not null)
        {
            builder.Append(random.Next(6) switch
            {
                0 => " ",
                1 => "\n",
                2 => "\t",
                3 => "\r\n  ",
                _ => "",
            });
        }
    }

    private static void WriteString(StringBuilder builder, string value, Random? random)
    {
        builder.Append('"');
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            var pair = char.IsHighSurrogate(c);
            var escape = c < 0x20 || c == '"' || c == '\\' || (random is not null && random.Next(4) == 0);
            if (!escape)
            {
                builder.Append(c);
                if (pair)
                {
                    builder.Append(value[++i]);
                }

                continue;
            }

            var shortForm = c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '/' => "\\/",
                '\b' => "\\b",
                '\f' => "\\f",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ => null,
            };
            if (shortForm is not null && (random is null || random.Next(2) == 0))
            {
                builder.Append(shortForm);
                continue;
            }

            // A surrogate pair becomes two escapes, one for each code unit.
            var upper = random is not null && random.Next(2) == 0;
            builder.Append("\\u").Append(((int)c).ToString(upper ? "X4" : "x4", CultureInfo.InvariantCulture));
            if (pair)
            {
                builder.Append("\\u").Append(((int)value[++i]).ToString(upper ? "X4" : "x4", CultureInfo.InvariantCulture));
            }
        }

        builder.Append('"');
    }

    // Writes Digits × 10^Exponent with extra zeros, the decimal point anywhere and any exponent that keeps the value.
    private static void WriteNumber(StringBuilder builder, JsonModel.Number number, Random? random)
    {
        if (number.Negative)
        {
            builder.Append('-');
        }

        if (random is null)
        {
            builder.Append(number.Digits);
            if (number.Exponent != 0)
            {
                builder.Append('e').Append(number.Exponent.ToString(CultureInfo.InvariantCulture));
            }

            return;
        }

        var zeros = random.Next(3);
        var mantissa = number.Digits + new string('0', zeros);
        var exponent = number.Exponent - zeros;

        // Point after `split` digits: value = mantissa[..split].mantissa[split..] × 10^(exponent + mantissa.Length - split).
        var split = number.Digits == "0" ? 1 : random.Next(1, mantissa.Length + 1);
        var shifted = exponent + mantissa.Length - split;
        builder.Append(mantissa, 0, split);
        if (split < mantissa.Length)
        {
            builder.Append('.').Append(mantissa, split, mantissa.Length - split);
        }

        if (shifted != 0 || random.Next(3) == 0)
        {
            builder.Append(random.Next(2) == 0 ? 'e' : 'E');
            if (shifted >= 0 && random.Next(2) == 0)
            {
                builder.Append('+');
            }

            builder.Append(shifted.ToString(CultureInfo.InvariantCulture));
        }
    }
}
