namespace Oncely.Tests.Storage;

/// <summary>
/// <see cref="StoredHeaders"/> writes with one writer and buffer per thread (issue 20): each call must start from a
/// clean writer, whatever the previous call on the thread wrote, and a very large header set must not leave its buffer
/// behind for the next call.
/// </summary>
public class StoredHeadersTests
{
    [Fact]
    public void Serialize_ManyCallsOnOneThread_EachTextIsOnlyItsOwnHeaders()
    {
        for (var i = 0; i < 50; i++)
        {
            IReadOnlyList<KeyValuePair<string, string>> headers = i % 3 == 0
                ? [new("Content-Type", "application/json"), new("Location", $"/payments/{i}")]
                : [new("Vary", $"v{i}")];
            var text = StoredHeaders.Serialize(headers);

            Assert.Equal(i % 3 == 0 ? $"[[\"Content-Type\",\"application/json\"],[\"Location\",\"/payments/{i}\"]]" : $"[[\"Vary\",\"v{i}\"]]", text);
            Assert.Equal(headers, StoredHeaders.Deserialize(text));
        }
    }

    [Fact]
    public void Serialize_HugeHeadersThenSmall_BothRoundTrip()
    {
        IReadOnlyList<KeyValuePair<string, string>> huge = [.. Enumerable.Range(0, 40).Select(i => new KeyValuePair<string, string>($"X-Big-{i}", new string('a', 1000)))];
        IReadOnlyList<KeyValuePair<string, string>> small = [new("Content-Type", "text/plain"), new("Content-Type", "text/plain")];

        Assert.Equal(huge, StoredHeaders.Deserialize(StoredHeaders.Serialize(huge)));
        Assert.Equal("[[\"Content-Type\",\"text/plain\"],[\"Content-Type\",\"text/plain\"]]", StoredHeaders.Serialize(small));
        Assert.Equal("[]", StoredHeaders.Serialize([]));
    }

    [Fact]
    public async Task Serialize_ConcurrentThreads_NoTextMixesAnotherCallsHeaders()
    {
        await Parallel.ForEachAsync(Enumerable.Range(0, 2000), new ParallelOptions { MaxDegreeOfParallelism = 8 }, (i, _) =>
        {
            IReadOnlyList<KeyValuePair<string, string>> headers = [new("Location", $"/payments/{i}")];
            Assert.Equal($"[[\"Location\",\"/payments/{i}\"]]", StoredHeaders.Serialize(headers));
            return ValueTask.CompletedTask;
        });
    }
}
