import { Backoff, errorMessage, silentLogger, sleep as runtimeSleep, type Logger } from '@knet/runtime';
import { metalApiUrl } from './api-url';
import {
  errorBodyMessages,
  kindOfStatus,
  MetalApiError,
  redact,
  type MetalApiErrorFields,
  type MetalErrorKind,
} from './errors';
import { isCertificateError, networkErrorCode, neverSent, nodeHttp, type HttpFetch } from './http';
import { serverWaitMs } from './rate-limit';

export const DEFAULT_USER_AGENT = 'knet-metal/0.0.0';
/** Per HTTP attempt, headers and body. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** HTTP requests per call, the first included. */
export const DEFAULT_MAX_ATTEMPTS = 4;
/** What one call may sleep in total (retry waits and the rate-limit gate) before it gives up. */
export const DEFAULT_MAX_WAIT_MS = 30_000;
/** A larger 2xx answer is refused: a page of 1000 devices is a few MiB. */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** How much of an error answer is read (for its messages); the rest is dropped. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** Retries without a wait from the server: exponential from 1 s, doubling, capped at 15 s, ±50 % jitter. */
export const RETRY_BASE_MS = 1000;
export const RETRY_MAX_MS = 15_000;

/** One HTTP attempt, as the `onCall` hook sees it (for call counters and latency metrics). */
export interface MetalCall {
  /** The spec's operationId: `createDevice`, `findProjectDevices`, `findDeviceById`… */
  operation: string;
  method: string;
  /** The path under the API URL, without the query. */
  path: string;
  /** The HTTP status; absent when no answer came. */
  status?: number;
  /** 1 for the first request of a call, 2 for its first retry… */
  attempt: number;
  durationMs: number;
  /** `ok` for a 2xx, else what the answer (or its absence) means. */
  kind: 'ok' | MetalErrorKind;
}

export interface MetalClientOptions {
  /** The API token, sent as `X-Auth-Token`; never logged nor put in an error. */
  token: string;
  /** Default `https://api.equinix.com/metal/v1`; any http(s) endpoint serving the metal/v1 spec. */
  apiUrl?: string;
  /** Sent as `User-Agent`, e.g. `capi-packet-manager/0.1.0` (default `knet-metal/0.0.0`). */
  userAgent?: string;
  /** Sent as `X-Consumer-Token` when given (CAPEM sends `CAPP-v1beta1`); never logged. */
  consumerToken?: string;
  /** Per HTTP attempt (default 30 s). */
  timeoutMs?: number;
  /** HTTP requests per call, retries included (default 4). */
  maxAttempts?: number;
  /** Total sleep per call across retries and the rate-limit gate (default 30 s). */
  maxWaitMs?: number;
  /** Pages a list may have before it fails (default 100). */
  maxPages?: number;
  /** A PEM CA (bundle) trusted besides the system roots, for an https endpoint with a private CA. */
  caPem?: string;
  /** Replaces the built-in node:http(s) transport (tests; `globalThis.fetch`). Not with `caPem`. */
  fetch?: HttpFetch;
  /** How waits are made (default: real timers). */
  sleep?: (ms: number) => Promise<void>;
  /** The clock for rate-limit resets and the gate, in ms since the epoch (default `Date.now`). */
  now?: () => number;
  /** For the backoff jitter (default `Math.random`). */
  random?: () => number;
  /** Called after every HTTP attempt. */
  onCall?: (call: MetalCall) => void;
  logger?: Logger;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** One logical call. */
export interface MetalRequest {
  operation: string;
  method: HttpMethod;
  /** Under the API URL, ids already encoded: `/devices/<id>`. */
  path: string;
  query?: URLSearchParams;
  /** Sent as JSON. */
  body?: unknown;
  /** An absolute URL under the API URL to use instead of path and query (a next page). */
  url?: string;
}

/** A 2xx answer: the parsed JSON body (undefined when empty, as for 204). */
export interface MetalAnswer {
  status: number;
  headers: Headers;
  json: unknown;
}

type Outcome =
  | { kind: 'answer'; status: number; headers: Headers; text: string; cut: boolean }
  | { kind: 'failure'; timedOut: boolean; error: unknown };

/** What to do after one attempt. */
type Step = { done: MetalAnswer } | { fail: MetalApiError } | { retryIn: number; last: MetalApiError };

/**
 * The client-wide gate a 429 closes: until `until`, no request is sent (each waits, or fails as
 * `transient` when the wait is longer than it may sleep). Once it passes, the first request is the
 * probe and the others wait for its answer, so that a limit that has not really reset costs one
 * more 429, not one per waiting call.
 */
class RateGate {
  until = 0;
  probe?: Promise<void>;
  private reopening = false;

  close(until: number): void {
    this.until = Math.max(this.until, until);
    this.reopening = true;
  }

  /** Called as a request is sent: when the gate was closed, this request becomes the probe. */
  enter(): () => void {
    if (!this.reopening) return () => undefined;
    this.reopening = false;
    let done: () => void = () => undefined;
    this.probe = new Promise<void>((resolve) => (done = resolve));
    return () => {
      this.probe = undefined;
      done();
    };
  }
}

/**
 * HTTP to the Metal API: JSON with `X-Auth-Token`, `User-Agent` (and `X-Consumer-Token`), one
 * status-classified `MetalApiError` for every failure, bounded retries of 429/503 (honouring
 * `Retry-After` and `X-RateLimit-Reset`) and of network failures, the client-wide rate-limit gate,
 * a timeout per attempt and a cap on answer sizes. A POST that may have reached the server is
 * never sent twice.
 */
export class MetalTransport {
  readonly apiUrl: string;
  readonly maxPages: number;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly headers: Record<string, string>;
  private readonly secrets: string[];
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly maxWaitMs: number;
  private readonly fetchFn: HttpFetch;
  private readonly closeHttp: () => void;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly onCall: (call: MetalCall) => void;
  private readonly logger: Logger;
  private readonly gate = new RateGate();

  constructor(o: MetalClientOptions) {
    if (typeof o.token !== 'string' || o.token.trim() === '') {
      throw new Error(
        'Metal API client: no API token given: set the token (X-Auth-Token) of a project or user',
      );
    }
    if (o.fetch && o.caPem) {
      throw new Error(
        'Metal API client: caPem works with the built-in transport only: give fetch or caPem, not both',
      );
    }
    this.apiUrl = metalApiUrl(o.apiUrl);
    const url = new URL(this.apiUrl);
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.timeoutMs = positive('timeoutMs', o.timeoutMs, DEFAULT_TIMEOUT_MS);
    this.maxAttempts = positive('maxAttempts', o.maxAttempts, DEFAULT_MAX_ATTEMPTS);
    this.maxWaitMs = nonNegative('maxWaitMs', o.maxWaitMs, DEFAULT_MAX_WAIT_MS);
    this.maxPages = positive('maxPages', o.maxPages, 100);
    this.headers = {
      'X-Auth-Token': o.token,
      'User-Agent': o.userAgent ?? DEFAULT_USER_AGENT,
      Accept: 'application/json',
      ...(o.consumerToken ? { 'X-Consumer-Token': o.consumerToken } : {}),
    };
    this.secrets = [o.token, o.consumerToken ?? ''];
    if (o.fetch) {
      this.fetchFn = o.fetch;
      this.closeHttp = () => undefined;
    } else {
      const http = nodeHttp(o.caPem ? { caPem: o.caPem } : {});
      this.fetchFn = http.fetch;
      this.closeHttp = http.close;
    }
    this.sleep =
      o.sleep ??
      (async (ms) => {
        await runtimeSleep(ms);
      });
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.onCall = o.onCall ?? (() => undefined);
    this.logger = o.logger ?? silentLogger;
  }

  /** Releases kept-alive connections (calls still work afterwards, on new ones). */
  close(): void {
    this.closeHttp();
  }

  /** The absolute URL of a path and query under the API URL. */
  url(path: string, query?: URLSearchParams): string {
    const q = query?.toString();
    return `${this.apiUrl}${path}${q ? `?${q}` : ''}`;
  }

  /** The path under the API URL of an absolute URL that is under it, else undefined. */
  pathUnderApi(url: URL): string | undefined {
    if (url.origin !== this.origin) return undefined;
    if (this.basePath === '') return url.pathname;
    return url.pathname.startsWith(`${this.basePath}/`)
      ? url.pathname.slice(this.basePath.length)
      : undefined;
  }

  /**
   * Where an href the API returned points: absolute, from the host's root (`/metal/v1/…`), or from
   * the API's root (`/projects/…`, as the API spells hrefs when it is served at the host's root).
   * Undefined when it points off the API URL (another host or scheme, or outside its path).
   */
  resolveHref(href: string): URL | undefined {
    let url: URL;
    try {
      const fromApiRoot = href.startsWith('/') && !href.startsWith('//') && this.basePath !== '';
      url =
        fromApiRoot && !href.startsWith(`${this.basePath}/`)
          ? new URL(`${this.basePath}${href}`, this.origin)
          : new URL(href, `${this.apiUrl}/`);
    } catch {
      return undefined;
    }
    return this.pathUnderApi(url) === undefined ? undefined : url;
  }

  /** An error of this client about a call, with the secrets removed from its text. */
  error(f: MetalApiErrorFields): MetalApiError {
    return new MetalApiError({
      ...f,
      detail: redact(f.detail, this.secrets),
      ...(f.errors ? { errors: f.errors.map((m) => redact(m, this.secrets)) } : {}),
    });
  }

  /** One logical call: attempts, waits and retries until a 2xx, a final error or the budget. */
  async request(req: MetalRequest): Promise<MetalAnswer> {
    const backoff = new Backoff({
      baseMs: RETRY_BASE_MS,
      maxMs: RETRY_MAX_MS,
      factor: 2,
      jitter: 0.5,
      random: this.random,
    });
    let retryAt = 0;
    let waited = 0;
    let last: MetalApiError | undefined;
    for (let attempt = 1; ; attempt++) {
      // Hold off until this call's retry time and the client's gate have passed, and while the
      // gate's probe is out.
      for (;;) {
        const wait = Math.max(retryAt, this.gate.until) - this.now();
        if (wait > 0) {
          if (waited + wait > this.maxWaitMs) throw this.heldBack(req, wait, last);
          await this.sleep(wait);
          waited += wait;
        } else if (this.gate.probe) {
          await this.gate.probe;
        } else {
          break;
        }
      }
      const release = this.gate.enter();
      let step: Step;
      try {
        step = this.judge(req, attempt, await this.attempt(req, attempt), backoff);
      } finally {
        release();
      }
      if ('done' in step) return step.done;
      if ('fail' in step) throw step.fail;
      if (attempt >= this.maxAttempts || waited + step.retryIn > this.maxWaitMs) throw step.last;
      this.logger.debug(
        {
          operation: req.operation,
          attempt,
          waitMs: step.retryIn,
          kind: step.last.kind,
          status: step.last.status,
        },
        'Metal API call failed: retrying',
      );
      retryAt = this.now() + step.retryIn;
      last = step.last;
    }
  }

  /** What an attempt's outcome means: the answer, a final error, or a retry after a wait. */
  private judge(req: MetalRequest, attempt: number, out: Outcome, backoff: Backoff): Step {
    const { method } = req;
    const path = this.displayPath(req);
    if (out.kind === 'failure') {
      const reason = out.timedOut
        ? `no answer within ${seconds(this.timeoutMs)}`
        : `cannot reach ${new URL(this.apiUrl).host}: ${networkErrorCode(out.error) ?? errorMessage(out.error)}`;
      const retryIn = backoff.next();
      const fields = { kind: 'unreachable' as const, method, path, cause: out.error, retryAfterMs: retryIn };
      if (method === 'POST' && !neverSent(out.error)) {
        return {
          fail: this.error({
            ...fields,
            detail: `${reason}; the request may have reached the API, so it is not sent again: look the object up (by its tags) before creating it again`,
          }),
        };
      }
      if (isCertificateError(out.error)) {
        return {
          fail: this.error({ ...fields, detail: `${reason} (set caPem to the CA of ${this.apiUrl})` }),
        };
      }
      return { retryIn, last: this.error({ ...fields, detail: `${reason} (attempt ${attempt})` }) };
    }

    const { status, headers } = out;
    const waitMs = serverWaitMs(status, headers, this.now());
    if (status >= 200 && status < 300) {
      if (waitMs !== undefined && waitMs > 0) this.closeGate(waitMs, 'X-RateLimit-Remaining is 0');
      if (out.cut) {
        return {
          fail: this.error({
            kind: 'terminal',
            status,
            method,
            path,
            detail: `${status} answer larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB: refused (ask for smaller pages with per_page)`,
          }),
        };
      }
      return { done: { status, headers, json: this.parse(req, status, headers, out.text) } };
    }
    const kind = kindOfStatus(status);
    const errors = errorBodyMessages(out.text);
    const said = errors.length > 0 ? `: ${errors.join('; ')}` : bodyNote(headers, out);
    if (kind === 'transient') {
      const retryIn = waitMs ?? backoff.next();
      if (status === 429) this.closeGate(retryIn, 'HTTP 429');
      const why = status === 429 ? 'rate-limited' : 'unavailable';
      return {
        retryIn,
        last: this.error({
          kind,
          status,
          method,
          path,
          errors,
          retryAfterMs: retryIn,
          detail: `${status} ${why}, retry in ${seconds(retryIn)} (attempt ${attempt})${said}`,
        }),
      };
    }
    return {
      fail: this.error({ kind, status, method, path, errors, detail: `${status} ${HINTS[kind]}${said}` }),
    };
  }

  /** The transient error of a call that may not wait as long as the gate or its retry asks. */
  private heldBack(req: MetalRequest, waitMs: number, last: MetalApiError | undefined): MetalApiError {
    return this.error({
      kind: 'transient',
      ...(last?.status !== undefined ? { status: last.status } : {}),
      method: req.method,
      path: this.displayPath(req),
      errors: last?.errors ?? [],
      retryAfterMs: waitMs,
      detail: `${last?.status ?? 429} rate-limited: requests are held for ${seconds(waitMs)}, more than this call may still wait (${seconds(
        this.maxWaitMs,
      )} in all): retry later`,
    });
  }

  private closeGate(waitMs: number, why: string): void {
    const until = this.now() + waitMs;
    if (until > this.gate.until) {
      this.logger.warn(
        { waitMs },
        `Metal API rate limit (${why}): holding every request for ${seconds(waitMs)}`,
      );
    }
    this.gate.close(until);
  }

  /** One HTTP request, timed out after `timeoutMs` (headers and body). */
  private async attempt(req: MetalRequest, attempt: number): Promise<Outcome> {
    const url = req.url ?? this.url(req.path, req.query);
    const headers: Record<string, string> = { ...this.headers };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['Content-Type'] = 'application/json';
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeoutMs);
    const started = performance.now();
    let outcome: Outcome;
    try {
      const res = await this.fetchFn(url, {
        method: req.method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal: abort.signal,
        redirect: 'manual',
      });
      const { text, cut } = await readBody(res, res.status >= 200 && res.status < 300);
      outcome = { kind: 'answer', status: res.status, headers: res.headers, text, cut };
    } catch (e) {
      outcome = { kind: 'failure', timedOut: abort.signal.aborted, error: e };
    } finally {
      clearTimeout(timer);
    }
    const status = outcome.kind === 'answer' ? outcome.status : undefined;
    this.onCall({
      operation: req.operation,
      method: req.method,
      path: this.displayPath(req),
      ...(status !== undefined ? { status } : {}),
      attempt,
      durationMs: performance.now() - started,
      kind:
        status === undefined ? 'unreachable' : status >= 200 && status < 300 ? 'ok' : kindOfStatus(status),
    });
    return outcome;
  }

  private parse(req: MetalRequest, status: number, headers: Headers, text: string): unknown {
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw this.error({
        kind: 'terminal',
        status,
        method: req.method,
        path: this.displayPath(req),
        detail: `${status} answer is not JSON (${headers.get('content-type') ?? 'no content-type'}): is ${this.apiUrl} the Metal API?`,
      });
    }
  }

  private displayPath(req: MetalRequest): string {
    return req.url ? (this.pathUnderApi(new URL(req.url)) ?? req.path) : req.path;
  }
}

/**
 * The body as text, at most `MAX_RESPONSE_BYTES` of a 2xx answer and `MAX_ERROR_BODY_BYTES` of an
 * error answer; `cut` when there was more (a 2xx answer announcing more is not read at all).
 */
async function readBody(res: Response, ok: boolean): Promise<{ text: string; cut: boolean }> {
  const cap = ok ? MAX_RESPONSE_BYTES : MAX_ERROR_BODY_BYTES;
  const declared = Number(res.headers.get('content-length'));
  if (ok && Number.isFinite(declared) && declared > cap) {
    await res.body?.cancel().catch(() => undefined);
    return { text: '', cut: true };
  }
  if (!res.body) return { text: '', cut: false };
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { text: Buffer.concat(chunks).toString('utf8'), cut: false };
    size += value.byteLength;
    if (size > cap) {
      await reader.cancel().catch(() => undefined);
      chunks.push(Buffer.from(value.subarray(0, value.byteLength - (size - cap))));
      return { text: Buffer.concat(chunks).toString('utf8'), cut: true };
    }
    chunks.push(Buffer.from(value));
  }
}

/** What each non-transient kind says after the status. */
const HINTS: Record<Exclude<MetalErrorKind, 'transient'>, string> = {
  unauthorized: 'unauthorized: the API token is missing, wrong or revoked',
  forbidden: 'forbidden: no permission (a device answers 403 when its provisioning failed)',
  gone: 'not found',
  invalid: 'invalid: validation failed or a quota is exhausted',
  unreachable: 'no answer',
  terminal: 'unexpected answer',
};

/** When an error answer gave no messages: why (not JSON, cut), or nothing. */
function bodyNote(headers: Headers, out: { text: string; cut: boolean }): string {
  if (out.cut) return ` (error body larger than ${MAX_ERROR_BODY_BYTES / 1024} KiB, not read)`;
  if (out.text.trim() === '') return '';
  const type = headers.get('content-type') ?? 'no content-type';
  return type.includes('json') ? ' (error body without messages)' : ` (error body is not JSON: ${type})`;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`Metal API client: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`Metal API client: ${name} must be an integer >= 0, got ${String(value)}`);
  }
  return value;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}
