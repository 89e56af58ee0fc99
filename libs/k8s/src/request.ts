import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
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

/**
 * A raw request to the API server with the kubeconfig's TLS and credentials, for what the generated
 * clients cannot do (sub-resources of custom resources, exact patch content types). Non-2xx answers
 * throw an ApiException like the generated clients do, so decodeApiError works on both.
 */
export async function kubeRequest<T = unknown>(kc: KubeConfig, req: KubeRequest): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeRequest: kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + req.path);
  for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
  const payload =
    req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
  const opts: RequestOptions & { headers: Record<string, string> } = {
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
  await kc.applyToHTTPSOptions(opts);
  const { signal } = req;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const { status, text, headers } = await new Promise<{
    status: number;
    text: string;
    headers: Record<string, string>;
  }>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const r = send(opts, (res) => {
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
  }).catch((e: unknown) => {
    throw wrapApiError(`${req.method} ${req.path}`, e);
  });
  if (status < 200 || status > 299) {
    throw new ApiException(status, `HTTP-Code: ${status}`, text, headers);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? reason.message : String(reason ?? 'aborted');
  return Object.assign(new Error(`request aborted: ${why}`, { cause: reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}
