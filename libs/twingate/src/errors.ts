import type { z } from 'zod';

/**
 * What went wrong, for callers that branch (never on message text):
 *
 * - `auth`: HTTP 401/403, the key is missing, invalid or refused (CIDR allow-list);
 * - `graphql`: HTTP 200 with `errors` (bad id, permission denied, validation…);
 * - `mutation`: HTTP 200, `data.<mutation>.ok === false` with its `error` string;
 * - `rate-limit`: HTTP 429 whose Retry-After does not fit in what is left of the deadline;
 * - `http`: any other non-2xx (5xx after retries);
 * - `network`: connection refused/reset, or no answer within the attempt timeout (after retries);
 * - `deadline`: the call's deadline ran out while it was retrying;
 * - `protocol`: the answer is not JSON, not the expected shape, or too large.
 */
export type TwingateErrorKind =
  'auth' | 'graphql' | 'mutation' | 'rate-limit' | 'http' | 'network' | 'deadline' | 'protocol';

/** One entry of a GraphQL response's `errors`, as far as we keep it. */
export interface GraphqlErrorDetail {
  message: string;
  path?: (string | number)[];
}

export interface TwingateErrorDetails {
  status?: number;
  retryAfterMs?: number;
  graphqlErrors?: GraphqlErrorDetail[];
  cause?: unknown;
}

/**
 * A failed call to the Twingate API. The message is one line that names the operation (the GraphQL
 * root field, e.g. `connectorGenerateTokens`) and the API host, and never holds the API key or
 * connector tokens.
 */
export class TwingateError extends Error {
  readonly kind: TwingateErrorKind;
  /** The GraphQL root field (`connectors`, `connectorCreate`…) or `validateTokens`. */
  readonly operation: string;
  /** The HTTP status, when there was an HTTP answer. */
  readonly status?: number;
  /** For `rate-limit`: how long the API asked to wait. */
  readonly retryAfterMs?: number;
  /** For `graphql`: the response's `errors`. */
  readonly graphqlErrors?: GraphqlErrorDetail[];

  constructor(
    kind: TwingateErrorKind,
    operation: string,
    message: string,
    details: TwingateErrorDetails = {},
  ) {
    super(oneLine(message), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'TwingateError';
    this.kind = kind;
    this.operation = operation;
    if (details.status !== undefined) this.status = details.status;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
    if (details.graphqlErrors !== undefined) this.graphqlErrors = details.graphqlErrors;
  }
}

/** The error an aborted call rejects with (`name === 'AbortError'`, as fetch's and runtime's `isAbortError`). */
export function abortError(operation: string): Error {
  const err = new Error(`${operation}: aborted`);
  err.name = 'AbortError';
  return err;
}

/** `text` with every occurrence of each secret replaced, so nothing the server echoes leaks a key. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join('[REDACTED]');
  return out;
}

/** Where a zod issue is, as a JSON path under `root`: `data.connectors.edges[0].node.state`. */
export function issuePath(root: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : `${acc}.${String(key)}`),
    root,
  );
}

/** The first issue of a failed zod parse, as `<path>: <message>`. */
export function describeZodError(root: string, error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return `${root}: invalid`;
  return `${issuePath(root, issue.path)}: ${issue.message}`;
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
