import { ApiException } from '@kubernetes/client-node';
import { errorMessage } from '@knet/runtime';

/** What an API call failure means, decoded from client-node's ApiException (whose body is a JSON string). */
export interface DecodedApiError {
  /** HTTP status, or 0 when the server was not reached (connection refused, DNS, TLS…). */
  code: number;
  /** metav1.Status reason (NotFound, Conflict, AlreadyExists, Invalid, Forbidden, Expired…), or a network error code. */
  reason: string;
  /** One line for humans. */
  message: string;
  /** Field causes of an Invalid (422) error: `spec.port: Invalid value: …`. */
  causes: { field?: string; message?: string; reason?: string }[];
}

interface StatusBody {
  kind?: string;
  reason?: string;
  message?: string;
  details?: { causes?: { field?: string; message?: string; reason?: string }[] };
}

/** Decodes any error thrown by a client-node call (or our raw requests) into a DecodedApiError. */
export function decodeApiError(err: unknown): DecodedApiError {
  if (err instanceof KubeApiError) return err.decoded;
  if (err instanceof ApiException || isApiExceptionLike(err)) {
    const e = err as ApiException<unknown>;
    const status = parseStatus(e.body);
    const reason = status?.reason ?? httpReason(e.code);
    const message = oneLine(
      status?.message ?? (typeof e.body === 'string' && e.body ? e.body : 'no details from the API server'),
    );
    return { code: e.code, reason, message, causes: status?.details?.causes ?? [] };
  }
  const netCode = networkCode(err);
  if (netCode) {
    return { code: 0, reason: netCode, message: oneLine(errorMessage(err)), causes: [] };
  }
  return { code: 0, reason: 'Unknown', message: oneLine(errorMessage(err)), causes: [] };
}

export const isNotFound = (e: unknown) => decodeApiError(e).code === 404;
export const isConflict = (e: unknown) =>
  decodeApiError(e).code === 409 && decodeApiError(e).reason !== 'AlreadyExists';
export const isAlreadyExists = (e: unknown) => decodeApiError(e).reason === 'AlreadyExists';
export const isForbidden = (e: unknown) => decodeApiError(e).code === 403;
export const isUnauthorized = (e: unknown) => decodeApiError(e).code === 401;
export const isInvalid = (e: unknown) => decodeApiError(e).code === 422;
/** True for errors worth retrying: network failures, 429, 5xx (except 501), 409 conflicts. */
export const isRetryable = (e: unknown) => {
  const d = decodeApiError(e);
  return d.code === 0
    ? d.reason !== 'Unknown'
    : d.code === 429 || d.code === 409 || (d.code >= 500 && d.code !== 501);
};

/**
 * The error a failed API call throws, as the API server writes it (a metav1.Status body in an
 * ApiException), for fakes that must fail the way the real thing does: `decodeApiError` and the
 * `isX` checks see no difference.
 */
export function statusError(
  code: number,
  reason: string,
  message: string,
  details: { name?: string; kind?: string; causes?: DecodedApiError['causes'] } = {},
): ApiException<string> {
  const body = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    details,
    code,
  };
  return new ApiException(code, `HTTP-Code: ${code}`, JSON.stringify(body), {});
}

/** An Error whose message is one line naming the operation and what the API server said. */
export class KubeApiError extends Error {
  constructor(
    readonly operation: string,
    readonly decoded: DecodedApiError,
    options?: { cause?: unknown },
  ) {
    super(formatApiError(operation, decoded), options);
    this.name = 'KubeApiError';
  }
}

/** Wraps any failure of `operation` (e.g. "get secret ns/name") into a one-line KubeApiError. */
export function wrapApiError(operation: string, err: unknown): KubeApiError {
  if (err instanceof KubeApiError) return err;
  return new KubeApiError(operation, decodeApiError(err), { cause: err });
}

function formatApiError(operation: string, d: DecodedApiError): string {
  if (d.code === 0 && d.reason !== 'Unknown') {
    return `${operation}: cannot reach the API server (${d.reason}: ${d.message}); check the kubeconfig's server address and that the API server is running`;
  }
  const causes = d.causes
    .map((c) => [c.field, c.message].filter(Boolean).join(': '))
    .filter(Boolean)
    .join('; ');
  const hint =
    d.code === 401
      ? ' (credentials rejected: check the token or client certificate)'
      : d.code === 403
        ? ' (RBAC: grant the missing verb/resource to this identity)'
        : '';
  return `${operation}: ${d.code} ${d.reason}: ${d.message}${causes && !d.message.includes(causes) ? ` [${causes}]` : ''}${hint}`;
}

function parseStatus(body: unknown): StatusBody | undefined {
  if (typeof body === 'object' && body !== null) return body as StatusBody;
  if (typeof body !== 'string' || !body.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(body) as StatusBody;
    return typeof v === 'object' && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}

function isApiExceptionLike(e: unknown): boolean {
  return (
    typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'number' && 'body' in e
  );
}

const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UND_ERR_CONNECT_TIMEOUT',
  'ABORT_ERR',
]);

function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NET_CODES.has(code)) return code;
    if ((e as { name?: unknown }).name === 'AbortError' || (e as { type?: unknown }).type === 'aborted')
      return 'ETIMEDOUT';
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

function httpReason(code: number): string {
  const m: Record<number, string> = {
    400: 'BadRequest',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'NotFound',
    405: 'MethodNotAllowed',
    409: 'Conflict',
    410: 'Expired',
    415: 'UnsupportedMediaType',
    422: 'Invalid',
    429: 'TooManyRequests',
    500: 'InternalError',
    503: 'ServiceUnavailable',
    504: 'Timeout',
  };
  return m[code] ?? `HTTP${code}`;
}
