namespace Oncely;

/// <summary>The stable event ids Oncely logs with. They never change meaning between versions.</summary>
public static class IdempotencyEventIds
{
    /// <summary>An operation ran and its response was stored (debug).</summary>
    public const int Executed = 1000;

    /// <summary>A retry was answered with the stored response (debug).</summary>
    public const int Replayed = 1001;

    /// <summary>A duplicate arrived while the operation was in progress (debug: it is answered 409 and is routine under retries).</summary>
    public const int InProgress = 1002;

    /// <summary>Audit: a key was reused with a different payload (warning).</summary>
    public const int KeyReused = 1003;

    /// <summary>The store was unavailable; the request was refused without running (error).</summary>
    public const int StoreUnavailable = 1004;

    /// <summary>The operation failed and the record was released (information).</summary>
    public const int Released = 1005;

    /// <summary>An expired lease was taken over by a retry (warning).</summary>
    public const int TakenOver = 1006;

    /// <summary>A completion or release was refused because another attempt took the lease over (warning).</summary>
    public const int LeaseLost = 1007;

    /// <summary>The operation ran but its completion could not be written (error: the record stays InProgress until its lease ends).</summary>
    public const int CompletionFailed = 1008;

    /// <summary>Releasing a record failed (warning: the record stays InProgress until its lease ends).</summary>
    public const int ReleaseFailed = 1009;

    /// <summary>A response exceeded the stored-response limit; its body will not be replayed (warning).</summary>
    public const int ResponseTooLarge = 1010;

    /// <summary>A request was refused before reaching the store: key missing or invalid, payload too large (debug).</summary>
    public const int RequestRejected = 1011;

    /// <summary>Expired records were purged (debug).</summary>
    public const int Purged = 1012;

    /// <summary>Store maintenance (schema creation or purge) failed (warning).</summary>
    public const int MaintenanceFailed = 1013;

    /// <summary>The tenant could not be resolved for an authenticated caller (error).</summary>
    public const int TenantUnresolved = 1014;

    /// <summary>Writing a key-reuse audit entry to the store failed (warning; the request is refused all the same).</summary>
    public const int AuditFailed = 1015;

    /// <summary>Renewing a running operation's lease failed (warning: renewal is retried; if it keeps failing the lease may run out).</summary>
    public const int LeaseRenewalFailed = 1016;

    /// <summary>The store refused to renew a running operation's lease: its token is stale or the record is gone (warning; renewal stops).</summary>
    public const int LeaseRenewalRefused = 1017;

    /// <summary>Old key-reuse audit entries were purged (debug).</summary>
    public const int AuditPurged = 1018;

    /// <summary>A release was refused because the operation's own transaction had already completed the record (debug: expected, nothing is wrong).</summary>
    public const int ReleaseRefusedCompleted = 1030;

    /// <summary>A release was refused because the record no longer exists (it expired or was purged) (information).</summary>
    public const int ReleaseRefusedGone = 1031;

    /// <summary>A request's body could not be read (broken framing, a body shorter than its Content-Length, a stalled body); nothing was recorded (debug).</summary>
    public const int RequestBodyUnreadable = 1032;

    /// <summary>The client went away or the response was aborted before the answer was whole; the record keeps the status and headers without the body (warning).</summary>
    public const int ResponseIncomplete = 1033;

    /// <summary>The payload redactor threw on a key-reuse audit entry; a summary without the payload was kept (warning).</summary>
    public const int AuditRedactionFailed = 1034;

    /// <summary>
    /// One-commit mode: the reservation made inside the operation's transaction was not committed (the transaction
    /// rolled back), so there is nothing to complete or release and nothing is recorded; a retry runs again (information).
    /// </summary>
    public const int ReservationNotCommitted = 1040;

    /// <summary>One-commit mode: a duplicate found the key held by another transaction and got its answer instead of running (debug).</summary>
    public const int ReservationConflict = 1041;

    /// <summary>
    /// One-commit mode: the handler answered with a success status without ever reserving in its transaction, so nothing
    /// was recorded and a retry runs the operation again (error: call <c>ReserveInTransactionAsync</c> first).
    /// </summary>
    public const int OneCommitAnsweredWithoutReserving = 1042;

    /// <summary>
    /// One-commit mode: a release found nothing to release because this attempt's reservation rolled back with its
    /// transaction (for example when its client hung up) and another attempt has reserved the key since. No lease was
    /// taken over, so this is not <see cref="LeaseLost"/> (debug: expected under early hang-ups and concurrent retries).
    /// </summary>
    public const int OneCommitReservationRolledBack = 1043;

    /// <summary>
    /// One-commit mode: the operation's transaction failed with a transient database error (the connection was lost, the
    /// server shut down or restarted, a serialization failure or a deadlock), so it committed nothing and the request
    /// was answered <c>503</c> with <c>Retry-After</c>, like an unreachable store: the client's retry runs it once (error).
    /// </summary>
    public const int OneCommitTransientFailure = 1044;

    /// <summary>
    /// Records and key-reuse audit entries of a tenant, or of one tenant's key, were erased on request (warning: a retry of
    /// an erased key runs its operation again). Carries the counts, the records in progress that were kept and who asked;
    /// never a payload.
    /// </summary>
    public const int RecordsErased = 1070;

    /// <summary>An erasure happened but its entry could not be written to the audit (warning; the erasure's log line remains).</summary>
    public const int ErasureAuditFailed = 1071;

    /// <summary>
    /// The operator API showed a record's detail whose stored answer is protected and could not be decrypted (its Data
    /// Protection key was revoked or is gone, or the bytes were altered): the status code is shown, the headers and body
    /// are shown as unreadable, never as ciphertext (warning).
    /// </summary>
    public const int OperatorStoredAnswerUnreadable = 1080;

    /// <summary>
    /// The operator API returned a stored answer's body to an operator (<c>ShowStoredBodies</c> is on): who, and which
    /// record; never the body (information).
    /// </summary>
    public const int StoredBodyShownToOperator = 1081;

    /// <summary>
    /// Stored-answer protection: a Completed record's stored answer could not be decrypted (its Data Protection key was
    /// revoked or is no longer in the key ring, or the stored bytes were altered), so the retry was refused
    /// (HTTP <c>410</c>, row 6a; a message is acknowledged as done) and the operation did not run again (error).
    /// </summary>
    public const int StoredAnswerUnreadable = 1050;

    /// <summary>
    /// Stored-answer protection: the operator API read a key-reuse audit entry whose payload could not be decrypted (its
    /// Data Protection key was revoked or is gone); the entry is shown without its payload (warning).
    /// </summary>
    public const int AuditPayloadUnreadable = 1051;

    /// <summary>
    /// Stored-answer protection: a record written before protection was turned on (no protection envelope) was replayed
    /// as it was stored; such records disappear as they expire (debug).
    /// </summary>
    public const int UnprotectedAnswerReplayed = 1052;

    /// <summary>A message consumer: a redelivered or duplicate message whose effect already completed was acknowledged without running its consumer (debug).</summary>
    public const int MessageReplayed = 1100;

    /// <summary>A message consumer: another delivery of the same message holds the record, so this one was handed back to retry or redelivery without running (debug).</summary>
    public const int MessageInProgress = 1101;

    /// <summary>A message consumer: a message was refused without running, for a reason no retry can change (key or tenant missing or malformed); it goes to the error queue (warning).</summary>
    public const int MessageRejected = 1102;

    /// <summary>
    /// Webhooks: a delivery was refused with <c>401</c> because its Standard Webhooks headers were missing or malformed, or
    /// no signature matched a configured secret; nothing was recorded (warning: a wrong or rotated secret, or a forgery).
    /// </summary>
    public const int WebhookSignatureInvalid = 1120;

    /// <summary>
    /// Webhooks: a correctly signed delivery was refused with <c>401</c> because its timestamp is outside the tolerance
    /// (a replayed delivery, a sender's clock off, or a delivery delayed in transit); nothing was recorded (warning).
    /// </summary>
    public const int WebhookTimestampOutOfTolerance = 1121;

    /// <summary>Webhooks: a delivery's signature was verified; the sender becomes the record's tenant (debug).</summary>
    public const int WebhookVerified = 1122;

    /// <summary>Redis store: a write was not acknowledged by the required number of replicas in time, so the call failed closed (warning).</summary>
    public const int RedisReplicaAcknowledgementMissing = 1200;

    /// <summary>Redis store: a connection to a Redis server failed; idempotent requests fail closed until it is restored (warning).</summary>
    public const int RedisConnectionFailed = 1201;

    /// <summary>Redis store: a connection to a Redis server was restored (information).</summary>
    public const int RedisConnectionRestored = 1202;

    /// <summary>Redis store: a server's <c>maxmemory-policy</c> lets Redis evict idempotency records (error: set <c>noeviction</c>).</summary>
    public const int RedisEvictionPolicyUnsafe = 1203;

    /// <summary>Redis store: the store checked its servers and loaded its scripts at start (information).</summary>
    public const int RedisStoreReady = 1204;

    /// <summary>
    /// Redis store: writes wait for replicas (<c>WAIT</c>) before they count, either because replicas were found (the
    /// default) or because <c>ReplicaAcknowledgements</c> says so; logged once, when the mode is decided (information).
    /// </summary>
    public const int RedisReplicaAcknowledgementsRequired = 1205;

    /// <summary>
    /// Redis store: no primary has a replica, so writes cannot wait for one and a lost node loses its records (warning,
    /// once, when the mode is decided).
    /// </summary>
    public const int RedisNoReplicas = 1206;

    /// <summary>
    /// Redis store: replicas exist but <c>ReplicaAcknowledgements</c> is 0 on purpose, so writes do not wait for them and a
    /// failover to a lagging replica can lose records and run an operation twice (warning, once, when the mode is decided).
    /// </summary>
    public const int RedisReplicaAcknowledgementsOff = 1207;

    /// <summary>
    /// Redis store: a reservation that must be given back (not acknowledged by the replicas, or its caller gave up) could
    /// not be released, so retries of its key are answered 409 until its lease runs out (warning).
    /// </summary>
    public const int RedisReservationNotGivenBack = 1208;

    /// <summary>
    /// Redis store: writes wait for replicas, but some primaries have fewer connected replicas than required, so writes to
    /// their slots fail closed (<c>503</c>) until they have them (warning, once, when the mode is decided).
    /// </summary>
    public const int RedisPrimariesLackReplicas = 1209;

    /// <summary>
    /// The in-memory store is in use outside the Development environment (warning, once at start): its records are lost
    /// on every restart and it cannot coordinate several instances, so a retry that reaches another instance, or arrives
    /// after a restart, runs the operation again.
    /// </summary>
    public const int InMemoryStoreOutsideDevelopment = 1300;

    /// <summary>An operator released a record through the operator API (warning: a retry of its key will run the operation again).</summary>
    public const int RecordReleasedByOperator = 1301;

    /// <summary>An operator's release was refused: the record is gone, completed, or carries another fencing token (information).</summary>
    public const int OperatorReleaseRefused = 1302;

    /// <summary>The operator API could not reach the store; it answered <c>503</c> (error).</summary>
    public const int AdministrationStoreUnavailable = 1303;

    /// <summary>
    /// The operator API is mapped but the store does not implement <c>IIdempotencyStoreAdministration</c> (warning, once at
    /// start): its endpoints answer <c>501</c>. Typically a store wrapped by a decorator that does not pass the capability on.
    /// </summary>
    public const int AdministrationNotSupported = 1304;

    /// <summary>
    /// At start-up: an idempotent endpoint also carries output-cache metadata (<c>CacheOutput()</c>, <c>[OutputCache]</c>),
    /// so a cached answer could be served without Oncely seeing the request (warning).
    /// </summary>
    public const int OutputCachedIdempotentEndpoint = 1320;
}
