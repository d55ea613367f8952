// The operator console: signs in with the credential the operator API accepts, shows live records (oldest first),
// one record's detail, the key-reuse audit and two charts, and releases a stuck key only after the operator typed the
// fencing token shown. Every piece of data is written with textContent (never parsed as HTML).

import { OperatorApi } from './api.js';
import { drawBars } from './chart.js';

const meta = name => document.querySelector(`meta[name="${name}"]`)?.content ?? '';
const api = new OperatorApi(meta('oncely-api'), meta('oncely-credential-header'), meta('oncely-credential-scheme'));
const $ = id => document.getElementById(id);
const STORAGE = 'oncely-console-credential';
const COUNT_PAGES = 10;     // per state, 500 records a page: counts stop at 5,000 ("at least")
const STALE_TYPE = 'idempotency-fencing-token-stale';
const COMPLETED_TYPE = 'idempotency-record-completed';

const state = {
  records: [],
  recordsQuery: null,
  recordsContinuation: null,
  audit: [],
  auditQuery: null,
  auditContinuation: null,
  detail: null,
};

// ---- times and ages ------------------------------------------------------------------------------------------

const local = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
});

function utcText(iso) {
  return new Date(iso).toISOString().replace('T', ' ').replace('Z', ' UTC');
}

/** A <time> in the browser's zone, with UTC on hover. */
function timeElement(iso) {
  const time = document.createElement('time');
  time.dateTime = iso;
  time.textContent = local.format(new Date(iso));
  time.title = utcText(iso);
  return time;
}

function duration(milliseconds) {
  const seconds = Math.max(0, Math.round(milliseconds / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

const ageOf = record => api.serverNow() - Date.parse(record.createdAt);

// ---- problems --------------------------------------------------------------------------------------------------

/** Fills target with the API's problem detail: title, status, detail, type (and what else it carries). */
function renderProblem(target, problem, lead) {
  const heading = document.createElement(target.id === 'problem' ? 'h2' : 'h3');
  heading.textContent = lead ? `${lead}: ${problem.title ?? 'error'}` : (problem.title ?? 'Error');
  const parts = [heading];
  const status = document.createElement('p');
  status.className = 'problem-status';
  status.textContent = `HTTP status ${problem.status}`;
  parts.push(status);
  if (problem.detail) {
    const detail = document.createElement('p');
    detail.className = 'problem-detail';
    detail.textContent = problem.detail;
    parts.push(detail);
  }

  if (problem.type) {
    const type = document.createElement('p');
    type.className = 'hint';
    type.append('Type: ');
    const code = document.createElement('code');
    code.textContent = problem.type;
    type.append(code);
    parts.push(type);
  }

  target.replaceChildren(...parts);
  target.hidden = false;
}

function showProblem(problem, lead) {
  renderProblem($('problem'), problem, lead);
}

function clearProblem() {
  $('problem').hidden = true;
  $('problem').replaceChildren();
}

// ---- sign in ---------------------------------------------------------------------------------------------------

const sections = ['overview', 'records', 'audit'];

function showSignedIn(signedIn) {
  $('signin').hidden = signedIn;
  $('nav').hidden = !signedIn;
  $('sign-out').hidden = !signedIn;
  $('who').hidden = !signedIn;
  for (const id of sections) $(id).hidden = !signedIn;
  if (!signedIn) $('detail').hidden = true;
}

async function signIn(credential, remember) {
  clearProblem();
  api.credential = credential;
  const probe = await api.get('/records', { limit: 1 });
  if (!probe.ok) {
    api.credential = '';
    sessionStorage.removeItem(STORAGE);
    showProblem(probe.problem, 'Not signed in');
    $('credential').focus();
    return;
  }

  if (remember) sessionStorage.setItem(STORAGE, credential);
  else sessionStorage.removeItem(STORAGE);
  $('credential').value = '';
  $('who').textContent = 'Signed in to the operator API';
  showSignedIn(true);
  await Promise.all([loadOverview(), loadRecords(), loadAudit()]);
  $('overview-title').scrollIntoView();
}

function signOut() {
  api.credential = '';
  sessionStorage.removeItem(STORAGE);
  state.records = [];
  state.audit = [];
  state.detail = null;
  $('records-table').tBodies[0].replaceChildren();
  $('audit-table').tBodies[0].replaceChildren();
  clearProblem();
  showSignedIn(false);
  $('credential').focus();
}

// ---- overview: counts per state and ages of in-progress records ---------------------------------------------------

async function countState(stateName) {
  let continuation;
  let count = 0;
  const created = [];
  for (let page = 0; page < COUNT_PAGES; page++) {
    const answer = await api.get('/records', { state: stateName, limit: 500, continuation });
    if (!answer.ok) return { problem: answer.problem };
    count += answer.body.records.length;
    for (const record of answer.body.records) created.push(Date.parse(record.createdAt));
    continuation = answer.body.continuation;
    if (!continuation) return { count, created, complete: true };
  }

  return { count, created, complete: false };
}

const AGE_BUCKETS = [
  { label: 'under 1 min', to: 60e3 },
  { label: '1–5 min', to: 300e3 },
  { label: '5–15 min', to: 900e3 },
  { label: '15–60 min', to: 3600e3, old: true },
  { label: '1–6 h', to: 21600e3, old: true },
  { label: '6 h or more', to: Infinity, old: true },
];

async function loadOverview() {
  $('overview-status').textContent = 'Counting…';
  const [inProgress, completed] = await Promise.all([countState('InProgress'), countState('Completed')]);
  const failed = inProgress.problem ?? completed.problem;
  if (failed) {
    $('overview-status').textContent = 'Could not count the records.';
    showProblem(failed, 'Counting records');
    return;
  }

  const atLeast = result => (result.complete ? String(result.count) : `at least ${result.count}`);
  drawBars($('counts-chart'), {
    id: 'counts-svg',
    title: 'Live records by state',
    bars: [
      { label: 'In progress', value: inProgress.count, text: atLeast(inProgress), className: 'bar-inprogress' },
      { label: 'Completed', value: completed.count, text: atLeast(completed), className: 'bar-completed' },
    ],
  });

  const now = api.serverNow();
  const counts = AGE_BUCKETS.map(() => 0);
  for (const created of inProgress.created) {
    const age = now - created;
    counts[AGE_BUCKETS.findIndex(bucket => age < bucket.to)]++;
  }

  drawBars($('ages-chart'), {
    id: 'ages-svg',
    title: 'In-progress records by age',
    bars: AGE_BUCKETS.map((bucket, index) => ({
      label: bucket.label,
      value: counts[index],
      text: bucket.old && counts[index] > 0 ? `${counts[index]} (old)` : String(counts[index]),
      className: bucket.old ? 'bar-age-old' : 'bar-age',
    })),
  });
  $('overview-status').textContent =
    `Counted at ${local.format(new Date(now))}: ${atLeast(inProgress)} in progress, ${atLeast(completed)} completed. Refresh to count again.`;
}

// ---- records -----------------------------------------------------------------------------------------------------

function recordsQueryFromForm() {
  const anonymous = $('f-anonymous').checked;
  const tenant = $('f-tenant').value.trim();
  return {
    tenant: anonymous ? '' : (tenant || undefined),
    operation: $('f-operation').value.trim() || undefined,
    state: $('f-state').value || undefined,
    olderThan: $('f-age').value || undefined,
    limit: $('f-limit').value,
  };
}

async function loadRecords(more = false) {
  if (!more) {
    state.recordsQuery = recordsQueryFromForm();
    state.records = [];
    state.recordsContinuation = null;
  }

  const answer = await api.get('/records', { ...state.recordsQuery, continuation: more ? state.recordsContinuation : undefined });
  if (!answer.ok) {
    showProblem(answer.problem, 'Listing records');
    renderRecords();
    return;
  }

  clearProblem();
  state.records.push(...answer.body.records);
  state.recordsContinuation = answer.body.continuation;
  renderRecords();
}

function stateBadge(stateName) {
  const badge = document.createElement('span');
  badge.className = `state state-${stateName.toLowerCase()}`;
  badge.textContent = stateName === 'InProgress' ? 'In progress' : stateName;
  return badge;
}

/** Adds a cell; on a phone the row shows as a card and the cell is named by its column's header. */
function cell(row, content, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  const header = row.closest('table')?.tHead?.rows[0]?.cells[row.cells.length];
  if (header) td.dataset.label = header.textContent;
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? '';
  row.append(td);
  return td;
}

function renderRecords() {
  // The API pages newest first; the page shows what it has loaded oldest first (the longest-stuck on top).
  const rows = [...state.records].sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt));
  const body = $('records-table').tBodies[0];
  body.replaceChildren();
  for (const record of rows) {
    const row = body.insertRow();
    row.dataset.key = record.key;
    row.dataset.tenant = record.tenant;
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'link mono';
    open.textContent = record.key;
    open.setAttribute('aria-label', `Open record ${record.key} (${record.tenant || 'anonymous scope'}, ${record.operation})`);
    open.addEventListener('click', () => openDetail(record));
    const key = document.createElement('th');
    key.scope = 'row';
    key.dataset.label = 'Key';
    key.append(open);
    row.append(key);
    cell(row, stateBadge(record.state));
    cell(row, duration(ageOf(record)));
    cell(row, String(record.attempts ?? 1), 'num attempts');
    cell(row, record.tenant === '' ? '(anonymous)' : record.tenant);
    cell(row, record.operation, 'mono');
    cell(row, String(record.fencingToken), 'mono');
    cell(row, timeElement(record.createdAt));
  }

  const query = state.recordsQuery ?? {};
  const what = query.state === 'InProgress' ? 'In-progress records' : query.state === 'Completed' ? 'Completed records' : 'Live records';
  const more = state.recordsContinuation ? ' More are older than these: load the next page.' : '';
  $('records-caption').textContent = rows.length === 0
    ? `${what}: none match.`
    : `${what}, oldest first: ${rows.length} shown.${more}`;
  $('records-more').hidden = !state.recordsContinuation;
}

// ---- one record ----------------------------------------------------------------------------------------------------

function field(list, name, value, id) {
  const dt = document.createElement('dt');
  dt.textContent = name;
  const dd = document.createElement('dd');
  if (id) dd.id = id;
  if (Array.isArray(value)) dd.append(...value);
  else if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  list.append(dt, dd);
}

function leaseText(record) {
  const left = Date.parse(record.leaseExpiresAt) - api.serverNow();
  return left > 0 ? ` (ends in ${duration(left)})` : ` (ended ${duration(-left)} ago: the next retry takes it over)`;
}

async function openDetail(record) {
  $('release-answer').replaceChildren();
  $('release-answer').className = 'answer';
  await showDetail(record);
  $('detail').hidden = false;
  $('detail-title').focus();
}

/** Looks the record up again (fresh from the store, with its stored answer) and shows it; gone when the store no longer has it. */
async function showDetail(record) {
  const answer = await api.get('/records/detail', { tenant: record.tenant, operation: record.operation, key: record.key });
  const list = $('detail-fields');
  if (!answer.ok && answer.status !== 404) {
    showProblem(answer.problem, 'Looking the record up');
    return;
  }

  const current = answer.ok ? answer.body.record : null;
  state.detail = current;
  list.replaceChildren();
  $('detail-title').textContent = `Record ${record.key}`;
  field(list, 'Tenant', record.tenant === '' ? '(anonymous scope)' : record.tenant, 'd-tenant');
  field(list, 'Operation', record.operation, 'd-operation');
  field(list, 'Key', record.key, 'd-key');
  if (!current) {
    field(list, 'State', 'Gone: no live record for this key (released, expired or never stored). The next request with it runs the operation.', 'd-state');
    $('release').hidden = true;
    showAnswer(null);
    return;
  }

  field(list, 'State', stateBadge(current.state), 'd-state');
  field(list, 'Attempts', attemptsText(current.attempts ?? 1), 'd-attempts');
  field(list, 'Fencing token', String(current.fencingToken), 'd-fencing-token');
  field(list, 'Fingerprint', current.fingerprint, 'd-fingerprint');
  field(list, 'Created', [timeElement(current.createdAt), ` (${duration(ageOf(current))} ago)`], 'd-created');
  field(list, 'Lease expires (store clock)', [timeElement(current.leaseExpiresAt), current.state === 'InProgress' ? leaseText(current) : ''], 'd-lease');
  field(list, 'Record expires', timeElement(current.expiresAt), 'd-expires');
  field(list, 'Recovery point', current.recoveryPoint ?? 'none', 'd-recovery-point');
  field(list, 'Stored status', current.statusCode == null ? 'none yet (no answer stored)' : String(current.statusCode), 'd-status');
  showAnswer(answer.body.answer, current);

  const releasable = current.state === 'InProgress';
  $('release').hidden = !releasable;
  if (releasable) {
    $('release-expected').textContent = String(current.fencingToken);
    $('release-effect').textContent = current.recoveryPoint
      ? `The record keeps its recovery point "${current.recoveryPoint}" and its lease ends now: the client's next retry takes it over and resumes from there.`
      : 'The record is deleted: the client\'s next retry runs the operation again, from the start.';
    $('release-token').value = '';
  }
}

function attemptsText(attempts) {
  return attempts > 1
    ? `${attempts} (taken over ${attempts - 1} time${attempts === 2 ? '' : 's'} after a lease ran out or a release)`
    : '1 (the execution that reserved it)';
}

const BODY_NOTES = {
  hidden: 'The body is not shown: stored bodies are payment data, and this application has not turned on ShowStoredBodies for the operator API.',
  omitted: 'No body is stored: it was over the stored-response limit, or this application does not keep success bodies (StoreSuccessfulResponseBodies is off). Retries get the status and headers with an empty body.',
  empty: 'The answer had no body.',
  binary: 'The body is not text; only its length is shown.',
  unreadable: 'The stored answer is encrypted and cannot be decrypted here: its Data Protection key was revoked or is gone. Retries of this key are refused with 410; the operation does not run again.',
};

/** The stored answer of a Completed record: status, headers in order, the body or why it is not shown. */
function showAnswer(stored, record) {
  const box = $('answer');
  box.hidden = !record;
  if (!record) return;
  const rows = $('headers-table').tBodies[0];
  rows.replaceChildren();
  const bodyBox = $('answer-body');
  bodyBox.hidden = true;
  bodyBox.textContent = '';
  $('answer-body-note').textContent = '';
  $('headers-table').closest('.table-wrap').hidden = !stored || !stored.readable;
  if (!stored) {
    $('answer-summary').textContent = record.state === 'InProgress'
      ? 'None yet: the operation has not completed, so nothing is stored to replay.'
      : 'The record has no stored answer to show (it changed while it was looked up). Refresh to look again.';
    return;
  }

  const length = stored.bodyLength == null ? '' : `, body ${stored.bodyLength} byte${stored.bodyLength === 1 ? '' : 's'}`;
  const sealed = stored.protected ? (stored.readable ? ' Encrypted at rest; decrypted here for operators.' : ' Encrypted at rest.') : '';
  $('answer-summary').textContent = `Status ${stored.statusCode}${length}.${sealed} Card numbers are masked.`;
  for (const header of stored.headers) {
    const row = rows.insertRow();
    const name = document.createElement('th');
    name.scope = 'row';
    name.className = 'mono';
    name.textContent = header.name;
    row.append(name);
    const value = row.insertCell();
    value.className = 'mono';
    value.textContent = header.value;
  }

  $('headers-caption').textContent = stored.headers.length === 0
    ? 'Stored headers: none.'
    : `Stored headers, in the order they are replayed: ${stored.headers.length}.`;
  if (stored.bodyStatus === 'shown') {
    bodyBox.textContent = stored.body;
    bodyBox.hidden = false;
    $('answer-body-note').textContent = stored.bodyTruncated
      ? `Stored body (card numbers masked), cut to its first ${stored.body.length} characters:`
      : 'Stored body (card numbers masked):';
  } else {
    $('answer-body-note').textContent = BODY_NOTES[stored.bodyStatus] ?? `The body is not shown (${stored.bodyStatus}).`;
  }
}

async function release(event) {
  event.preventDefault();
  const record = state.detail;
  const answerBox = $('release-answer');
  if (!record) return;
  const typed = $('release-token').value.trim();
  if (typed !== String(record.fencingToken)) {
    answerBox.className = 'answer';
    const heading = document.createElement('h3');
    heading.textContent = 'Not sent';
    const text = document.createElement('p');
    text.textContent = `"${typed}" is not the fencing token shown (${record.fencingToken}). Type it exactly to confirm.`;
    answerBox.replaceChildren(heading, text);
    $('release-token').focus();
    return;
  }

  $('release-submit').disabled = true;
  const result = await api.release(record, String(record.fencingToken));
  $('release-submit').disabled = false;
  const words = document.createElement('p');
  words.className = 'answer-words';
  if (result.ok) {
    answerBox.className = 'answer released';
    const heading = document.createElement('h3');
    heading.textContent = 'Released (204)';
    words.textContent = record.recoveryPoint
      ? `The lease of ${record.key} has ended; the client's next retry takes the record over and resumes at "${record.recoveryPoint}".`
      : `The record of ${record.key} is deleted; the client's next retry runs the operation again.`;
    answerBox.replaceChildren(heading, words);
  } else {
    const problem = result.problem;
    const type = String(problem.type ?? '');
    if (result.status === 409 && type.endsWith(STALE_TYPE)) {
      words.textContent = `The record now carries fencing token ${problem.currentFencingToken ?? '(unknown)'}, not ${record.fencingToken}. It changed since you looked (taken over by a retry, or released and reserved again). Look at it again before deciding.`;
    } else if (result.status === 409 && type.endsWith(COMPLETED_TYPE)) {
      words.textContent = 'The record is Completed. Its stored answer is what every retry gets; there is nothing to release.';
    } else if (result.status === 404) {
      words.textContent = 'The record is gone (already released, or expired). The next request with this key runs the operation.';
    } else {
      words.textContent = 'The operator API refused the release:';
    }

    renderProblem(answerBox, problem, 'Not released');
    answerBox.firstChild.after(words);
    answerBox.className = 'answer';
  }

  // Show the record as it is now, and the list without it.
  const shown = record;
  await showDetail(shown);
  await loadRecords();
  answerBox.focus?.();
}

// ---- audit ---------------------------------------------------------------------------------------------------------

async function loadAudit(more = false) {
  if (!more) {
    const tenant = $('a-tenant').value.trim();
    state.auditQuery = {
      tenant: tenant || undefined,
      key: $('a-key').value.trim() || undefined,
      operation: $('a-operation').value.trim() || undefined,
      limit: 50,
    };
    state.audit = [];
    state.auditContinuation = null;
  }

  const answer = await api.get('/audit', { ...state.auditQuery, continuation: more ? state.auditContinuation : undefined });
  if (!answer.ok) {
    showProblem(answer.problem, 'Reading the audit');
    return;
  }

  state.audit.push(...answer.body.entries);
  state.auditContinuation = answer.body.continuation;
  const body = $('audit-table').tBodies[0];
  body.replaceChildren();
  for (const entry of state.audit) {
    const row = body.insertRow();
    const when = document.createElement('th');
    when.scope = 'row';
    when.dataset.label = 'When';
    when.append(timeElement(entry.occurredAt));
    row.append(when);
    cell(row, entry.key, 'mono');
    cell(row, entry.tenant === '' ? '(anonymous)' : entry.tenant);
    cell(row, entry.operation, 'mono');
    const prints = document.createElement('span');
    prints.className = 'mono';
    prints.textContent = `${entry.storedFingerprint.slice(0, 12)}… / ${entry.attemptedFingerprint.slice(0, 12)}…`;
    prints.title = `stored ${entry.storedFingerprint}\nsent ${entry.attemptedFingerprint}`;
    cell(row, prints);
    const payload = document.createElement('pre');
    payload.textContent = entry.payload;
    cell(row, payload, 'payload');
  }
  $('audit-caption').textContent = state.audit.length === 0
    ? 'Key-reuse audit: no entries match.'
    : `Key-reuse audit, newest first: ${state.audit.length} shown.${state.auditContinuation ? ' More are older: load the next page.' : ''}`;
  $('audit-more').hidden = !state.auditContinuation;
}

// ---- wiring --------------------------------------------------------------------------------------------------------

$('credential-shape').textContent = api.credentialShape;
$('signin-form').addEventListener('submit', event => {
  event.preventDefault();
  // An empty credential is sent as none: the operator API's own answer (401) says what it wants.
  const credential = $('credential').value.trim();
  signIn(credential, $('remember').checked);
});
$('sign-out').addEventListener('click', signOut);
$('refresh').addEventListener('click', () => Promise.all([loadOverview(), loadRecords()]));
$('records-form').addEventListener('submit', event => { event.preventDefault(); loadRecords(); });
$('records-more').addEventListener('click', () => loadRecords(true));
$('f-anonymous').addEventListener('change', () => { $('f-tenant').disabled = $('f-anonymous').checked; });
$('detail-close').addEventListener('click', () => {
  $('detail').hidden = true;
  $('records-title').scrollIntoView();
  $('records-table').querySelector('button')?.focus();
});
$('release-form').addEventListener('submit', release);
$('audit-form').addEventListener('submit', event => { event.preventDefault(); loadAudit(); });
$('audit-more').addEventListener('click', () => loadAudit(true));

const remembered = sessionStorage.getItem(STORAGE);
if (remembered) {
  $('remember').checked = true;
  signIn(remembered, true);
} else {
  $('credential').focus();
}
document.body.dataset.ready = 'true';
