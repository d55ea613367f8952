// The broker, the consumer processes and SQLite's single writer are shared; on 2 cores, tests that race each other for
// them only stretch every timeout. Concurrency claims are proven inside each test, with real parallel deliveries.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
