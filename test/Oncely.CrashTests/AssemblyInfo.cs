// Each test starts and kills app processes; running the SQLite and PostgreSQL classes at once only makes them compete
// for the same cores and stretches every start-up.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
