/**
 * What a failed Metal API call means to a caller, decided by the HTTP status alone (never by the
 * message text, which the API words differently over time):
 *
 * | kind           | status        | meaning                                                                 |
 * | -------------- | ------------- | ----------------------------------------------------------------------- |
 * | `unauthorized` | 401           | the API token is missing, wrong or revoked                              |
 * | `forbidden`    | 403           | no permission; for a device it is how the API answers a device whose provisioning failed |
 * | `gone`         | 404           | the object (or project) does not exist (any more)                       |
 * | `invalid`      | 422           | validation failed or a quota is exhausted (no capacity, no reservation) |
 * | `transient`    | 429, 503      | rate-limited or unavailable: try again after `retryAfterMs`             |
 * | `unreachable`  | no answer     | connection refused/reset, DNS, TLS, or no answer within the timeout     |
 * | `terminal`     | anything else | 400, 409, 5xx other than 503, a redirect, or an unusable 2xx answer     |
 *
 * `transient` and `unreachable` are worth retrying (`isRetryable`); the others need a change first.
 */
export type MetalErrorKind =
  'unauthorized' | 'forbidden' | 'gone' | 'invalid' | 'transient' | 'unreachable' | 'terminal';

/** The kind of an HTTP error status (see `MetalErrorKind`). */
export function kindOfStatus(status: number): MetalErrorKind {
  switch (status) {
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'gone';
    case 422:
      return 'invalid';
    case 429:
    case 503:
      return 'transient';
    default:
      return 'terminal';
  }
}

/** At most this many messages are kept from an error body's `errors`. */
export const MAX_ERROR_MESSAGES = 10;
/** Each kept message is cut to this many characters. */
export const MAX_ERROR_MESSAGE_CHARS = 300;
/** `message` is cut to this many characters. */
const MAX_MESSAGE_CHARS = 1000;

export interface MetalApiErrorFields {
  kind: MetalErrorKind;
  /** The HTTP status; absent for `unreachable`. */
  status?: number;
  method: string;
  /** The request path under the API URL, without the query (`/devices/…`). */
  path: string;
  /** The API's messages (`errors`, or `error` as one entry), bounded in number and length. */
  errors?: string[];
  /** For `transient`/`unreachable`: how long to wait before trying again. */
  retryAfterMs?: number;
  /** What went wrong after `Metal API <method> <path>: `, one line. */
  detail: string;
  cause?: unknown;
}

/**
 * A failed Metal API call. `message` is one line: `Metal API POST /projects/…/devices: 422 invalid:
 * <the API's messages>`. It never holds the API or consumer token (the client removes them from
 * anything the server echoes).
 */
export class MetalApiError extends Error {
  readonly kind: MetalErrorKind;
  readonly status?: number;
  readonly method: string;
  readonly path: string;
  readonly errors: string[];
  readonly retryAfterMs?: number;

  constructor(f: MetalApiErrorFields) {
    super(
      oneLine(`Metal API ${f.method} ${f.path}: ${f.detail}`, MAX_MESSAGE_CHARS),
      f.cause === undefined ? undefined : { cause: f.cause },
    );
    this.name = 'MetalApiError';
    this.kind = f.kind;
    if (f.status !== undefined) this.status = f.status;
    this.method = f.method;
    this.path = f.path;
    this.errors = f.errors ?? [];
    if (f.retryAfterMs !== undefined) this.retryAfterMs = f.retryAfterMs;
  }
}

/** True for a `MetalApiError` worth retrying later: `transient` or `unreachable`. */
export function isRetryable(e: unknown): e is MetalApiError {
  return e instanceof MetalApiError && (e.kind === 'transient' || e.kind === 'unreachable');
}

/** True for a `MetalApiError` of `kind` (`isMetalError(e, 'gone')`). */
export function isMetalError(e: unknown, kind?: MetalErrorKind): e is MetalApiError {
  return e instanceof MetalApiError && (kind === undefined || e.kind === kind);
}

/**
 * The messages of an error body: `{"errors": [...]}` or `{"error": "..."}` (both kept when both
 * are set), each on one line, cut to `MAX_ERROR_MESSAGE_CHARS`, at most `MAX_ERROR_MESSAGES`.
 * Anything else (not JSON, another shape) gives none.
 */
export function errorBodyMessages(text: string): string[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [];
  }
  if (typeof body !== 'object' || body === null) return [];
  const { errors, error } = body as { errors?: unknown; error?: unknown };
  const all: unknown[] = [...(Array.isArray(errors) ? errors : []), error];
  return all
    .filter((m): m is string => typeof m === 'string' && m.trim() !== '')
    .slice(0, MAX_ERROR_MESSAGES)
    .map((m) => oneLine(m, MAX_ERROR_MESSAGE_CHARS));
}

/** `text` with every occurrence of each secret replaced by `[REDACTED]`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join('[REDACTED]');
  return out;
}

/** `text` JSON-quoted for a message, cut to 120 characters. */
export function quote(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}

/** `text` on one line (runs of whitespace with a line break become one space), cut to `max`. */
function oneLine(text: string, max: number): string {
  const line = text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
