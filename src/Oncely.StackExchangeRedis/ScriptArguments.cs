using StackExchange.Redis;

namespace Oncely.StackExchangeRedis;

/// <summary>
/// The argument arrays of the request path's two script calls (reserve: 2 keys, 3 values; complete: 1 key, 6 values),
/// kept one of each per thread and reused, so an execution allocates none of them (about 430 bytes otherwise).
/// </summary>
/// <remarks>
/// StackExchange.Redis keeps the arrays it is given in its message until the command is answered. An array is therefore
/// handed back (<see cref="Return(RedisKey[], RedisValue[])"/>) only after its call's task completed successfully, when
/// the server has answered and the message is done with: a call that failed, timed out or was abandoned leaves its arrays
/// to the garbage collector, so no array is ever refilled while a command still holds it. Returned arrays are cleared, so
/// a kept array does not keep a stored answer's body alive.
/// </remarks>
internal static class ScriptArguments
{
    [ThreadStatic]
    private static RedisKey[]? t_oneKey;

    [ThreadStatic]
    private static RedisKey[]? t_twoKeys;

    [ThreadStatic]
    private static RedisValue[]? t_threeValues;

    [ThreadStatic]
    private static RedisValue[]? t_sixValues;

    public static RedisKey[] Keys(RedisKey first)
    {
        var keys = t_oneKey ?? new RedisKey[1];
        t_oneKey = null;
        keys[0] = first;
        return keys;
    }

    public static RedisKey[] Keys(RedisKey first, RedisKey second)
    {
        var keys = t_twoKeys ?? new RedisKey[2];
        t_twoKeys = null;
        keys[0] = first;
        keys[1] = second;
        return keys;
    }

    public static RedisValue[] Values(RedisValue first, RedisValue second, RedisValue third)
    {
        var values = t_threeValues ?? new RedisValue[3];
        t_threeValues = null;
        values[0] = first;
        values[1] = second;
        values[2] = third;
        return values;
    }

    public static RedisValue[] Values(RedisValue first, RedisValue second, RedisValue third, RedisValue fourth, RedisValue fifth, RedisValue sixth)
    {
        var values = t_sixValues ?? new RedisValue[6];
        t_sixValues = null;
        values[0] = first;
        values[1] = second;
        values[2] = third;
        values[3] = fourth;
        values[4] = fifth;
        values[5] = sixth;
        return values;
    }

    /// <summary>Hands the arrays of an answered call back for the next call on this thread.</summary>
    public static void Return(RedisKey[] keys, RedisValue[] values)
    {
        Array.Clear(keys);
        Array.Clear(values);
        switch (keys.Length)
        {
            case 1:
                t_oneKey = keys;
                break;
            case 2:
                t_twoKeys = keys;
                break;
        }

        switch (values.Length)
        {
            case 3:
                t_threeValues = values;
                break;
            case 6:
                t_sixValues = values;
                break;
        }
    }
}
