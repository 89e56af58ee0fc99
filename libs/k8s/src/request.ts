import { createHash, type Hash } from 'node:crypto';
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import {
  Agent as HttpsAgent,
  request as httpsRequest,
  type RequestOptions as HttpsRequestOptions,
} from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import { ApiException, type KubeConfig } from '@kubernetes/client-node';
import { wrapApiError } from './errors';

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path below the server URL, e.g. /apis/coordination.k8s.io/v1/namespaces/x/leases/y/status */
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  /** Content-Type of the body (default application/json). */
  contentType?: string;
  /** Socket idle timeout (default 30 s): fires only when nothing moves, not when a slow answer trickles in. */
  timeoutMs?: number;
  /**
   * Aborts the request wherever it is (connecting, sending, waiting, reading the body): the socket is
   * destroyed and the call rejects with `ABORT_ERR` (`decodeApiError` reason), the signal's reason as
   * `cause`. For a deadline on the whole call: `AbortSignal.timeout(ms)`.
   */
  signal?: AbortSignal;
}

/** Connections kept open to one API server per TLS identity; further requests wait for a free one. */
export const KUBE_REQUEST_MAX_SOCKETS = 32;
/**
 * An idle pooled connection is closed after this long: well below the API server's own idle timeout
 * (Go's net/http, kube-apiserver: 90 s and more), so the server seldom closes one we are about to use.
 */
const IDLE_SOCKET_MS = 15_000;
/** Pools kept at most (one per server and TLS identity), the least recently used dropped first. */
const MAX_POOLS = 16;

/**
 * A raw request to the API server with the kubeconfig's TLS and credentials, for what the generated
 * clients cannot do (sub-resources of custom resources, exact patch content types). Non-2xx answers
 * throw an ApiException like the generated clients do, so decodeApiError works on both.
 *
 * Connections are kept alive and reused: one pool per server origin and TLS identity (see
 * `pooledAgent`), credentials that are per request (bearer tokens, exec plugins, basic auth) stay in
 * each request's headers. A request whose reused connection the server had closed is sent again once
 * (see `resendable`).
 */
export async function kubeRequest<T = unknown>(kc: KubeConfig, req: KubeRequest): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeRequest: kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + req.path);
  for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
  const payload =
    req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
  const opts: HttpsRequestOptions & { headers: Record<string, string> } = {
    method: req.method,
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port,
    path: url.pathname + url.search,
    headers: { Accept: 'application/json' },
    timeout: req.timeoutMs ?? 30_000,
  };
  if (payload !== undefined) {
    opts.headers['Content-Type'] = req.contentType ?? 'application/json';
    opts.headers['Content-Length'] = String(Buffer.byteLength(payload));
  }
  // Sets the credentials (headers, basic auth), the TLS material (ca, cert, key, rejectUnauthorized,
  // servername, read afresh from files each time) and a new agent, which the pool replaces below.
  await kc.applyToHTTPSOptions(opts);
  const { status, text, headers } = await exchange(url, opts, payload, req, !!cluster.proxyUrl).catch(
    (e: unknown) => {
      throw wrapApiError(`${req.method} ${req.path}`, e);
    },
  );
  if (status < 200 || status > 299) {
    throw new ApiException(status, `HTTP-Code: ${status}`, text, headers);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

interface Answer {
  status: number;
  text: string;
  headers: Record<string, string>;
}

/** What one attempt did on the wire, for `resendable`. */
interface Attempt {
  /** The connection had carried an earlier request (`ClientRequest.reusedSocket`). */
  reused: boolean;
  /** No byte of this request went into the socket. */
  nothingWritten: () => boolean;
  /** A byte of the answer came back. */
  answered: boolean;
}

async function exchange(
  url: URL,
  opts: HttpsRequestOptions,
  payload: string | undefined,
  req: KubeRequest,
  proxied: boolean,
): Promise<Answer> {
  // Through a proxy (cluster.proxyUrl) client-node's own proxy agent stays: one connection per request.
  const pool = proxied ? undefined : pooledAgent(url, opts);
  if (pool) opts.agent = pool;
  const secure = url.protocol === 'https:';
  const first: Attempt = { reused: false, nothingWritten: () => true, answered: false };
  try {
    return await sendOnce(secure, opts, payload, req.signal, first);
  } catch (e) {
    if (!pool || req.signal?.aborted || !resendable(req.method, e, first)) throw e;
    // The pool's other idle connections are as old as the one the server closed: close them too, so
    // the request goes out on a new connection (or, with all connections busy, on one that has
    // just answered).
    dropIdleSockets(pool);
    return await sendOnce(secure, opts, payload, req.signal, {
      reused: false,
      nothingWritten: () => true,
      answered: false,
    });
  }
}

/**
 * Whether a request that failed may be sent again (once). Only one failure qualifies: a REUSED
 * keep-alive connection that broke (reset, hang-up, write after the server's FIN) before any byte
 * of the answer came back — what the server closing an idle connection just as we send on it looks
 * like. Everything else (timeouts, aborts, refused connections, a broken first connection, an
 * answer cut short) goes to the caller as before.
 *
 * And only when resending cannot apply a change twice, like Go's net/http
 * (Transport.shouldRetryRequest): a request none of whose bytes went into the socket may always be
 * resent; otherwise only the idempotent methods (RFC 9110 §9.2.2) GET, PUT and DELETE are. A POST or
 * PATCH that was (partly) written is never resent: the server may have received and applied it.
 * (Go leaves PUT and DELETE to the caller too; for the API server a repeated PUT either changes
 * nothing or fails with 409 Conflict on its resourceVersion, and a repeated DELETE of an object
 * the first one removed answers 404 — what a caller retrying the reset itself would see.)
 */
function resendable(method: KubeRequest['method'], err: unknown, attempt: Attempt): boolean {
  if (!attempt.reused || attempt.answered) return false;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !CLOSED_CONNECTION.has(code)) return false;
  return method === 'GET' || method === 'PUT' || method === 'DELETE' || attempt.nothingWritten();
}

/**
 * A connection the server closed: reset or hang-up ("socket hang up" is ECONNRESET too), a write
 * after its FIN.
 */
const CLOSED_CONNECTION = new Set([
  'ECONNRESET',
  'EPIPE',
  'ERR_STREAM_WRITE_AFTER_END',
  'ERR_STREAM_DESTROYED',
]);

function sendOnce(
  secure: boolean,
  opts: RequestOptions,
  payload: string | undefined,
  signal: AbortSignal | undefined,
  attempt: Attempt,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const r = (secure ? httpsRequest : httpRequest)(opts, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          text: Buffer.concat(chunks).toString('utf8'),
          headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)])),
        }),
      );
      res.on('error', reject);
    });
    // 'socket' comes before the request is written into it (also on a reused connection).
    r.once('socket', (s: Socket) => {
      attempt.reused = r.reusedSocket;
      const before = s.bytesWritten as number | undefined;
      attempt.nothingWritten = () => before !== undefined && s.bytesWritten === before;
      const onData = () => (attempt.answered = true);
      s.on('data', onData);
      r.once('close', () => s.off('data', onData)); // before the pool hands the socket on
    });
    // Destroying the request destroys its socket: it never goes back to the pool.
    r.on('timeout', () => r.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
    r.on('error', reject);
    if (signal) {
      const onAbort = () => {
        const e = abortError(signal);
        r.destroy(e);
        reject(e); // also when the answer is half read: the response stream may not report the destroy
      };
      signal.addEventListener('abort', onAbort, { once: true });
      r.on('close', () => signal.removeEventListener('abort', onAbort));
    }
    r.end(payload);
  });
}

/** The options `applyToHTTPSOptions` sets that decide which TLS connection a request may use. */
const TLS_FIELDS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;
type TlsMaterial = Pick<HttpsRequestOptions, (typeof TLS_FIELDS)[number]>;

/** Keep-alive agents by sha256 of server origin and TLS material (no key in the clear), in LRU order. */
const pools = new Map<string, HttpAgent>();

/**
 * The keep-alive agent for this server origin and TLS identity (CA, client certificate and key,
 * skipTLSVerify, tls-server-name), created on first use. The TLS material moves from `opts` into the
 * agent (as one SecureContext, parsed once); a rotated certificate or key is another identity and
 * gets a new agent, the old one's idle connections close after IDLE_SOCKET_MS.
 */
function pooledAgent(url: URL, opts: HttpsRequestOptions): HttpAgent | undefined {
  const hash = createHash('sha256');
  feed(hash, url.origin);
  // Material that cannot be hashed (a KeyObject: client-node never sets one) keeps client-node's agent.
  if (!TLS_FIELDS.every((f) => feed(hash, opts[f]))) return undefined;
  const key = hash.digest('hex');
  const tls: TlsMaterial = {};
  for (const f of TLS_FIELDS) {
    if (opts[f] !== undefined) Object.assign(tls, { [f]: opts[f] });
    delete opts[f];
  }
  const known = pools.get(key);
  if (known) {
    pools.delete(key);
    pools.set(key, known);
    return known;
  }
  const common = {
    keepAlive: true,
    maxSockets: KUBE_REQUEST_MAX_SOCKETS,
    timeout: IDLE_SOCKET_MS,
    scheduling: 'lifo' as const,
  };
  const { ca, cert, key: privateKey, pfx, passphrase, rejectUnauthorized, servername } = tls;
  const agent =
    url.protocol === 'https:'
      ? new HttpsAgent({
          ...common,
          secureContext: createSecureContext({ ca, cert, key: privateKey, pfx, passphrase }),
          ...(rejectUnauthorized === undefined ? {} : { rejectUnauthorized }),
          ...(servername === undefined ? {} : { servername }),
        })
      : new HttpAgent(common);
  pools.set(key, agent);
  for (const [k, old] of pools) {
    if (pools.size <= MAX_POOLS) break;
    pools.delete(k);
    dropIdleSockets(old); // busy ones finish their request, then idle out
  }
  return agent;
}

/**
 * Feeds a value into the hash unambiguously (length-prefixed; arrays and plain objects such as
 * `{ buf, passphrase }` walked). False for what it cannot see into (class instances but Buffer).
 */
function feed(hash: Hash, v: unknown): boolean {
  if (v === undefined || v === null) hash.update('-;');
  else if (typeof v === 'string' || Buffer.isBuffer(v)) {
    hash.update(`${Buffer.byteLength(v)}:`);
    hash.update(v);
  } else if (Array.isArray(v)) {
    hash.update(`[${v.length}`);
    return v.every((x) => feed(hash, x));
  } else if (typeof v === 'object') {
    if (Object.getPrototypeOf(v) !== Object.prototype) return false;
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    hash.update(`{${entries.length}`);
    return entries.every(([k, x]) => feed(hash, k) && feed(hash, x));
  } else hash.update(`${typeof v}:${String(v)};`);
  return true;
}

function dropIdleSockets(agent: HttpAgent): void {
  for (const sockets of Object.values(agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? reason.message : String(reason ?? 'aborted');
  return Object.assign(new Error(`request aborted: ${why}`, { cause: reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}
