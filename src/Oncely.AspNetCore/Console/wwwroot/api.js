// The operator API, as the page talks to it: every request carries the operator's credential in the header the
// server named (never a cookie: credentials 'omit'), nothing is cached, and every refusal becomes the API's problem
// detail (RFC 9457) or, when the answer has none, one made from the status line.

export class OperatorApi {
  #base;
  #header;
  #scheme;
  #credential = '';

  constructor(base, header, scheme) {
    this.#base = base.replace(/\/+$/, '');
    this.#header = header || 'Authorization';
    this.#scheme = scheme;
    this.clockOffset = 0;
  }

  /** How the credential travels, for the sign-in form's hint: "Authorization: Bearer <credential>". */
  get credentialShape() {
    return `${this.#header}: ${this.#scheme ? this.#scheme + ' ' : ''}<credential>`;
  }

  set credential(value) {
    this.#credential = value ?? '';
  }

  /** The server's clock now (from the Date header of the last answer), in milliseconds since the epoch. */
  serverNow() {
    return Date.now() + this.clockOffset;
  }

  /** GET {base}{path}?params; answers { ok, status, body } or { ok: false, status, problem }. */
  async get(path, params = {}) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null) {
        query.append(name, value);
      }
    }

    const text = query.toString();
    return this.#send('GET', path + (text ? '?' + text : ''));
  }

  /**
   * POST {base}/records/release, fenced by the token the operator confirmed. The token is a decimal string (see
   * parseJson) written into the body as a JSON number digit for digit.
   */
  async release(record, fencingToken) {
    if (!/^-?[0-9]{1,20}$/.test(fencingToken)) {
      throw new Error(`Not a fencing token: ${fencingToken}`);
    }

    const fields = JSON.stringify({ tenant: record.tenant, operation: record.operation, key: record.key });
    return this.#send('POST', '/records/release', `${fields.slice(0, -1)},"fencingToken":${fencingToken}}`);
  }

  async #send(method, path, body) {
    const headers = { Accept: 'application/json, application/problem+json' };
    if (this.#credential) {
      headers[this.#header] = this.#scheme ? `${this.#scheme} ${this.#credential}` : this.#credential;
    }

    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
    }

    let response;
    try {
      response = await fetch(this.#base + path, {
        method,
        headers,
        body,
        credentials: 'omit',
        cache: 'no-store',
        redirect: 'error',
      });
    } catch (error) {
      return {
        ok: false,
        status: 0,
        problem: { title: 'The operator API did not answer', status: 0, detail: `The request to ${this.#base + path} failed before an answer came (${error.message}). Check the network and that the application is running.` },
      };
    }

    const date = Date.parse(response.headers.get('Date') ?? '');
    if (!Number.isNaN(date)) {
      this.clockOffset = date - Date.now();
    }

    if (response.ok) {
      const json = response.status === 204 ? null : await readJson(response);
      return { ok: true, status: response.status, body: json };
    }

    return { ok: false, status: response.status, problem: await problemOf(response) };
  }
}

async function readJson(response) {
  const type = response.headers.get('Content-Type') ?? '';
  if (!type.includes('json')) {
    return null;
  }

  try {
    return parseJson(await response.text());
  } catch {
    return null;
  }
}

/**
 * JSON.parse, except that fencing tokens stay exact decimal strings: they are 64-bit integers, often beyond what a
 * JavaScript number holds exactly (2^53), and a rounded token would be refused as stale. Only a member named
 * fencingToken or currentFencingToken is read this way; the same words inside a string are escaped (\") and left alone.
 */
export function parseJson(text) {
  return JSON.parse(text.replace(/"(fencingToken|currentFencingToken)"\s*:\s*(-?[0-9]+)/g, '"$1":"$2"'));
}

/** The answer's problem detail, or one built from its status when it has none. */
export async function problemOf(response) {
  const json = await readJson(response);
  if (json && typeof json === 'object' && (json.title || json.detail || json.type)) {
    return { ...json, status: json.status ?? response.status };
  }

  return {
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    detail: 'The operator API answered without a problem detail.',
  };
}
