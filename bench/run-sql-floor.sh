#!/usr/bin/env bash
# The database's own floor under a payment's idempotency record: what PostgreSQL alone needs to hold a key and store an
# answer in the payment's transaction, measured with pgbench (PostgreSQL's load generator, a separate process) with no
# HTTP, no .NET and no Oncely. It bounds what any library that keeps its record in the payment's database can reach.
#
# A throw-away PostgreSQL server with default durability (fsync, synchronous_commit and full_page_writes on, as the
# load test's payment cells use), the same ledger as bench/Oncely.LoadTest (1000 accounts, a transfers table) and a
# records table with the columns and indexes of the PostgreSQL store's schema. Four transactions, each pipelined in one
# round trip, so round trips and the client library are out of the comparison:
#   transfer        BEGIN; two balance UPDATEs; the transfer INSERT; COMMIT (the payment without idempotency)
#   + record        the transfer with a completed record INSERTed before COMMIT (the least any stored answer costs)
#   + reservation   the transfer with the record INSERTed InProgress first and UPDATEd to Completed before COMMIT
#                   (the least a reservation that holds the key while the payment runs costs)
#   + read first    the reservation variant after a read of the key (the read a replay is answered from)
# Usage: bash bench/run-sql-floor.sh [--clients 16] [--seconds 5] [--repetitions 3]
# Within each repetition every variant runs in turn, each from empty tables after a CHECKPOINT. Prints a Markdown
# table: transactions/s (median over repetitions), the machine time per payment (cores × 1 s / rate: the machine is
# saturated at this concurrency), and, as medians of what each repetition measured against its own transfer cell,
# each variant's machine time over the transfer's and its rate over the transfer's.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
clients=16
seconds=5
repetitions=3
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --repetitions) repetitions="$2"; shift 2 ;;
    *) echo "run-sql-floor: unknown option $1" >&2; exit 2 ;;
  esac
done

bash "$root/scripts/ensure-postgres.sh" >&2
bin="$(dirname "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")"
pgbench="$bin/pgbench"
[ -x "$pgbench" ] || pgbench="$(command -v pgbench)"

work="$(mktemp -d /tmp/oncely-sql-floor.XXXXXX)"
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$work"
  run_as=(runuser -u postgres --)
fi
port=$(( 20000 + RANDOM % 20000 ))
cleanup() {
  "${run_as[@]}" "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"${run_as[@]}" "$bin/initdb" -D "$work/data" -A trust -U postgres >/dev/null
"${run_as[@]}" "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-p $port -k $work -c listen_addresses='' -c max_connections=64" start >/dev/null
psql=(psql -h "$work" -p "$port" -U postgres -q -v ON_ERROR_STOP=1 postgres)

"${psql[@]}" <<'SQL'
CREATE TABLE bench_accounts (id integer PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE bench_transfers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, idem_key text NOT NULL,
    from_account integer NOT NULL, to_account integer NOT NULL, amount bigint NOT NULL);
INSERT INTO bench_accounts SELECT g, 1000000000 FROM generate_series(0, 999) g;
-- The PostgreSQL store's records table (schema version 4): its columns, unique key and indexes.
CREATE SEQUENCE records_fencing_seq AS bigint;
CREATE TABLE records (
    tenant text NOT NULL, operation text NOT NULL, idem_key text NOT NULL, fingerprint text NOT NULL,
    state smallint NOT NULL, fencing_token bigint NOT NULL, lease_expires_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL, recovery_point text NULL, status_code integer NULL, headers jsonb NULL,
    body bytea NULL, body_omitted boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL, attempts integer NOT NULL DEFAULT 1,
    CONSTRAINT records_scope_key_uq UNIQUE (tenant, operation, idem_key));
CREATE INDEX records_expires_at ON records (expires_at);
CREATE INDEX records_in_progress ON records (created_at) WHERE state = 0;
SQL

# The payment: two accounts in id order and a key per transaction (random; a repeat in 10^12 is not a concern).
head='\set a random(0, 499)
\set b random(500, 999)
\set k random(1, 1000000000000)'
ledger="UPDATE bench_accounts SET balance = balance - 5 WHERE id = :a;
UPDATE bench_accounts SET balance = balance + 5 WHERE id = :b;
INSERT INTO bench_transfers (idem_key, from_account, to_account, amount) VALUES ('k' || :k, :a, :b, 5);"
fingerprint="'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'"
headers="'{\"Content-Type\":[\"application/json; charset=utf-8\"],\"Location\":[\"/transfers/k\"]}'"
body="'\\x7b226b6579223a226b31323334353637383930222c2266726f6d223a3132332c22746f223a3435362c22616d6f756e74223a313233347d'"
columns="tenant, operation, idem_key, fingerprint, state, fencing_token, lease_expires_at, expires_at, created_at, updated_at"
reserve="INSERT INTO records ($columns) VALUES ('', 'POST /payments', 'k' || :k, $fingerprint, 0, nextval('records_fencing_seq'),
  clock_timestamp() + interval '30 s', clock_timestamp() + interval '24 h', clock_timestamp(), clock_timestamp()) ON CONFLICT DO NOTHING;"
complete="UPDATE records SET state = 1, status_code = 201, headers = $headers, body = $body,
  expires_at = clock_timestamp() + interval '24 h', updated_at = clock_timestamp()
  WHERE tenant = '' AND operation = 'POST /payments' AND idem_key = 'k' || :k AND state = 0;"
record="INSERT INTO records ($columns, status_code, headers, body) VALUES ('', 'POST /payments', 'k' || :k, $fingerprint, 1,
  nextval('records_fencing_seq'), clock_timestamp() + interval '30 s', clock_timestamp() + interval '24 h', clock_timestamp(),
  clock_timestamp(), 201, $headers, $body) ON CONFLICT DO NOTHING;"
read="SELECT fingerprint, state, fencing_token, status_code, headers::text, body FROM records
  WHERE tenant = '' AND operation = 'POST /payments' AND idem_key = 'k' || :k AND expires_at > clock_timestamp();"

write_script() {
  printf '%s\n\\startpipeline\n%s\n\\endpipeline\n' "$head" "$2" > "$work/$1.sql"
}
write_script transfer "BEGIN;
$ledger
COMMIT;"
write_script record "BEGIN;
$ledger
$record
COMMIT;"
write_script reservation "BEGIN;
$reserve
$ledger
$complete
COMMIT;"
write_script read-first "$read
BEGIN;
$reserve
$ledger
$complete
COMMIT;"

variants=(transfer record reservation read-first)
cores="$(nproc)"
declare -A rates ratios extras
for ((r = 1; r <= repetitions; r++)); do
  for v in "${variants[@]}"; do
    # Every cell starts from the same state: empty transfer and record tables, and a checkpoint behind it (so no cell
    # pays for another's full-page writes or a bigger index).
    "${psql[@]}" -c "TRUNCATE bench_transfers, records" -c "CHECKPOINT"
    tps="$("$pgbench" -h "$work" -p "$port" -U postgres -n -M prepared -c "$clients" -j 2 -T "$seconds" -f "$work/$v.sql" postgres 2>&1 \
      | awk '/^tps = /{print $3; exit}')"
    [ -n "$tps" ] || { echo "run-sql-floor: pgbench gave no rate for $v" >&2; exit 1; }
    rates[$v]="${rates[$v]:-} $tps"
    echo "run-sql-floor: repetition $r, $v: $tps transactions/s" >&2
  done
  # Ratios and extra machine time within the repetition, against its own transfer cell.
  base="$(echo "${rates[transfer]}" | awk '{print $NF}')"
  for v in "${variants[@]}"; do
    rate="$(echo "${rates[$v]}" | awk '{print $NF}')"
    ratios[$v]="${ratios[$v]:-} $(awk -v a="$rate" -v b="$base" 'BEGIN {printf "%.4f", a / b}')"
    extras[$v]="${extras[$v]:-} $(awk -v a="$rate" -v b="$base" -v c="$cores" 'BEGIN {printf "%.1f", c * 1e6 / a - c * 1e6 / b}')"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo
echo "pgbench -M prepared -c $clients -j 2 -T $seconds, $repetitions repetitions, PostgreSQL $("$bin/postgres" --version | awk '{print $3}') with default durability, $cores cores shared by pgbench and the server; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| transaction (one pipelined round trip) | transactions/s (median) | over repetitions | machine µs per payment (median) | µs over the transfer (median within a repetition) | rate / transfer (median within a repetition) |"
echo "|---|--:|--:|--:|--:|--:|"
for v in "${variants[@]}"; do
  rate="$(echo "${rates[$v]}" | median)"
  span="$(echo "${rates[$v]}" | tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f–%.0f", lo, hi}')"
  ratio="$(echo "${ratios[$v]}" | median)"
  extra="$(echo "${extras[$v]}" | median)"
  awk -v v="$v" -v rate="$rate" -v cores="$cores" -v span="$span" -v ratio="$ratio" -v extra="$extra" 'BEGIN {
    printf "| %s | %.0f | %s | %.0f | %.0f | %.2f |\n", v, rate, span, cores * 1e6 / rate, extra, ratio }'
done
