import {
  Backoff,
  errorMessage,
  parseRetryAfter,
  silentLogger,
  sleep as runtimeSleep,
  type Logger,
} from '@knet/runtime';
import { z } from 'zod';
import { isAllowedApiOrigin, twingateBaseUrl } from './base-url';
import {
  abortError,
  describeZodError,
  redact,
  TwingateError,
  type GraphqlErrorDetail,
  type TwingateErrorDetails,
  type TwingateErrorKind,
} from './errors';

/** Where the admin GraphQL API answers, under the base URL. */
export const GRAPHQL_PATH = '/api/graphql/';
/** The REST endpoint that checks a connector's token pair (what the Terraform provider uses). */
export const VALIDATE_TOKENS_PATH = '/api/v4/connector/validate_tokens';
/** A larger answer is refused (`protocol`): a page of 50 connectors is about 25 KiB. */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** How much of a non-2xx answer is read (for the GraphQL message of a 400); the rest is dropped. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** The wait after a 429 without a usable Retry-After (what tg-cli does). */
export const DEFAULT_RETRY_AFTER_MS = 60_000;
/** 5xx and network errors: full-jitter exponential backoff from 500 ms, doubling, capped at 30 s. */
export const RETRY_BASE_MS = 500;
export const RETRY_MAX_MS = 30_000;

export const DEFAULT_USER_AGENT = 'knet-twingate/0.0.0';
export const DEFAULT_DEADLINE_MS = 120_000;
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 30_000;
/** In-flight requests per client, like the Terraform provider. */
export const DEFAULT_MAX_CONCURRENCY = 3;
/** `first:` of every page, like the Terraform provider. */
export const DEFAULT_PAGE_SIZE = 50;

export interface TwingateClientOptions {
  /** The tenant's API key (sent as `X-API-KEY`; never logged nor put in an error). */
  apiKey: string;
  /** `acme`, `acme.twingate.com` or `https://acme.twingate.com` → `https://acme.twingate.com`. */
  account?: string;
  /** Overrides `account`: the base URL (GraphQL at `${apiUrl}/api/graphql/`); http only for loopback hosts. */
  apiUrl?: string;
  /** Default `knet-twingate/0.0.0`. */
  userAgent?: string;
  /** Per logical call, retries and waits included (default 120 s). */
  deadlineMs?: number;
  /** Per HTTP attempt (default 30 s). */
  attemptTimeoutMs?: number;
  /** In-flight requests cap (default 3). */
  maxConcurrency?: number;
  /** `first:` of each page (default 50). */
  pageSize?: number;
  /** Aborts every call in flight and every later one (they reject with an `AbortError`). */
  signal?: AbortSignal;
  logger?: Logger;
  fetch?: typeof fetch;
  /** How waits are made (tests record them); the deadline counts a wait at the length asked. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** For the backoff jitter. */
  random?: () => number;
}

/** Counters of a client, since it was made. */
export interface TwingateStats {
  /** Logical calls: one per GraphQL request a method needs (each page counts), and validateTokens. */
  calls: number;
  /** HTTP requests sent for them, retries and shard re-sends included (not the shard probe). */
  attempts: number;
  /** Calls whose document is a query (validateTokens counts as a read). */
  reads: number;
  /** Calls whose document is a mutation. */
  writes: number;
  /** Waits followed by another attempt (after a 429, a 5xx or a network error). */
  retries: number;
  /** 429 answers seen. */
  rateLimited: number;
}

/**
 * What the entity modules (remote-networks, connectors, tokens) need from the transport: one
 * GraphQL request parsed with a zod schema, the page size, and errors that name the host.
 */
export interface GraphqlRunner {
  /** The current API host (`acme.twingate.com`, or the shard after a redirect). */
  readonly host: string;
  readonly pageSize: number;
  /**
   * One logical call: sends `{query, variables}`, retries as documented, throws `graphql` when the
   * answer has `errors`, and returns `data` parsed with `schema` (`protocol` error on mismatch).
   */
  graphql<T>(
    operation: string,
    document: string,
    variables: Record<string, unknown>,
    schema: z.ZodType<T>,
  ): Promise<T>;
  /** A `TwingateError` whose message has the API key removed. */
  error(
    kind: TwingateErrorKind,
    operation: string,
    message: string,
    details?: TwingateErrorDetails,
  ): TwingateError;
}

interface Exchange {
  operation: string;
  path: string;
  body: string;
  headers?: Record<string, string>;
  write: boolean;
  /** Statuses returned to the caller rather than treated as failures (validate_tokens' 401/403). */
  passStatuses?: readonly number[];
}

interface Answer {
  status: number;
  statusText: string;
  headers: Headers;
  body: Buffer;
}

type Outcome =
  | ({ kind: 'answer' } & Answer)
  | { kind: 'failure'; why: 'attempt-timeout' | 'deadline' | 'network'; error?: unknown };

/** The last retryable failure of a call, thrown as it is once the deadline leaves no room to retry. */
interface RetryableFailure {
  kind: 'http' | 'network';
  /** What happened, without the operation: `HTTP 503 from acme.twingate.com`. */
  detail: string;
  status?: number;
  cause?: unknown;
}

const graphqlEnvelope = z.object({
  data: z.record(z.string(), z.unknown()).nullish(),
  errors: z
    .array(
      z.looseObject({
        message: z.string(),
        path: z.array(z.union([z.string(), z.number()])).nullish(),
      }),
    )
    .nullish(),
});

/**
 * HTTP to the Twingate admin API: POST JSON `{query, variables}` with `X-API-KEY`, retries within a
 * per-call deadline (429 after Retry-After; 5xx and network errors with full-jitter backoff), the
 * shard probe (HEAD, then 307/308 → the shard's origin), a cap on requests in flight and on the size
 * of answers. Everything above it (queries, pagination, the mutation contract) is in the entity
 * modules.
 */
export class Transport implements GraphqlRunner {
  readonly stats: TwingateStats = { calls: 0, attempts: 0, reads: 0, writes: 0, retries: 0, rateLimited: 0 };
  readonly pageSize: number;
  private base: string;
  private shardProbe?: Promise<void>;
  private readonly apiKey: string;
  private readonly userAgent: string;
  private readonly deadlineMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly signal?: AbortSignal;
  private readonly logger: Logger;
  private readonly fetchFn: typeof fetch;
  private readonly sleepFn: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly slots: Semaphore;

  constructor(o: TwingateClientOptions) {
    if (!o.apiKey) throw new Error('twingate: no API key given (TWINGATE_API_KEY)');
    this.base = twingateBaseUrl(o);
    this.apiKey = o.apiKey;
    this.userAgent = o.userAgent ?? DEFAULT_USER_AGENT;
    this.deadlineMs = positive('deadlineMs', o.deadlineMs, DEFAULT_DEADLINE_MS);
    this.attemptTimeoutMs = positive('attemptTimeoutMs', o.attemptTimeoutMs, DEFAULT_ATTEMPT_TIMEOUT_MS);
    this.pageSize = positive('pageSize', o.pageSize, DEFAULT_PAGE_SIZE);
    this.slots = new Semaphore(positive('maxConcurrency', o.maxConcurrency, DEFAULT_MAX_CONCURRENCY));
    if (o.signal) this.signal = o.signal;
    this.logger = o.logger ?? silentLogger;
    this.fetchFn = o.fetch ?? globalThis.fetch;
    this.sleepFn =
      o.sleep ??
      (async (ms, signal) => {
        await runtimeSleep(ms, signal);
      });
    this.random = o.random ?? Math.random;
  }

  /** The base URL every call goes to: the one configured, or the shard's origin after a redirect. */
  get baseUrl(): string {
    return this.base;
  }

  get host(): string {
    return new URL(this.base).host;
  }

  error(
    kind: TwingateErrorKind,
    operation: string,
    message: string,
    details?: TwingateErrorDetails,
  ): TwingateError {
    return new TwingateError(kind, operation, redact(message, [this.apiKey]), details);
  }

  async graphql<T>(
    operation: string,
    document: string,
    variables: Record<string, unknown>,
    schema: z.ZodType<T>,
  ): Promise<T> {
    const answer = await this.exchange({
      operation,
      path: GRAPHQL_PATH,
      body: JSON.stringify({ query: document, variables }),
      write: isMutation(document),
    });
    const envelope = graphqlEnvelope.safeParse(this.json(operation, answer));
    if (!envelope.success) {
      throw this.error(
        'protocol',
        operation,
        `${operation}: unexpected answer from ${this.host}: ${describeZodError('$', envelope.error)}`,
        { status: answer.status },
      );
    }
    const { data, errors } = envelope.data;
    if (errors && errors.length > 0) {
      const graphqlErrors: GraphqlErrorDetail[] = errors.map((e) => {
        const message = redact(e.message, [this.apiKey]);
        return e.path ? { message, path: e.path } : { message };
      });
      const [first] = graphqlErrors as [GraphqlErrorDetail, ...GraphqlErrorDetail[]];
      const where = [first.path ? `path ${first.path.join('.')}` : '', `at ${this.host}`]
        .filter(Boolean)
        .join(', ');
      const more = errors.length > 1 ? ` (+${errors.length - 1} more)` : '';
      throw this.error('graphql', operation, `${operation}: ${first.message} (${where})${more}`, {
        status: answer.status,
        graphqlErrors,
      });
    }
    if (!data) {
      throw this.error(
        'protocol',
        operation,
        `${operation}: the answer from ${this.host} has neither data nor errors`,
      );
    }
    const parsed = schema.safeParse(data);
    if (!parsed.success) {
      throw this.error(
        'protocol',
        operation,
        `${operation}: unexpected answer from ${this.host}: ${describeZodError('data', parsed.error)}`,
      );
    }
    return parsed.data;
  }

  /**
   * `POST /api/v4/connector/validate_tokens` with `Authorization: Bearer <access>` and
   * `{"refresh_token"}`: true on 2xx, false on 401/403. One logical call (a read).
   */
  async validateTokens(accessToken: string, refreshToken: string): Promise<boolean> {
    const operation = 'validateTokens';
    try {
      const answer = await this.exchange({
        operation,
        path: VALIDATE_TOKENS_PATH,
        body: JSON.stringify({ refresh_token: refreshToken }),
        headers: { Authorization: `Bearer ${accessToken}` },
        write: false,
        passStatuses: [401, 403],
      });
      return answer.status >= 200 && answer.status < 300;
    } catch (e) {
      if (e instanceof TwingateError) e.message = redact(e.message, [accessToken, refreshToken]);
      throw e;
    }
  }

  private json(operation: string, answer: Answer): unknown {
    try {
      return JSON.parse(answer.body.toString('utf8'));
    } catch {
      const type = answer.headers.get('content-type') ?? 'no content-type';
      throw this.error(
        'protocol',
        operation,
        `${operation}: the answer from ${this.host} is not JSON (HTTP ${answer.status}, ${type})`,
        { status: answer.status },
      );
    }
  }

  /** One logical call: attempts until an answer the caller takes, a final failure, or the deadline. */
  private async exchange(x: Exchange): Promise<Answer> {
    const { operation } = x;
    this.stats.calls++;
    if (x.write) this.stats.writes++;
    else this.stats.reads++;
    const budget = new Budget(this.deadlineMs, this.sleepFn, this.signal);
    const backoff = new Backoff({
      baseMs: RETRY_BASE_MS,
      maxMs: RETRY_MAX_MS,
      factor: 2,
      jitter: 1,
      random: this.random,
    });
    this.throwIfAborted(operation);
    await this.probeShard(budget);
    let redirected = false;
    let attempts = 0;
    let last: RetryableFailure | undefined;

    for (;;) {
      this.throwIfAborted(operation);
      if (budget.remaining() <= 0) throw this.deadlineError(operation, attempts, last);
      const out = await this.attempt(x, budget);
      attempts++;

      let failure: RetryableFailure;
      if (out.kind === 'failure') {
        if (out.why === 'deadline') throw this.deadlineError(operation, attempts, last);
        failure =
          out.why === 'attempt-timeout'
            ? {
                kind: 'network',
                detail: `no answer from ${this.host} within ${seconds(this.attemptTimeoutMs)}`,
              }
            : {
                kind: 'network',
                detail: `cannot reach ${this.host}: ${networkReason(out.error)}`,
                cause: out.error,
              };
      } else {
        const { status } = out;
        if ((status >= 200 && status < 300) || x.passStatuses?.includes(status)) return out;
        if (status === 307 || status === 308) {
          const location = out.headers.get('location');
          const origin = location ? this.shardOrigin(location) : undefined;
          if (!redirected && origin) {
            redirected = true;
            this.moveTo(origin, `HTTP ${status} on ${operation}`);
            continue;
          }
          throw this.error(
            'http',
            operation,
            `${operation}: HTTP ${status} from ${this.host} ${
              redirected ? 'redirected again' : 'to a location that is missing or not https'
            }`,
            { status },
          );
        }
        if (status === 401 || status === 403) {
          throw this.error(
            'auth',
            operation,
            `${operation}: the Twingate API at ${this.host} refused the API key (HTTP ${status}): check TWINGATE_API_KEY`,
            { status },
          );
        }
        if (status === 429) {
          this.stats.rateLimited++;
          const asked = parseRetryAfter(out.headers.get('retry-after'), Date.now()) ?? DEFAULT_RETRY_AFTER_MS;
          // A 0 or past Retry-After still waits a little: a server that keeps answering 429 is not hammered.
          const waitMs = Math.max(asked, RETRY_BASE_MS);
          const left = budget.remaining();
          if (waitMs > left) {
            throw this.error(
              'rate-limit',
              operation,
              `${operation}: the Twingate API at ${this.host} is rate-limiting (HTTP 429) and asks to wait ${seconds(
                waitMs,
              )}, more than the ${seconds(Math.max(0, left))} left of the ${seconds(this.deadlineMs)} deadline`,
              { status, retryAfterMs: waitMs },
            );
          }
          this.logger.warn(
            { operation, host: this.host, waitMs },
            'Twingate API rate limit (HTTP 429): waiting',
          );
          // Retry-After is in whole seconds, so every client told to wait would come back in the same
          // instant and most be refused again: up to one more second, at random, spreads them.
          await budget.sleep(Math.min(left, waitMs + Math.floor(this.random() * 1000)));
          this.throwIfAborted(operation);
          this.stats.retries++;
          continue;
        }
        const detail = `HTTP ${status}${out.statusText ? ` ${out.statusText}` : ''} from ${this.host}`;
        if (status < 500) {
          throw this.error('http', operation, `${operation}: ${detail}${graphqlHint(out.body)}`, { status });
        }
        failure = { kind: 'http', detail, status };
      }

      last = failure;
      const waitMs = backoff.next();
      if (waitMs >= budget.remaining()) {
        throw this.error(
          failure.kind,
          operation,
          `${operation}: ${failure.detail} (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} within the ${seconds(
            this.deadlineMs,
          )} deadline)`,
          { status: failure.status, cause: failure.cause },
        );
      }
      this.logger.debug(
        { operation, host: this.host, attempt: attempts, waitMs },
        'Twingate API call failed: retrying',
      );
      await budget.sleep(waitMs);
      this.throwIfAborted(operation);
      this.stats.retries++;
    }
  }

  /** One HTTP attempt under a slot; a too-large answer throws, an abort throws, the rest is an outcome. */
  private async attempt(x: Exchange, budget: Budget): Promise<Outcome> {
    const release = await this.acquire(x.operation, budget);
    if (!release) return { kind: 'failure', why: 'deadline' };
    const remaining = budget.remaining();
    const byDeadline = remaining <= this.attemptTimeoutMs;
    const timer = new Timer(Math.max(0, Math.min(this.attemptTimeoutMs, remaining)));
    try {
      this.stats.attempts++;
      const res = await this.fetchFn(`${this.base}${x.path}`, {
        method: 'POST',
        headers: {
          'X-API-KEY': this.apiKey,
          'Content-Type': 'application/json',
          Accept: 'application/json',
          'User-Agent': this.userAgent,
          ...x.headers,
        },
        body: x.body,
        redirect: 'manual',
        signal: this.withUserSignal(timer.signal),
      });
      const ok = res.status >= 200 && res.status < 300;
      const body = await this.readBody(x.operation, res, ok ? MAX_RESPONSE_BYTES : MAX_ERROR_BODY_BYTES, ok);
      return { kind: 'answer', status: res.status, statusText: res.statusText, headers: res.headers, body };
    } catch (e) {
      if (this.signal?.aborted) throw abortError(x.operation);
      if (e instanceof TwingateError) throw e;
      if (timer.fired) return { kind: 'failure', why: byDeadline ? 'deadline' : 'attempt-timeout' };
      return { kind: 'failure', why: 'network', error: e };
    } finally {
      timer.clear();
      release();
    }
  }

  /** A slot, or undefined when the deadline ran out while waiting; rejects on abort. */
  private async acquire(operation: string, budget: Budget): Promise<(() => void) | undefined> {
    const timer = new Timer(Math.max(0, budget.remaining()));
    try {
      return await this.slots.acquire(this.withUserSignal(timer.signal));
    } catch {
      if (this.signal?.aborted) throw abortError(operation);
      return undefined;
    } finally {
      timer.clear();
    }
  }

  /**
   * Reads at most `cap` bytes. Over the cap: a `protocol` error when `strict` (2xx answers),
   * else the body is cut (error answers, only read for their message).
   */
  private async readBody(operation: string, res: Response, cap: number, strict: boolean): Promise<Buffer> {
    const tooLarge = () =>
      this.error(
        'protocol',
        operation,
        `${operation}: the answer from ${this.host} is larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB`,
        { status: res.status },
      );
    const declared = Number(res.headers.get('content-length'));
    if (strict && Number.isFinite(declared) && declared > cap) {
      await res.body?.cancel().catch(() => undefined);
      throw tooLarge();
    }
    if (!res.body) return Buffer.alloc(0);
    const reader = res.body.getReader();
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > cap) {
        await reader.cancel().catch(() => undefined);
        if (strict) throw tooLarge();
        chunks.push(Buffer.from(value.subarray(0, value.byteLength - (size - cap))));
        break;
      }
      chunks.push(Buffer.from(value));
    }
    return Buffer.concat(chunks);
  }

  /**
   * Once per client, before the first POST: `HEAD ${base}/api/graphql/` without following
   * redirects. A 307/308 with an acceptable Location moves the client to the shard's origin; any
   * other answer, or none, keeps the base. Never fails the call.
   */
  private probeShard(budget: Budget): Promise<void> {
    this.shardProbe ??= this.headProbe(budget);
    return this.shardProbe;
  }

  private async headProbe(budget: Budget): Promise<void> {
    const release = await this.acquire('shard probe', budget).catch(() => undefined);
    if (!release) return;
    const timer = new Timer(Math.max(0, Math.min(this.attemptTimeoutMs, budget.remaining())));
    try {
      const res = await this.fetchFn(`${this.base}${GRAPHQL_PATH}`, {
        method: 'HEAD',
        headers: { 'User-Agent': this.userAgent },
        redirect: 'manual',
        signal: this.withUserSignal(timer.signal),
      });
      await res.body?.cancel().catch(() => undefined);
      const location = res.headers.get('location');
      if ((res.status === 307 || res.status === 308) && location) {
        const origin = this.shardOrigin(location);
        if (origin) this.moveTo(origin, `HTTP ${res.status} on the shard probe`);
        else
          this.logger.warn({ host: this.host }, 'Twingate API shard redirect ignored: not an https location');
      }
    } catch (e) {
      this.logger.debug(
        { host: this.host, err: errorMessage(e) },
        'Twingate API shard probe failed: keeping the base URL',
      );
    } finally {
      timer.clear();
      release();
    }
  }

  /** The origin a redirect points to, if the API key may go there (https, or http on loopback). */
  private shardOrigin(location: string): string | undefined {
    let url: URL;
    try {
      url = new URL(location, `${this.base}${GRAPHQL_PATH}`);
    } catch {
      return undefined;
    }
    return isAllowedApiOrigin(url) ? url.origin : undefined;
  }

  private moveTo(origin: string, why: string): void {
    if (origin === this.base) return;
    const from = this.host;
    this.base = origin;
    this.logger.info({ from, to: this.host }, `Twingate API shard: ${why}, using ${this.host}`);
  }

  private deadlineError(
    operation: string,
    attempts: number,
    last: RetryableFailure | undefined,
  ): TwingateError {
    const lastWords = last ? `; last: ${last.detail}` : '';
    return this.error(
      'deadline',
      operation,
      `${operation}: no answer from ${this.host} within the ${seconds(this.deadlineMs)} deadline (${attempts} attempt${
        attempts === 1 ? '' : 's'
      }${lastWords})`,
      { status: last?.status },
    );
  }

  private throwIfAborted(operation: string): void {
    if (this.signal?.aborted) throw abortError(operation);
  }

  private withUserSignal(signal: AbortSignal): AbortSignal {
    return this.signal ? AbortSignal.any([this.signal, signal]) : signal;
  }
}

/** True when the document's operation is a mutation (a write, for the rate limits). */
export function isMutation(document: string): boolean {
  return /(^|\})\s*mutation\b/.test(document.replace(/#[^\n]*/g, ''));
}

/**
 * A call's time budget. Waits count at the length asked for, everything else by the clock, so an
 * injected `sleep` that returns at once still runs the deadline down.
 */
class Budget {
  private readonly start = Date.now();
  private waited = 0;
  private waitedForReal = 0;

  constructor(
    private readonly deadlineMs: number,
    private readonly sleepFn: (ms: number, signal?: AbortSignal) => Promise<void>,
    private readonly signal: AbortSignal | undefined,
  ) {}

  remaining(): number {
    return this.deadlineMs - (Date.now() - this.start - this.waitedForReal + this.waited);
  }

  async sleep(ms: number): Promise<void> {
    const t0 = Date.now();
    try {
      await this.sleepFn(ms, this.signal);
    } finally {
      this.waitedForReal += Date.now() - t0;
      this.waited += ms;
    }
  }
}

/** A one-shot timeout as an AbortSignal that remembers whether it fired. */
class Timer {
  private readonly controller = new AbortController();
  private readonly handle: ReturnType<typeof setTimeout>;
  fired = false;

  constructor(ms: number) {
    this.handle = setTimeout(() => {
      this.fired = true;
      this.controller.abort();
    }, ms);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  clear(): void {
    clearTimeout(this.handle);
  }
}

/** At most `limit` holders; waiters are served in order and leave the queue when their signal aborts. */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) throw new Error('aborted');
    if (this.active < this.limit) {
      this.active++;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error('aborted'));
      };
      this.waiting.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return this.releaser();
  }

  /** Hands the slot to the next waiter (the count stays) or frees it; idempotent. */
  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`twingate: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

/** `ECONNREFUSED …` from undici's `fetch failed` (the reason is in its cause). */
function networkReason(e: unknown): string {
  const cause = typeof e === 'object' && e !== null ? (e as { cause?: unknown }).cause : undefined;
  return errorMessage(cause ?? e);
}

/** `: <first GraphQL message>` when a 4xx body is a GraphQL error answer, else ''. */
function graphqlHint(body: Buffer): string {
  try {
    const parsed = graphqlEnvelope.safeParse(JSON.parse(body.toString('utf8')));
    const message = parsed.success ? parsed.data.errors?.[0]?.message : undefined;
    return message ? `: ${message}` : '';
  } catch {
    return '';
  }
}
