import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Duplex } from 'node:stream';
import { createCertificateAuthority, issueCertificate } from '@knet/crypto';
import { createLogger } from '@knet/runtime';
import { ApiServerProxy, inClusterUpstream, upstreamHeaders, type Upstream } from './upstream';

describe('upstreamHeaders', () => {
  it("drops hop-by-hop headers and the caller's Authorization, sets Host and ours", () => {
    const h: IncomingHttpHeaders = {
      host: 'proxy:6443',
      authorization: 'Bearer caller',
      connection: 'keep-alive, x-drop',
      'x-drop': '1',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      accept: 'application/json',
      'impersonate-user': 'alice',
    };
    expect(upstreamHeaders(h, 'api:443', 'Bearer agent', false)).toEqual({
      accept: 'application/json',
      'impersonate-user': 'alice',
      host: 'api:443',
      authorization: 'Bearer agent',
    });
  });

  it('keeps Connection/Upgrade for an upgrade request', () => {
    const h: IncomingHttpHeaders = {
      host: 'p',
      connection: 'Upgrade',
      upgrade: 'SPDY/3.1',
      'keep-alive': 'x',
    };
    expect(upstreamHeaders(h, 'api', undefined, true)).toEqual({
      connection: 'Upgrade',
      upgrade: 'SPDY/3.1',
      host: 'api',
    });
  });
});

describe('inClusterUpstream', () => {
  it('re-reads a rotated token and fails early without one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knet-sa-'));
    writeFileSync(join(dir, 'ca.crt'), 'CA');
    writeFileSync(join(dir, 'token'), 'one\n');
    const u = inClusterUpstream(dir, 'fd00::1', '6443');
    expect(u.server.host).toBe('[fd00::1]:6443');
    expect((await u.credentials()).authorization).toBe('Bearer one');
    writeFileSync(join(dir, 'token'), 'second-token\n');
    expect((await u.credentials()).authorization).toBe('Bearer second-token');
    const empty = mkdtempSync(join(tmpdir(), 'knet-sa-'));
    writeFileSync(join(empty, 'ca.crt'), 'CA');
    expect(() => inClusterUpstream(empty, 'h', '443')).toThrow(/ENOENT/);
  });
});

describe('ApiServerProxy over a channel-like stream', () => {
  let upstream: Server;
  let seen: { auth?: string; host?: string; url?: string }[];
  let proxy: ApiServerProxy;

  beforeAll(async () => {
    seen = [];
    upstream = createServer((req, res) => {
      seen.push({ auth: req.headers.authorization, host: req.headers.host, url: req.url });
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'application/json' });
        let n = 0;
        const t = setInterval(() => {
          res.write(`{"n":${n}}\n`);
          if (++n === 3) {
            clearInterval(t);
            res.end();
          }
        }, 20);
        return;
      }
      res.end(JSON.stringify({ ok: true }));
    });
    upstream.on('upgrade', (req, sock) => {
      seen.push({ auth: req.headers.authorization, url: req.url });
      sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      sock.pipe(sock);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    const up: Upstream = {
      server: new URL(`http://127.0.0.1:${port}`),
      credentials: async () => ({ authorization: 'Bearer agent-token' }),
    };
    proxy = new ApiServerProxy(up, createLogger({ name: 'test', level: 'silent' }));
  });

  afterAll(() => {
    proxy.close();
    upstream.close();
  });

  /** A pair of connected streams: one end goes to the proxy (like an SSH channel), the other is the client. */
  function channel(): Duplex {
    const toProxy = new PassThrough();
    const toClient = new PassThrough();
    const proxySide = Duplex.from({ readable: toProxy, writable: toClient });
    const clientSide = Duplex.from({ readable: toClient, writable: toProxy });
    proxy.handle(proxySide);
    return clientSide;
  }

  it('forwards a request with the agent credentials and streams a chunked response', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          createConnection: () => channel() as never,
          path: '/stream',
          headers: { authorization: 'Bearer caller' },
        },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve(b));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(body).toBe('{"n":0}\n{"n":1}\n{"n":2}\n');
    expect(seen.at(-1)).toMatchObject({ auth: 'Bearer agent-token', url: '/stream' });
  });

  it('turns an upgrade into a byte pipe', async () => {
    const c = channel();
    c.write(
      'GET /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nAuthorization: Bearer caller\r\n\r\n',
    );
    let got = '';
    c.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('\r\n\r\n') && !got.includes('ping')) c.write('ping');
    });
    await new Promise<void>((resolve) => {
      const t = setInterval(() => got.endsWith('ping') && (clearInterval(t), resolve()), 10);
    });
    expect(got).toMatch(/^HTTP\/1.1 101 Switching Protocols/);
    expect(seen.at(-1)).toMatchObject({ auth: 'Bearer agent-token', url: '/exec' });
    c.on('error', () => undefined); // Duplex.from reports its own destroy as an AbortError
    c.destroy();
  });

  it('answers 502 with a Status when the apiserver is unreachable', async () => {
    const dead: Upstream = { server: new URL('http://127.0.0.1:1'), credentials: async () => ({}) };
    const p = new ApiServerProxy(dead, createLogger({ name: 'test', level: 'silent' }));
    const toProxy = new PassThrough();
    const toClient = new PassThrough();
    p.handle(Duplex.from({ readable: toProxy, writable: toClient }));
    const res = await new Promise<{ status?: number; body: string }>((resolve) => {
      const req = request(
        {
          createConnection: () => Duplex.from({ readable: toClient, writable: toProxy }) as never,
          path: '/api',
        },
        (r) => {
          let b = '';
          r.on('data', (c: Buffer) => (b += c.toString()));
          r.on('end', () => resolve({ status: r.statusCode, body: b }));
        },
      );
      req.end();
    });
    p.close();
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toMatchObject({ kind: 'Status', code: 502, reason: 'BadGateway' });
    expect(JSON.parse(res.body).message).toMatch(
      /^agent cannot reach the member's kube-apiserver at 127.0.0.1:1: connect ECONNREFUSED/,
    );
  });
});

describe('ApiServerProxy over https', () => {
  it('keeps one keep-alive pool while the TLS material is the same (even in new buffers), a new one when it changes', async () => {
    const ca = await createCertificateAuthority('test-ca');
    const serving = await issueCertificate(ca, {
      commonName: 'apiserver',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const server = createHttpsServer({ cert: serving.certPem, key: serving.keyPem }, (_req, res) =>
      res.end('ok'),
    );
    let connections = 0;
    server.on('secureConnection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    let caPem = ca.certPem;
    const up: Upstream = {
      server: new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`),
      // A kubeconfig's credentials come as fresh buffers on every call.
      credentials: async () => ({ ca: Buffer.from(caPem), authorization: 'Bearer t' }),
    };
    const p = new ApiServerProxy(up, createLogger({ name: 'test', level: 'silent' }));
    const get = () =>
      new Promise<string>((resolve, reject) => {
        const toProxy = new PassThrough();
        const toClient = new PassThrough();
        p.handle(Duplex.from({ readable: toProxy, writable: toClient }));
        const req = request(
          {
            createConnection: () => Duplex.from({ readable: toClient, writable: toProxy }) as never,
            path: '/version',
          },
          (r) => {
            let b = '';
            r.on('data', (c: Buffer) => (b += c.toString()));
            r.on('end', () => resolve(b));
          },
        );
        req.on('error', reject);
        req.end();
      });
    try {
      expect([await get(), await get(), await get()]).toEqual(['ok', 'ok', 'ok']);
      expect(connections).toBe(1);
      caPem = `${ca.certPem}\n`; // another CA bundle (same CA here): the pool is rebuilt
      expect(await get()).toBe('ok');
      expect(connections).toBe(2);
    } finally {
      p.close();
      server.close();
    }
  });
});
