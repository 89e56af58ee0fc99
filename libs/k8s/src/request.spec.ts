import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import {
  createCertificateAuthority,
  issueCertificate,
  type CertificateAndKey,
  type CertificateAuthority,
} from '@knet/crypto';
import { until } from '@knet/testing';
import { decodeApiError } from './errors';
import { KUBE_REQUEST_MAX_SOCKETS, kubeRequest, type KubeRequest } from './request';

// An API server stand-in on loopback that answers as it is told, or never.
let server: Server;
let kc: KubeConfig;
let handle: (req: IncomingMessage, res: ServerResponse) => void;
let requests = 0;
const held: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});
beforeEach(() => {
  requests = 0;
});
afterEach(() => {
  for (const r of held.splice(0)) r.destroy();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Settles with the request's outcome, or 'still pending' once the server has had the request for a while. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  return Promise.race([
    p.then(
      (v) => ({ resolved: v }),
      (e: unknown) => ({ rejected: decodeApiError(e) }),
    ),
    new Promise((resolve) => setTimeout(() => resolve('still pending'), 5000).unref()),
  ]);
}

describe('kubeRequest signal', () => {
  it('aborts a request the server never answers (the idle timeout alone would wait 30 s)', async () => {
    handle = (_req, res) => held.push(res);
    const ac = new AbortController();
    const p = kubeRequest(kc, { method: 'GET', path: '/hang', signal: ac.signal, timeoutMs: 60_000 });
    while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
    ac.abort(new Error('renew deadline'));
    const got = await outcome(p);
    expect(got).toEqual({
      rejected: expect.objectContaining({ code: 0, reason: 'ABORT_ERR' }) as unknown,
    });
    expect((got as { rejected: { message: string } }).rejected.message).toContain('renew deadline');
  });

  it('aborts while the body trickles in (headers sent, the rest held back)', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"kind":');
      held.push(res);
    };
    const ac = new AbortController();
    const p = kubeRequest(kc, { method: 'GET', path: '/half', signal: ac.signal, timeoutMs: 60_000 });
    while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50)); // the client has the headers
    ac.abort();
    expect(await outcome(p)).toEqual({
      rejected: expect.objectContaining({ reason: 'ABORT_ERR' }) as unknown,
    });
  });

  it('does not connect at all when the signal is already aborted', async () => {
    handle = (_req, res) => res.end('{}');
    await expect(
      kubeRequest(kc, { method: 'GET', path: '/x', signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ decoded: { reason: 'ABORT_ERR' } });
    expect(requests).toBe(0);
  });

  it('a signal that never fires changes nothing', async () => {
    handle = (_req, res) => res.end('{"ok":true}');
    const ac = new AbortController();
    await expect(kubeRequest(kc, { method: 'GET', path: '/ok', signal: ac.signal })).resolves.toEqual({
      ok: true,
    });
    ac.abort(); // after the answer: harmless
    expect(requests).toBe(1);
  });
});

// Connection reuse against real servers on loopback: an https one that asks for a client
// certificate (CA, server and client certificates from @knet/crypto), and a plain http one. Each
// test starts its own server (a new origin, so no pooled connection carries over) and counts the
// connections it accepts and the requests on each.

interface Seen {
  method: string;
  path: string;
  /** Index of the connection in `Bed.connections`. */
  conn: number;
  /** The client certificate's CN (https). */
  cn?: string;
}

class Bed {
  readonly connections: Socket[] = [];
  readonly seen: Seen[] = [];
  /** How the next requests are answered (default: 200 with method, path and body echoed). */
  handle: (req: IncomingMessage, res: ServerResponse) => void = (req, res) => echo(req, res);

  /** `https://127.0.0.1:<port>` (or http), once listening. */
  url = '';

  constructor(readonly server: Server | HttpsServer) {}

  connection(i: number): Socket {
    const s = this.connections[i];
    if (!s) throw new Error(`the server has no connection ${i} (it has ${this.connections.length})`);
    return s;
  }
}

let pki: { ca: CertificateAuthority; server: CertificateAndKey; a: CertificateAndKey; b: CertificateAndKey };
const beds: Bed[] = [];
const tmpDirs: string[] = [];

beforeAll(async () => {
  const ca = await createCertificateAuthority('knet-test-ca');
  pki = {
    ca,
    server: await issueCertificate(ca, {
      commonName: 'apiserver',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    }),
    a: await issueCertificate(ca, { commonName: 'client-a', usage: 'client' }),
    b: await issueCertificate(ca, { commonName: 'client-b', usage: 'client' }),
  };
});
afterEach(async () => {
  for (const bed of beds.splice(0)) {
    bed.server.closeAllConnections();
    await new Promise((resolve) => bed.server.close(resolve));
  }
  for (const dir of tmpDirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function startBed(tls: boolean): Promise<Bed> {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TLSSocket;
    const seen: Seen = {
      method: req.method ?? '',
      path: req.url ?? '',
      conn: bed.connections.indexOf(socket),
    };
    if (tls) seen.cn = String(socket.getPeerCertificate().subject.CN);
    bed.seen.push(seen);
    bed.handle(req, res);
  };
  const server = tls
    ? createHttpsServer(
        {
          cert: pki.server.certPem,
          key: pki.server.keyPem,
          ca: pki.ca.certPem,
          requestCert: true,
          rejectUnauthorized: true,
        },
        onRequest,
      )
    : createServer(onRequest);
  const bed: Bed = new Bed(server);
  beds.push(bed);
  server.on(tls ? 'secureConnection' : 'connection', (s: Socket) => bed.connections.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  bed.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return bed;
}

function echo(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        method: req.method,
        path: req.url,
        contentType: req.headers['content-type'],
        body: Buffer.concat(chunks).toString('utf8'),
      }),
    );
  });
}

const b64 = (pem: string) => Buffer.from(pem).toString('base64');

/** A kubeconfig for `bed` with a client certificate given inline, or as files (read at each request). */
function kubeConfigFor(
  bed: Bed,
  user: CertificateAndKey | { certFile: string; keyFile: string },
): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      bed.url.startsWith('https:')
        ? { name: 'c', server: bed.url, caData: b64(pki.ca.certPem), skipTLSVerify: false }
        : { name: 'c', server: bed.url, skipTLSVerify: true },
    ],
    users: [
      'certPem' in user
        ? { name: 'u', certData: b64(user.certPem), keyData: b64(user.keyPem) }
        : { name: 'u', certFile: user.certFile, keyFile: user.keyFile },
    ],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

const get = (kc: KubeConfig, path: string) => kubeRequest<{ path: string }>(kc, { method: 'GET', path });

describe('kubeRequest connection reuse', () => {
  it('sends 20 sequential requests over one TLS connection; another client certificate gets its own', async () => {
    const bed = await startBed(true);
    const kcA = kubeConfigFor(bed, pki.a);
    for (let i = 0; i < 20; i++)
      await expect(get(kcA, `/a/${i}`)).resolves.toMatchObject({ path: `/a/${i}` });
    expect(bed.connections).toHaveLength(1);
    expect(bed.seen.map((s) => `${s.cn}@${s.conn}`)).toEqual(Array(20).fill('client-a@0'));

    // The counter sees a second identity: its own connection, with its own certificate.
    await get(kubeConfigFor(bed, pki.b), '/b');
    await get(kcA, '/a/again');
    expect(bed.connections).toHaveLength(2);
    expect(bed.seen.slice(20).map((s) => `${s.cn}@${s.conn}`)).toEqual(['client-b@1', 'client-a@0']);
  });

  it('sends sequential requests over one connection to an http server too', async () => {
    const bed = await startBed(false);
    const kc = kubeConfigFor(bed, pki.a);
    for (let i = 0; i < 5; i++) await get(kc, `/${i}`);
    expect(bed.seen).toHaveLength(5);
    expect(bed.connections).toHaveLength(1);
  });

  it('a rotated client certificate (the same kubeconfig, its files rewritten) gets a new connection', async () => {
    const bed = await startBed(true);
    const dir = await mkdtemp(join(tmpdir(), 'knet-request-'));
    tmpDirs.push(dir);
    const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
    const install = async (c: CertificateAndKey) => {
      await writeFile(files.certFile, c.certPem);
      await writeFile(files.keyFile, c.keyPem);
    };
    const kc = kubeConfigFor(bed, files);
    await install(pki.a);
    await get(kc, '/1');
    await get(kc, '/2');
    await install(pki.b);
    await get(kc, '/3');
    await get(kc, '/4');
    expect(bed.seen.map((s) => `${s.cn}@${s.conn}`)).toEqual([
      'client-a@0',
      'client-a@0',
      'client-b@1',
      'client-b@1',
    ]);
  });

  it('keeps answering non-2xx with an ApiException, with query, content type and body intact', async () => {
    const bed = await startBed(true);
    const kc = kubeConfigFor(bed, pki.a);
    bed.handle = (req, res) => {
      if (req.url !== '/missing') return echo(req, res);
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ kind: 'Status', reason: 'NotFound', message: 'widgets "w" not found', code: 404 }),
      );
    };
    const notFound = await get(kc, '/missing').catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(ApiException);
    expect(decodeApiError(notFound)).toMatchObject({ code: 404, reason: 'NotFound' });
    await expect(
      kubeRequest(kc, {
        method: 'PATCH',
        path: '/w',
        query: { fieldManager: 'knet', dryRun: undefined },
        body: { spec: { a: 1 } },
        contentType: 'application/merge-patch+json',
      }),
    ).resolves.toEqual({
      method: 'PATCH',
      path: '/w?fieldManager=knet',
      contentType: 'application/merge-patch+json',
      body: '{"spec":{"a":1}}',
    });
    expect(bed.connections).toHaveLength(1);
  });

  it('a request on a connection the server closed while idle goes out again on a new one', async () => {
    const bed = await startBed(true);
    const kc = kubeConfigFor(bed, pki.a);
    await get(kc, '/1');
    // The server closes the idle connection; the client learns it only once it has sent on it.
    bed.connection(0).destroy();
    await expect(get(kc, '/2')).resolves.toMatchObject({ path: '/2' });
    await expect(get(kc, '/3')).resolves.toMatchObject({ path: '/3' });
    expect(bed.seen.map((s) => `${s.path}@${s.conn}`)).toEqual(['/1@0', '/2@1', '/3@1']);
  });

  /** A request of `method` that the server drops unanswered on the connection `/warm` used. */
  async function dropOnReusedConnection(method: KubeRequest['method']) {
    const bed = await startBed(true);
    const kc = kubeConfigFor(bed, pki.a);
    await get(kc, '/warm');
    let drop = true;
    bed.handle = (req, res) => {
      if (!drop) return echo(req, res);
      drop = false;
      req.socket.destroy();
    };
    const result = await kubeRequest(kc, {
      method,
      path: '/w',
      body: method === 'GET' ? undefined : { a: 1 },
    }).then(
      (v) => ({ resolved: v }),
      (e: unknown) => ({ rejected: decodeApiError(e).reason }),
    );
    await get(kc, '/after');
    return {
      result,
      seen: bed.seen.map((s) => `${s.method} ${s.path}@${s.conn}`),
      connections: bed.connections,
    };
  }

  it.each(['GET', 'PUT', 'DELETE'] as const)(
    'sends a %s dropped unanswered on a reused connection once more, on a new connection',
    async (method) => {
      const { result, seen, connections } = await dropOnReusedConnection(method);
      expect(result).toEqual({ resolved: expect.objectContaining({ method, path: '/w' }) as unknown });
      expect(seen).toEqual(['GET /warm@0', `${method} /w@0`, `${method} /w@1`, 'GET /after@1']);
      expect(connections).toHaveLength(2);
    },
  );

  it.each(['POST', 'PATCH'] as const)(
    'does not send a %s again once written (the server may have applied it): the caller gets ECONNRESET',
    async (method) => {
      const { result, seen, connections } = await dropOnReusedConnection(method);
      expect(result).toEqual({ rejected: 'ECONNRESET' });
      expect(seen).toEqual(['GET /warm@0', `${method} /w@0`, 'GET /after@1']);
      expect(connections).toHaveLength(2);
    },
  );

  it('an abort mid-request destroys its connection; the next request opens a new one', async () => {
    const bed = await startBed(true);
    const kc = kubeConfigFor(bed, pki.a);
    await get(kc, '/warm');
    const holding: ServerResponse[] = [];
    bed.handle = (req, res) => (req.url === '/hold' ? holding.push(res) : echo(req, res));
    const ac = new AbortController();
    const p = kubeRequest(kc, { method: 'GET', path: '/hold', signal: ac.signal });
    await until('the server to hold /hold', () => holding.length === 1);
    ac.abort(new Error('deadline'));
    await expect(p).rejects.toMatchObject({ decoded: { reason: 'ABORT_ERR' } });
    await until('the aborted connection to close on the server', () => bed.connection(0).destroyed, 3000);
    await expect(get(kc, '/after')).resolves.toMatchObject({ path: '/after' });
    expect(bed.seen.map((s) => `${s.path}@${s.conn}`)).toEqual(['/warm@0', '/hold@0', '/after@1']);
  });

  it('runs 50 requests at once over at most KUBE_REQUEST_MAX_SOCKETS connections', async () => {
    const bed = await startBed(true);
    const kc = kubeConfigFor(bed, pki.a);
    // Answers are held until as many requests are in flight as the pool allows, then all go.
    const waiting: (() => void)[] = [];
    let peak = 0;
    bed.handle = (req, res) => {
      waiting.push(() => echo(req, res));
      peak = Math.max(peak, waiting.length);
      if (waiting.length >= KUBE_REQUEST_MAX_SOCKETS || peak >= KUBE_REQUEST_MAX_SOCKETS) {
        for (const go of waiting.splice(0)) go();
      }
    };
    const paths = Array.from({ length: 50 }, (_, i) => `/p/${i}`);
    const got = await Promise.all(paths.map((path) => get(kc, path)));
    expect(got.map((g) => g.path)).toEqual(paths);
    expect(peak).toBe(KUBE_REQUEST_MAX_SOCKETS);
    expect(bed.connections).toHaveLength(KUBE_REQUEST_MAX_SOCKETS);
  });
});
