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
  timeoutMs?: number;
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
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const { status, text, headers } = await new Promise<{
    status: number;
    text: string;
    headers: Record<string, string>;
  }>((resolve, reject) => {
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
    r.end(payload);
  }).catch((e: unknown) => {
    throw wrapApiError(`${req.method} ${req.path}`, e);
  });
  if (status < 200 || status > 299) {
    throw new ApiException(status, `HTTP-Code: ${status}`, text, headers);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}
