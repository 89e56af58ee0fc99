import { Agent as HttpAgent, request as httpRequest, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { BlockList, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { UsageError, errorMessage } from '@knet/runtime';

/**
 * The egress proxy the agent dials `url` (the tunnel's ws:// or wss:// URL) through, from the
 * environment as Go's `http.ProxyFromEnvironment` reads it (KubeSphere's agent does the same):
 * `HTTPS_PROXY` for wss, `HTTP_PROXY` for ws (upper case first, then lower case), unless
 * `NO_PROXY` matches the host (`*`; a domain, which also matches its subdomains; `.domain`, only
 * its subdomains; an IP or a CIDR; each optionally with `:port`). Loopback is never proxied. A
 * value without a scheme is `http://`. Undefined: dial directly.
 */
export function egressProxyFor(url: string, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  const target = new URL(url);
  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  const names = secure ? ['HTTPS_PROXY', 'https_proxy'] : ['HTTP_PROXY', 'http_proxy'];
  const raw = names.map((n) => env[n]).find((v) => v !== undefined && v !== '');
  if (!raw) return undefined;
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = target.port || (secure ? '443' : '80');
  if (host === 'localhost' || isLoopback(host)) return undefined;
  const noProxy = env['NO_PROXY'] ?? env['no_proxy'] ?? '';
  if (noProxyMatches(host, port, noProxy)) return undefined;
  const name = names[0] as string;
  let proxy: URL;
  try {
    proxy = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new UsageError(`${name}: not a URL (like http://proxy.example.com:3128)`);
  }
  if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:') {
    throw new UsageError(
      `${name}: scheme ${proxy.protocol.slice(0, -1)} not supported (an HTTP proxy with CONNECT: http:// or https://)`,
    );
  }
  return proxy;
}

function isLoopback(host: string): boolean {
  const v = isIP(host);
  if (v === 4) return host.startsWith('127.');
  if (v === 6) return LOOPBACK6.check(host, 'ipv6') || /^::ffff:127\./i.test(host);
  return false;
}
const LOOPBACK6 = new BlockList();
LOOPBACK6.addAddress('::1', 'ipv6');

/** Whether a NO_PROXY list (comma- or space-separated) exempts `host` (lower case, no brackets) on `port`. */
export function noProxyMatches(host: string, port: string, noProxy: string): boolean {
  for (let entry of noProxy.toLowerCase().split(/[\s,]+/)) {
    if (!entry) continue;
    if (entry === '*') return true;
    // A port: `host:port`, `[v6]:port`, `ip:port` (a bare IPv6 address has colons of its own).
    let entryPort: string | undefined;
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry) ?? (isIP(entry) ? null : /^([^:]+):(\d+)$/.exec(entry));
    if (m) {
      entry = m[1] as string;
      entryPort = m[2];
    }
    if (entryPort && entryPort !== port) continue;
    const slash = entry.indexOf('/');
    if (slash > 0) {
      const net = entry.slice(0, slash);
      const bits = Number(entry.slice(slash + 1));
      const family = isIP(net);
      const hostFamily = isIP(host);
      if (!family || family !== hostFamily || !Number.isInteger(bits)) continue;
      const list = new BlockList();
      try {
        list.addSubnet(net, bits, family === 4 ? 'ipv4' : 'ipv6');
      } catch {
        continue;
      }
      if (list.check(host, family === 4 ? 'ipv4' : 'ipv6')) return true;
      continue;
    }
    if (isIP(entry)) {
      if (entry === host) return true;
      continue;
    }
    if (entry.startsWith('.')) {
      if (host.endsWith(entry)) return true;
    } else if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** The proxy's URL without credentials, for logs and errors. */
export function redactedProxy(proxy: URL): string {
  return `${proxy.protocol}//${proxy.host}`;
}

/**
 * Opens a TCP tunnel to `host:port` through an HTTP proxy (`CONNECT`, with Basic
 * `Proxy-Authorization` from the proxy URL's user and password): resolves with the socket once
 * the proxy answered 2xx. One line on failure: the proxy unreachable, its refusal, or no answer
 * within `timeoutMs`.
 */
export function connectThrough(proxy: URL, host: string, port: number, timeoutMs = 45_000): Promise<Duplex> {
  const authority = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  const where = redactedProxy(proxy);
  const headers: Record<string, string> = { host: authority };
  if (proxy.username || proxy.password) {
    const user = decodeURIComponent(proxy.username);
    const pass = decodeURIComponent(proxy.password);
    headers['proxy-authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }
  const secure = proxy.protocol === 'https:';
  const args: ClientRequestArgs = {
    host: proxy.hostname.replace(/^\[|\]$/g, ''),
    port: Number(proxy.port || (secure ? 443 : 80)),
    method: 'CONNECT',
    path: authority,
    headers,
    agent: false,
    setHost: false,
  };
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(args);
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)),
    );
    req.once('connect', (res, socket: Socket, head: Buffer) => {
      req.setTimeout(0);
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        socket.destroy();
        reject(
          new Error(
            `the egress proxy ${where} refused CONNECT ${authority}: ${status} ${res.statusMessage ?? ''}`.trim(),
          ),
        );
        return;
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.once('response', (res) => {
      res.resume();
      reject(new Error(`the egress proxy ${where} answered CONNECT ${authority} with ${res.statusCode}`));
    });
    req.once('error', (e) => reject(new Error(`egress proxy ${where}: ${e.message}`)));
    req.end();
  });
}

type CreateConnection = (
  options: ClientRequestArgs & ConnectionOptions,
  callback: (err: Error | null, socket?: Duplex) => void,
) => undefined;

/**
 * An HTTP(S) agent whose every connection is a CONNECT tunnel through `proxy`: for `wss` the TLS
 * session to the target runs inside the tunnel (the proxy sees only the target's name). For ws's
 * `agent` option; node calls `createConnection` with a callback, so the tunnel can be async.
 */
export function tunnelingAgent(proxy: URL, secure: boolean, timeoutMs?: number): HttpAgent {
  const agent = secure ? new HttpsAgent({ keepAlive: false }) : new HttpAgent({ keepAlive: false });
  const createConnection: CreateConnection = (options, callback) => {
    const host = String(options.host ?? options.hostname ?? 'localhost').replace(/^\[|\]$/g, '');
    const port = Number(options.port ?? (secure ? 443 : 80));
    connectThrough(proxy, host, port, timeoutMs).then(
      (socket) => {
        if (!secure) return callback(null, socket);
        // (`path` is the request's, not a socket path: the TLS session runs over the tunnel.)
        const { path: _path, ...tlsOptions } = options;
        const tls = tlsConnect({ ...tlsOptions, socket: socket as Socket });
        const onError = (e: Error) => callback(e);
        tls.once('error', onError);
        tls.once('secureConnect', () => {
          tls.off('error', onError);
          callback(null, tls);
        });
      },
      (e: unknown) => callback(e instanceof Error ? e : new Error(errorMessage(e))),
    );
    return undefined;
  };
  (agent as unknown as { createConnection: CreateConnection }).createConnection = createConnection;
  return agent;
}
