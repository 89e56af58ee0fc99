import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';

/** What one HTTP exchange is given: the global `fetch` satisfies this signature. */
export interface HttpRequestInit {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
  /** Redirects are answers, never followed: a followed redirect would carry the token elsewhere. */
  redirect: 'manual';
}

/** A fetch-shaped function (`globalThis.fetch`, or a test's). */
export type HttpFetch = (url: string, init: HttpRequestInit) => Promise<Response>;

/** The default transport, and how to release its kept-alive connections. */
export interface NodeHttp {
  fetch: HttpFetch;
  close(): void;
}

/**
 * A fetch over node:http and node:https, so that `caPem` can add a certificate authority to the
 * system's roots (Node's global fetch takes no CA without the undici package). Connections are
 * kept alive, except for POSTs: a POST goes on a new connection, so that it never fails on a
 * kept-alive connection the server closed meanwhile, which would look like "may have been
 * received" and could not be retried. Redirects are not followed; 204, 205 and 304 have no body.
 */
export function nodeHttp(opts: { caPem?: string } = {}): NodeHttp {
  const ca = opts.caPem ? { ca: [...rootCertificates, opts.caPem] } : {};
  const agents = {
    http: { kept: new http.Agent({ keepAlive: true }), fresh: new http.Agent({ keepAlive: false }) },
    https: {
      kept: new https.Agent({ keepAlive: true, ...ca }),
      fresh: new https.Agent({ keepAlive: false, ...ca }),
    },
  };
  const fetch: HttpFetch = (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      const secure = target.protocol === 'https:';
      const pool = secure ? agents.https : agents.http;
      const req = (secure ? https : http).request(
        target,
        {
          method: init.method,
          headers: init.headers,
          agent: init.method === 'POST' ? pool.fresh : pool.kept,
          signal: init.signal,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
              headers.append(name, v);
            }
          }
          const noBody = status === 204 || status === 205 || status === 304 || init.method === 'HEAD';
          if (noBody) res.resume();
          try {
            const body = noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
            resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers }));
          } catch (e) {
            res.destroy();
            reject(e instanceof Error ? e : new Error(String(e)));
          }
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });
  return {
    fetch,
    close() {
      for (const pool of [agents.http, agents.https]) {
        pool.kept.destroy();
        pool.fresh.destroy();
      }
    },
  };
}

/** Codes of failures before a connection existed: refused, unresolvable name, no route. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH']);

/** Codes of a TLS handshake the client refused: the certificate is not trusted or not for this name. */
const CERTIFICATE_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The system error code of a network failure (Node's own, or undici's `fetch failed` cause). */
export function networkErrorCode(e: unknown): string | undefined {
  for (let cur = e, depth = 0; typeof cur === 'object' && cur !== null && depth < 4; depth++) {
    const { code, cause } = cur as { code?: unknown; cause?: unknown };
    if (typeof code === 'string') return code;
    cur = cause;
  }
  return undefined;
}

/**
 * True when the failed request certainly never reached the server: no connection was made, or the
 * TLS handshake was refused before a byte of the request was written. A POST that failed so is
 * safe to send again; after any other failure it may have been received.
 */
export function neverSent(e: unknown): boolean {
  const code = networkErrorCode(e);
  return code !== undefined && (CONNECT_CODES.has(code) || CERTIFICATE_CODES.has(code));
}

/** True for a refused TLS certificate, which no retry mends (the CA or the name is wrong). */
export function isCertificateError(e: unknown): boolean {
  const code = networkErrorCode(e);
  return code !== undefined && CERTIFICATE_CODES.has(code);
}
