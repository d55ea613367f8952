using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Oncely;

/// <summary>
/// RFC 8785 (JSON Canonicalization Scheme) over <see cref="Utf8JsonReader"/>, restricted to I-JSON (RFC 7493) and to
/// numbers whose text is exactly the value that the canonical form writes.
/// </summary>
/// <remarks>
/// <para>
/// The canonical form: no whitespace; object members sorted by the UTF-16 code units of their names; strings with only
/// <c>\"</c>, <c>\\</c>, <c>\b</c>, <c>\f</c>, <c>\n</c>, <c>\r</c>, <c>\t</c> and <c>\u00xx</c> (other control characters)
/// escaped and every other character written as UTF-8; numbers written as ECMAScript's <c>Number.prototype.toString</c>
/// writes the IEEE-754 double; <c>true</c>, <c>false</c>, <c>null</c>.
/// </para>
/// <para>
/// A document is refused (the method answers <see langword="false"/> and writes nothing) when it is malformed, has
/// content after the root value, starts with a byte order mark, nests deeper than <see cref="MaxDepth"/>, repeats a
/// member name in one object (also when two names differ only in case: ASP.NET Core binds names
/// case-insensitively), has a string with invalid UTF-8 or a lone surrogate escape, or has a number outside the
/// double range or whose exact decimal value differs from the exact decimal value of its canonical text
/// (<c>10000000000000000001</c>, <c>0.1000000000000000000001</c>, <c>1e-400</c>). Two different amounts must never
/// canonicalise to the same bytes; callers hash such documents as raw bytes instead.
/// </para>
/// </remarks>
internal static class JsonCanonicalizer
{
    /// <summary>The deepest nesting of objects and arrays accepted: 64.</summary>
    public const int MaxDepth = 64;

    // The longest ECMAScript number text: "-0.00000" + 17 digits, or "-d.dddddddddddddddde-308".
    internal const int MaxNumberLength = 32;

    // Objects up to this many members are checked for case-insensitive duplicate names pairwise, larger ones with a set.
    private const int SmallObjectMembers = 16;

    // Decimals with at most this many significant digits, and a decimal point within this many places of the first
    // digit, are always exactly the double nearest to them.
    private const int MaxAlwaysExactDigits = 15;
    private const int MaxAlwaysExactPoint = 300;

    // The most significant digits a double's shortest round-trip text has.
    private const int MaxSignificantDigits = 17;

    private static readonly SearchValues<byte> NeedsEscape = SearchValues.Create(
        "\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u0009\u000a\u000b\u000c\u000d\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\"\\"u8);

    /// <summary>Writes the RFC 8785 canonical form of a UTF-8 JSON document.</summary>
    /// <param name="utf8Json">The whole document, UTF-8 without a byte order mark.</param>
    /// <param name="destination">Receives the canonical bytes; untouched when the method answers <see langword="false"/>.</param>
    /// <returns><see langword="true"/> when the document is I-JSON with exactly representable numbers and was written.</returns>
    public static bool TryCanonicalize(ReadOnlySpan<byte> utf8Json, IBufferWriter<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (utf8Json.StartsWith("\uFEFF"u8))
        {
            return false;
        }

        var writer = new CanonicalWriter(utf8Json.Length);
        try
        {
            if (!writer.TryWrite(utf8Json))
            {
                return false;
            }

            var written = writer.Written;
            while (!written.IsEmpty)
            {
                var span = destination.GetSpan(written.Length);
                var count = Math.Min(span.Length, written.Length);
                written[..count].CopyTo(span);
                destination.Advance(count);
                written = written[count..];
            }

            return true;
        }
        finally
        {
            writer.Dispose();
        }
    }

    /// <summary>Writes a finite double as ECMAScript's <c>Number.prototype.toString</c> does (RFC 8785 section 3.2.2.3).</summary>
    /// <param name="value">A finite value.</param>
    /// <param name="destination">At least <see cref="MaxNumberLength"/> bytes.</param>
    /// <param name="written">The bytes written.</param>
    /// <returns><see langword="false"/> when <paramref name="value"/> is NaN or infinite.</returns>
    internal static bool TryFormatNumber(double value, Span<byte> destination, out int written)
    {
        written = 0;
        if (!double.IsFinite(value) || !TryShortest(value, out var shortest))
        {
            return false;
        }

        written = FormatEcmaScript(shortest, destination);
        return true;
    }

    // The shortest round-trip digits of the double (.NET's "R"), as sign/digits/exponent.
    private static bool TryShortest(double value, out DecimalNumber shortest)
    {
        Span<byte> text = stackalloc byte[MaxNumberLength];
        shortest = default;
        return value.TryFormat(text, out var length, "R", CultureInfo.InvariantCulture)
            && DecimalNumber.TryParse(text[..length], out shortest);
    }

    // ECMA-262 Number::toString(x) for radix 10, given x = 0.d1..dk × 10^n with k as small as possible.
    private static int FormatEcmaScript(in DecimalNumber number, Span<byte> destination)
    {
        if (number.IsZero)
        {
            destination[0] = (byte)'0';
            return 1;
        }

        Span<byte> digits = stackalloc byte[MaxSignificantDigits + 3];
        var k = number.WriteDigits(digits);
        digits = digits[..k];
        var n = (int)number.Point;
        var pos = 0;
        if (number.Negative)
        {
            destination[pos++] = (byte)'-';
        }

        if (k <= n && n <= 21)
        {
            digits.CopyTo(destination[pos..]);
            pos += k;
            destination.Slice(pos, n - k).Fill((byte)'0');
            pos += n - k;
        }
        else if (n > 0 && n <= 21)
        {
            digits[..n].CopyTo(destination[pos..]);
            pos += n;
            destination[pos++] = (byte)'.';
            digits[n..].CopyTo(destination[pos..]);
            pos += k - n;
        }
        else if (n > -6 && n <= 0)
        {
            destination[pos++] = (byte)'0';
            destination[pos++] = (byte)'.';
            destination.Slice(pos, -n).Fill((byte)'0');
            pos += -n;
            digits.CopyTo(destination[pos..]);
            pos += k;
        }
        else
        {
            destination[pos++] = digits[0];
            if (k > 1)
            {
                destination[pos++] = (byte)'.';
                digits[1..].CopyTo(destination[pos..]);
                pos += k - 1;
            }

            var exponent = n - 1;
            destination[pos++] = (byte)'e';
            destination[pos++] = exponent < 0 ? (byte)'-' : (byte)'+';
            Math.Abs(exponent).TryFormat(destination[pos..], out var exponentLength, default, CultureInfo.InvariantCulture);
            pos += exponentLength;
        }

        return pos;
    }

    // Writes src as a JSON string (quotes included) the way RFC 8785 section 3.2.2.2 says; dst holds 6 × src + 2 bytes.
    private static int WriteQuoted(ReadOnlySpan<byte> src, Span<byte> dst)
    {
        var pos = 0;
        dst[pos++] = (byte)'"';
        while (!src.IsEmpty)
        {
            var next = src.IndexOfAny(NeedsEscape);
            if (next < 0)
            {
                src.CopyTo(dst[pos..]);
                pos += src.Length;
                break;
            }

            src[..next].CopyTo(dst[pos..]);
            pos += next;
            var b = src[next];
            dst[pos++] = (byte)'\\';
            switch (b)
            {
                case (byte)'"':
                case (byte)'\\':
                    dst[pos++] = b;
                    break;
                case 0x08:
                    dst[pos++] = (byte)'b';
                    break;
                case 0x0C:
                    dst[pos++] = (byte)'f';
                    break;
                case 0x0A:
                    dst[pos++] = (byte)'n';
                    break;
                case 0x0D:
                    dst[pos++] = (byte)'r';
                    break;
                case 0x09:
                    dst[pos++] = (byte)'t';
                    break;
                default:
                    dst[pos++] = (byte)'u';
                    dst[pos++] = (byte)'0';
                    dst[pos++] = (byte)'0';
                    dst[pos++] = HexLower(b >> 4);
                    dst[pos++] = HexLower(b & 0xF);
                    break;
            }

            src = src[(next + 1)..];
        }

        dst[pos++] = (byte)'"';
        return pos;
    }

    private static byte HexLower(int nibble) => (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);

    // Orders UTF-8 names as their UTF-16 code units would order (RFC 8785 section 3.2.3). UTF-8 byte order is code point
    // order, which differs from UTF-16 order only between supplementary characters and U+E000..U+FFFF.
    internal static int CompareUtf16(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        var common = left.CommonPrefixLength(right);
        if (common == left.Length || common == right.Length)
        {
            return left.Length.CompareTo(right.Length);
        }

        var start = common;
        while (start > 0 && (left[start] & 0xC0) == 0x80)
        {
            start--;
        }

        Rune.DecodeFromUtf8(left[start..], out var l, out _);
        Rune.DecodeFromUtf8(right[start..], out var r, out _);
        var firstUnitOrder = FirstUtf16Unit(l).CompareTo(FirstUtf16Unit(r));
        return firstUnitOrder != 0 ? firstUnitOrder : l.Value.CompareTo(r.Value);
    }

    private static int FirstUtf16Unit(Rune rune) => rune.IsBmp ? rune.Value : 0xD800 + ((rune.Value - 0x10000) >> 10);

    // A decimal number normalised as sign, significand without trailing zeros, and the position n of the decimal point:
    // value = 0.d1..dk × 10^n. Zero has no digits.
    private readonly struct DecimalNumber
    {
        private readonly ulong _significand;
        private readonly int _digitCount;

        private DecimalNumber(bool negative, ulong significand, int digitCount, long point)
        {
            Negative = negative;
            _significand = significand;
            _digitCount = digitCount;
            Point = point;
        }

        public bool Negative { get; }

        public long Point { get; }

        public bool IsZero => _digitCount == 0;

        public int DigitCount => _digitCount;

        public bool SameValue(in DecimalNumber other) =>
            IsZero ? other.IsZero : !other.IsZero && Negative == other.Negative && _significand == other._significand
                && _digitCount == other._digitCount && Point == other.Point;

        public int WriteDigits(Span<byte> destination)
        {
            var value = _significand;
            for (var i = _digitCount - 1; i >= 0; i--)
            {
                destination[i] = (byte)('0' + (int)(value % 10));
                value /= 10;
            }

            return _digitCount;
        }

        // Parses -?digits(.digits)?([eE][+-]?digits)? (JSON numbers and .NET's "R" output). False when the text is not of
        // that form or has more significant digits than any double's shortest text.
        public static bool TryParse(ReadOnlySpan<byte> text, out DecimalNumber number)
        {
            number = default;
            var i = 0;
            var negative = false;
            if (i < text.Length && text[i] is (byte)'-' or (byte)'+')
            {
                negative = text[i] == '-';
                i++;
            }

            ulong significand = 0;
            var digitCount = 0;
            var pendingZeros = 0;
            var position = 0;
            var firstNonZero = -1;
            var integerDigits = -1;
            var sawDigit = false;
            for (; i < text.Length; i++)
            {
                var c = text[i];
                if (c == '.')
                {
                    if (integerDigits >= 0)
                    {
                        return false;
                    }

                    integerDigits = position;
                    continue;
                }

                if (c is < (byte)'0' or > (byte)'9')
                {
                    break;
                }

                sawDigit = true;
                if (c == '0')
                {
                    if (firstNonZero >= 0)
                    {
                        pendingZeros++;
                    }
                }
                else
                {
                    if (firstNonZero < 0)
                    {
                        firstNonZero = position;
                    }

                    if (digitCount + pendingZeros + 1 > MaxSignificantDigits)
                    {
                        return false;
                    }

                    for (; pendingZeros > 0; pendingZeros--)
                    {
                        significand *= 10;
                        digitCount++;
                    }

                    significand = (significand * 10) + (ulong)(c - '0');
                    digitCount++;
                }

                position++;
            }

            if (!sawDigit)
            {
                return false;
            }

            if (integerDigits < 0)
            {
                integerDigits = position;
            }

            long exponent = 0;
            if (i < text.Length)
            {
                if (text[i] is not ((byte)'e' or (byte)'E'))
                {
                    return false;
                }

                i++;
                var exponentNegative = false;
                if (i < text.Length && text[i] is (byte)'-' or (byte)'+')
                {
                    exponentNegative = text[i] == '-';
                    i++;
                }

                if (i == text.Length)
                {
                    return false;
                }

                for (; i < text.Length; i++)
                {
                    var c = text[i];
                    if (c is < (byte)'0' or > (byte)'9')
                    {
                        return false;
                    }

                    // Saturate: any exponent this large is outside the double range and will not compare equal.
                    exponent = Math.Min((exponent * 10) + (c - '0'), 1_000_000_000);
                }

                if (exponentNegative)
                {
                    exponent = -exponent;
                }
            }

            number = firstNonZero < 0
                ? default
                : new DecimalNumber(negative, significand, digitCount, integerDigits - firstNonZero + exponent);
            return true;
        }
    }

    private readonly record struct Member(int NameStart, int NameLength, int ValueStart, int ValueLength);

    private readonly struct MemberComparer(byte[] buffer) : IComparer<Member>
    {
        public int Compare(Member x, Member y) =>
            CompareUtf16(buffer.AsSpan(x.NameStart, x.NameLength), buffer.AsSpan(y.NameStart, y.NameLength));
    }

    // Builds the canonical document in one pooled buffer. An object's members (raw name bytes, then canonical value) are
    // written where the object belongs, sorted, re-emitted after them, and moved back into place.
    private sealed class CanonicalWriter : IDisposable
    {
        private byte[] _buffer;
        private int _length;
        private Member[] _members;
        private int _memberCount;
        private byte[]? _text;

        public CanonicalWriter(int inputLength)
        {
            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(256, inputLength + (inputLength / 4)));
            _members = ArrayPool<Member>.Shared.Rent(16);
        }

        public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

        public bool TryWrite(ReadOnlySpan<byte> utf8Json)
        {
            var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions
            {
                MaxDepth = MaxDepth,
                CommentHandling = JsonCommentHandling.Disallow,
                AllowTrailingCommas = false,
            });

            try
            {
                return reader.Read() && WriteValue(ref reader, 0) && !reader.Read();
            }
            catch (JsonException)
            {
                return false;
            }
        }

        public void Dispose()
        {
            ArrayPool<byte>.Shared.Return(_buffer, clearArray: true);
            ArrayPool<Member>.Shared.Return(_members);
            if (_text is not null)
            {
                ArrayPool<byte>.Shared.Return(_text, clearArray: true);
            }

            _buffer = [];
            _members = [];
            _text = null;
        }

        private bool WriteValue(ref Utf8JsonReader reader, int depth)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    return WriteObject(ref reader, depth + 1);
                case JsonTokenType.StartArray:
                    return WriteArray(ref reader, depth + 1);
                case JsonTokenType.String:
                    return WriteString(ref reader);
                case JsonTokenType.Number:
                    return WriteNumber(reader.ValueSpan);
                case JsonTokenType.True:
                    Append("true"u8);
                    return true;
                case JsonTokenType.False:
                    Append("false"u8);
                    return true;
                case JsonTokenType.Null:
                    Append("null"u8);
                    return true;
                default:
                    return false;
            }
        }

        private bool WriteArray(ref Utf8JsonReader reader, int depth)
        {
            if (depth > MaxDepth)
            {
                return false;
            }

            Append((byte)'[');
            var first = true;
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.EndArray)
                {
                    Append((byte)']');
                    return true;
                }

                if (!first)
                {
                    Append((byte)',');
                }

                first = false;
                if (!WriteValue(ref reader, depth))
                {
                    return false;
                }
            }

            return false;
        }

        private bool WriteObject(ref Utf8JsonReader reader, int depth)
        {
            if (depth > MaxDepth)
            {
                return false;
            }

            var regionStart = _length;
            var memberBase = _memberCount;
            while (true)
            {
                if (!reader.Read())
                {
                    return false;
                }

                if (reader.TokenType == JsonTokenType.EndObject)
                {
                    break;
                }

                if (reader.TokenType != JsonTokenType.PropertyName)
                {
                    return false;
                }

                var nameStart = _length;
                if (!AppendUnescaped(ref reader))
                {
                    return false;
                }

                var nameLength = _length - nameStart;
                if (!reader.Read())
                {
                    return false;
                }

                var valueStart = _length;
                if (!WriteValue(ref reader, depth))
                {
                    return false;
                }

                PushMember(new Member(nameStart, nameLength, valueStart, _length - valueStart));
            }

            var members = _members.AsSpan(memberBase, _memberCount - memberBase);
            SortMembers(members);
            for (var i = 1; i < members.Length; i++)
            {
                if (_buffer.AsSpan(members[i - 1].NameStart, members[i - 1].NameLength)
                    .SequenceEqual(_buffer.AsSpan(members[i].NameStart, members[i].NameLength)))
                {
                    return false;
                }
            }

            if (HasCaseInsensitiveDuplicate(members))
            {
                return false;
            }

            var outputStart = _length;
            Append((byte)'{');
            for (var i = 0; i < members.Length; i++)
            {
                var member = members[i];
                EnsureCapacity((member.NameLength * 6) + member.ValueLength + 4);
                if (i > 0)
                {
                    _buffer[_length++] = (byte)',';
                }

                _length += WriteQuoted(_buffer.AsSpan(member.NameStart, member.NameLength), _buffer.AsSpan(_length));
                _buffer[_length++] = (byte)':';
                _buffer.AsSpan(member.ValueStart, member.ValueLength).CopyTo(_buffer.AsSpan(_length));
                _length += member.ValueLength;
            }

            Append((byte)'}');
            var outputLength = _length - outputStart;
            _buffer.AsSpan(outputStart, outputLength).CopyTo(_buffer.AsSpan(regionStart));
            _length = regionStart + outputLength;
            _memberCount = memberBase;
            return true;
        }

        // Objects are small: an insertion sort allocates nothing, where Span.Sort with a comparer boxes it and builds a
        // delegate for every object.
        private void SortMembers(Span<Member> members)
        {
            if (members.Length > SmallObjectMembers)
            {
                members.Sort(new MemberComparer(_buffer));
                return;
            }

            for (var i = 1; i < members.Length; i++)
            {
                var current = members[i];
                var name = _buffer.AsSpan(current.NameStart, current.NameLength);
                var j = i - 1;
                while (j >= 0 && CompareUtf16(_buffer.AsSpan(members[j].NameStart, members[j].NameLength), name) > 0)
                {
                    members[j + 1] = members[j];
                    j--;
                }

                members[j + 1] = current;
            }
        }

        // ASP.NET Core binds JSON members case-insensitively (last one wins), so {"amount":1,"Amount":9} means 9 to
        // the handler while {"Amount":9,"amount":1} means 1: both sort to the same canonical bytes. Names that collide
        // under OrdinalIgnoreCase are therefore refused like exact duplicates, and the raw bytes decide instead.
        private bool HasCaseInsensitiveDuplicate(ReadOnlySpan<Member> members)
        {
            if (members.Length < 2)
            {
                return false;
            }

            if (members.Length <= SmallObjectMembers)
            {
                for (var i = 0; i < members.Length; i++)
                {
                    var a = Name(members[i]);
                    for (var j = i + 1; j < members.Length; j++)
                    {
                        if (NamesEqualIgnoringCase(a, Name(members[j])))
                        {
                            return true;
                        }
                    }
                }

                return false;
            }

            var seen = new HashSet<string>(members.Length, StringComparer.OrdinalIgnoreCase);
            foreach (var member in members)
            {
                if (!seen.Add(Encoding.UTF8.GetString(Name(member))))
                {
                    return true;
                }
            }

            return false;
        }

        private ReadOnlySpan<byte> Name(Member member) => _buffer.AsSpan(member.NameStart, member.NameLength);

        private static bool NamesEqualIgnoringCase(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
        {
            if (Ascii.IsValid(a) && Ascii.IsValid(b))
            {
                return Ascii.EqualsIgnoreCase(a, b);
            }

            return string.Equals(Encoding.UTF8.GetString(a), Encoding.UTF8.GetString(b), StringComparison.OrdinalIgnoreCase);
        }

        private bool WriteString(ref Utf8JsonReader reader)
        {
            var raw = reader.ValueSpan;
            ReadOnlySpan<byte> value;
            if (reader.ValueIsEscaped)
            {
                _text ??= ArrayPool<byte>.Shared.Rent(Math.Max(64, raw.Length));
                if (_text.Length < raw.Length)
                {
                    ArrayPool<byte>.Shared.Return(_text, clearArray: true);
                    _text = ArrayPool<byte>.Shared.Rent(raw.Length);
                }

                // Unescaping never makes a string longer.
                if (!TryUnescape(raw, _text, out var length))
                {
                    return false;
                }

                value = _text.AsSpan(0, length);
            }
            else
            {
                value = raw;
            }

            if (!Utf8.IsValid(value))
            {
                return false;
            }

            EnsureCapacity((value.Length * 6) + 2);
            _length += WriteQuoted(value, _buffer.AsSpan(_length));
            return true;
        }

        // Appends the property name's unescaped UTF-8 bytes.
        private bool AppendUnescaped(ref Utf8JsonReader reader)
        {
            var raw = reader.ValueSpan;
            EnsureCapacity(raw.Length);
            var destination = _buffer.AsSpan(_length, raw.Length);
            int length;
            if (reader.ValueIsEscaped)
            {
                if (!TryUnescape(raw, destination, out length))
                {
                    return false;
                }
            }
            else
            {
                raw.CopyTo(destination);
                length = raw.Length;
            }

            if (!Utf8.IsValid(destination[..length]))
            {
                return false;
            }

            _length += length;
            return true;
        }

        private bool WriteNumber(ReadOnlySpan<byte> text)
        {
            // The text's own digits first: more than 17 significant digits can never be exact, and that check is cheap.
            if (!DecimalNumber.TryParse(text, out var original))
            {
                return false;
            }

            EnsureCapacity(MaxNumberLength);
            if (original.IsZero || (original.DigitCount <= MaxAlwaysExactDigits && original.Point is > -MaxAlwaysExactPoint and < MaxAlwaysExactPoint))
            {
                // The common case, without a double in sight: a decimal of at most 15 significant digits, well inside
                // the double range, is exactly the double nearest to it (15 digits always round-trip), and its
                // shortest round-trip digits are its own (trailing zeros aside). 100, 100.0 and 1e2 all write 100.
                _length += FormatEcmaScript(original, _buffer.AsSpan(_length));
                return true;
            }

            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
                || !double.IsFinite(value)
                || !TryShortest(value, out var shortest)
                || !original.SameValue(shortest))
            {
                return false;
            }

            EnsureCapacity(MaxNumberLength);
            _length += FormatEcmaScript(shortest, _buffer.AsSpan(_length));
            return true;
        }

        private void PushMember(Member member)
        {
            if (_memberCount == _members.Length)
            {
                var larger = ArrayPool<Member>.Shared.Rent(_members.Length * 2);
                _members.AsSpan(0, _memberCount).CopyTo(larger);
                ArrayPool<Member>.Shared.Return(_members);
                _members = larger;
            }

            _members[_memberCount++] = member;
        }

        private void Append(byte value)
        {
            EnsureCapacity(1);
            _buffer[_length++] = value;
        }

        private void Append(ReadOnlySpan<byte> value)
        {
            EnsureCapacity(value.Length);
            value.CopyTo(_buffer.AsSpan(_length));
            _length += value.Length;
        }

        private void EnsureCapacity(int additional)
        {
            var required = (long)_length + additional;
            if (required <= _buffer.Length)
            {
                return;
            }

            if (required > Array.MaxLength)
            {
                throw new InsufficientMemoryException("The canonical JSON document is too large.");
            }

            var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(Array.MaxLength, Math.Max(required, (long)_buffer.Length * 2)));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer, clearArray: true);
            _buffer = larger;
        }
    }

    // Decodes JSON escapes (already checked for syntax by the reader) into UTF-8. False on a lone surrogate escape.
    private static bool TryUnescape(ReadOnlySpan<byte> raw, Span<byte> destination, out int written)
    {
        written = 0;
        while (!raw.IsEmpty)
        {
            var backslash = raw.IndexOf((byte)'\\');
            if (backslash < 0)
            {
                raw.CopyTo(destination[written..]);
                written += raw.Length;
                return true;
            }

            raw[..backslash].CopyTo(destination[written..]);
            written += backslash;
            raw = raw[backslash..];
            if (raw.Length < 2)
            {
                return false;
            }

            byte simple;
            switch (raw[1])
            {
                case (byte)'"':
                    simple = (byte)'"';
                    break;
                case (byte)'\\':
                    simple = (byte)'\\';
                    break;
                case (byte)'/':
                    simple = (byte)'/';
                    break;
                case (byte)'b':
                    simple = 0x08;
                    break;
                case (byte)'f':
                    simple = 0x0C;
                    break;
                case (byte)'n':
                    simple = 0x0A;
                    break;
                case (byte)'r':
                    simple = 0x0D;
                    break;
                case (byte)'t':
                    simple = 0x09;
                    break;
                case (byte)'u':
                    if (!TryReadUnicodeEscape(ref raw, out var scalar))
                    {
                        return false;
                    }

                    written += new Rune(scalar).EncodeToUtf8(destination[written..]);
                    continue;
                default:
                    return false;
            }

            destination[written++] = simple;
            raw = raw[2..];
        }

        return true;
    }

    // Reads \uXXXX (and its low-surrogate partner when XXXX is a high surrogate) from the start of raw and advances it.
    private static bool TryReadUnicodeEscape(ref ReadOnlySpan<byte> raw, out int scalar)
    {
        scalar = 0;
        if (!TryHex4(raw, out var unit))
        {
            return false;
        }

        raw = raw[6..];
        if (char.IsLowSurrogate((char)unit))
        {
            return false;
        }

        if (!char.IsHighSurrogate((char)unit))
        {
            scalar = unit;
            return true;
        }

        if (!TryHex4(raw, out var low) || !char.IsLowSurrogate((char)low))
        {
            return false;
        }

        raw = raw[6..];
        scalar = char.ConvertToUtf32((char)unit, (char)low);
        return true;
    }

    // Reads the four hex digits of a \uXXXX escape at the start of raw.
    private static bool TryHex4(ReadOnlySpan<byte> raw, out int unit)
    {
        unit = 0;
        if (raw.Length < 6 || raw[0] != '\\' || raw[1] != 'u')
        {
            return false;
        }

        for (var i = 2; i < 6; i++)
        {
            var c = raw[i];
            int digit = c switch
            {
                >= (byte)'0' and <= (byte)'9' => c - '0',
                >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
                >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
                _ => -1,
            };
            if (digit < 0)
            {
                return false;
            }

            unit = (unit << 4) | digit;
        }

        return true;
    }
}
