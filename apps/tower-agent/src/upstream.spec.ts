import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Duplex } from 'node:stream';
import { createCertificateAuthority, issueCertificate } from '@knet/crypto';
import { UsageError, createLogger } from '@knet/runtime';
import { until } from '@knet/testing';
import { ApiServerProxy, chooseUpstream, inClusterUpstream, type Upstream } from './upstream';

describe('inClusterUpstream', () => {
  const made: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'knet-sa-'));
    made.push(d);
    return d;
  };
  afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('re-reads a rotated token and fails early without one', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'ca.crt'), 'CA');
    writeFileSync(join(dir, 'token'), 'one\n');
    const u = inClusterUpstream(dir, 'fd00::1', '6443', 0);
    expect(u.server.host).toBe('[fd00::1]:6443');
    expect((await u.credentials()).authorization).toBe('Bearer one');
    writeFileSync(join(dir, 'token'), 'second-token\n');
    expect((await u.credentials()).authorization).toBe('Bearer second-token');
    // looked at again only after the re-check interval
    const slow = inClusterUpstream(dir, 'h', '443', 200);
    writeFileSync(join(dir, 'token'), 'third\n');
    expect((await slow.credentials()).authorization).toBe('Bearer second-token');
    await new Promise((r) => setTimeout(r, 250));
    expect((await slow.credentials()).authorization).toBe('Bearer third');
    const empty = tempDir();
    writeFileSync(join(empty, 'ca.crt'), 'CA');
    expect(() => inClusterUpstream(empty, 'h', '443')).toThrow(/ENOENT/);
  });
});

describe('chooseUpstream', () => {
  const saDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'knet-sa-'));
    writeFileSync(join(dir, 'token'), 'sa-token\n');
    writeFileSync(join(dir, 'ca.crt'), 'CA');
    return dir;
  };

  it('in a cluster: the service account and KUBERNETES_SERVICE_HOST/PORT', async () => {
    const dir = saDir();
    const u = await chooseUpstream(
      { serviceAccountDir: dir },
      { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '6443' },
    );
    expect(u.server.href).toBe('https://10.96.0.1:6443/');
    expect(await u.credentials()).toMatchObject({ authorization: 'Bearer sa-token' });
    rmSync(dir, { recursive: true, force: true });
  });

  it('--kubernetes-service wins over the environment', async () => {
    const dir = saDir();
    const u = await chooseUpstream(
      { serviceAccountDir: dir, kubernetesService: { host: 'fd00::1', port: 443 } },
      { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
    );
    expect(u.server.href).toBe('https://[fd00::1]/');
    rmSync(dir, { recursive: true, force: true });
  });

  it('outside a cluster without --kubeconfig: a usage error that says what to pass', async () => {
    await expect(chooseUpstream({ serviceAccountDir: '/nonexistent' }, {})).rejects.toEqual(
      new UsageError(
        'not running in a cluster (KUBERNETES_SERVICE_HOST unset): pass --kubeconfig or --kubernetes-service',
      ),
    );
  });

  it('unreadable service-account files: one line naming the directory and the way out', async () => {
    await expect(
      chooseUpstream({ serviceAccountDir: '/nonexistent' }, { KUBERNETES_SERVICE_HOST: 'h' }),
    ).rejects.toThrow(
      /^in-cluster credentials in \/nonexistent unusable: .*ENOENT.*; pass --kubeconfig outside a cluster$/,
    );
  });
});

describe('ApiServerProxy over a channel-like stream', () => {
  let upstream: Server;
  let seen: { auth?: string; host?: string; url?: string }[];
  let proxy: ApiServerProxy;
  let up: Upstream;
  let upstreamConnections = 0;

  beforeAll(async () => {
    seen = [];
    upstream = createServer((req, res) => {
      seen.push({ auth: req.headers.authorization, host: req.headers.host, url: req.url });
      if (req.method === 'POST' && req.url === '/count') {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(`counted ${n}`));
        return;
      }
      if (req.method === 'POST') {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => res.end(`got ${body}`));
        return;
      }
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
    upstream.on('connection', () => upstreamConnections++);
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    up = {
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
  function channel(to: ApiServerProxy = proxy): Duplex {
    const toProxy = new PassThrough();
    const toClient = new PassThrough();
    const proxySide = Duplex.from({ readable: toProxy, writable: toClient });
    const clientSide = Duplex.from({ readable: toClient, writable: toProxy });
    to.handle(proxySide);
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

  /** Writes `raw` into a new channel and collects what comes back until the channel ends. */
  async function exchange(raw: string): Promise<string> {
    const c = channel();
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString('latin1')));
    c.on('error', () => undefined);
    c.write(raw);
    await new Promise<void>((resolve) => c.once('end', resolve));
    return got;
  }

  it('rewrites every pipelined request on one connection, through one API server connection', async () => {
    const before = { seen: seen.length, conns: upstreamConnections };
    const got = await exchange(
      'GET /one HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer caller\r\n\r\n' +
        'GET /two HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer caller\r\nConnection: close\r\n\r\n',
    );
    expect(got.match(/HTTP\/1.1 200 OK/g)).toHaveLength(2);
    expect(seen.slice(before.seen)).toEqual([
      { auth: 'Bearer agent-token', host: expect.stringMatching(/^127.0.0.1:\d+$/) as string, url: '/one' },
      { auth: 'Bearer agent-token', host: expect.stringMatching(/^127.0.0.1:\d+$/) as string, url: '/two' },
    ]);
    expect(upstreamConnections - before.conns).toBe(1);
  });

  it('passes a chunked request body through whole', async () => {
    const got = await exchange(
      'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n',
    );
    expect(got).toMatch(/^HTTP\/1.1 200 OK/);
    expect(got.endsWith('got hello world')).toBe(true);
  });

  it('passes a large upload through, pausing the client while the API server catches up', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const size = 16 * 1024 * 1024;
      const c = channel();
      let got = '';
      c.on('data', (d: Buffer) => (got += d.toString('latin1')));
      c.on('error', () => undefined);
      c.write(`POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`);
      const piece = Buffer.alloc(64 * 1024, 0x61);
      for (let sent = 0; sent < size; sent += piece.length) c.write(piece);
      await new Promise<void>((resolve) => c.once('end', resolve));
      expect(got.endsWith(`counted ${size}`)).toBe(true);
      expect(warnings).toEqual([]); // e.g. MaxListenersExceeded from 'drain' listeners
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('refuses a request the API server could frame differently; nothing of it reaches the API server', async () => {
    const before = { seen: seen.length, conns: upstreamConnections };
    const got = await exchange(
      'POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '0\r\n\r\nGET /secret HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    expect(got).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
    expect(JSON.parse(got.slice(got.indexOf('\r\n\r\n') + 4))).toMatchObject({
      kind: 'Status',
      code: 400,
      reason: 'BadRequest',
      message: 'both Content-Length and Transfer-Encoding',
    });
    expect(seen.length).toBe(before.seen);
    expect(upstreamConnections).toBe(before.conns);
  });

  it('answers the requests before a refused one, then the refusal', async () => {
    const before = seen.length;
    const got = await exchange(
      'GET /fine HTTP/1.1\r\nHost: x\r\n\r\nGET /bad HTTP/1.1\r\nHost: x\r\nX-A: a\x01\r\n\r\n',
    );
    expect(got).toMatch(/^HTTP\/1.1 200 OK[\s\S]*\{"ok":true\}HTTP\/1.1 400 Bad Request\r\n/);
    expect(got).toContain('control character in header field X-A');
    expect(seen.slice(before).map((s) => s.url)).toEqual(['/fine']);
  });

  it('a refused connection closes once the client is done: nothing stays open after refusals', async () => {
    const own = new ApiServerProxy(up, createLogger({ name: 'test', level: 'silent' }));
    const refusedOnce = async () => {
      const client = channel(own);
      let got = '';
      client.on('data', (c: Buffer) => (got += c.toString()));
      const closed = new Promise((r) => client.once('close', r));
      client.write('GET /twice HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy');
      await until('the refusal', () => got.includes('\r\n\r\n'), { timeoutMs: 10_000, intervalMs: 5 });
      expect(got).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
      client.write('more bytes after the refusal'); // read and dropped
      client.end();
      await closed;
    };
    await Promise.all(Array.from({ length: 20 }, refusedOnce));
    await until('every refused channel to close', () => own.connections === 0, {
      timeoutMs: 10_000,
      intervalMs: 5,
    });
  }, 20_000);

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

describe('ApiServerProxy: an upgrade request the API server does not accept', () => {
  /** Heads (request line and Authorization) the API server read, in order. */
  const seen: string[] = [];
  let server: NetServer;
  let proxy: ApiServerProxy;
  /** How the API server answers an upgrade request (a non-upgrade request gets `200 ok <path>`). */
  let answerUpgrade: string;

  beforeAll(async () => {
    // Like Go's net/http: a handler that does not hijack answers an upgrade request like any
    // other, and the connection goes on as HTTP/1.1 (requests without bodies, for brevity).
    server = createNetServer((sock) => {
      let buf = '';
      let piped = false;
      sock.on('data', (d: Buffer) => {
        if (piped) return void sock.write(d); // after a 101: echo
        buf += d.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          const line = head.split('\r\n')[0] ?? '';
          seen.push(`${line} | ${/^authorization: (.*)$/im.exec(head)?.[1] ?? '-'}`);
          if (/^upgrade:/im.test(head)) {
            sock.write(answerUpgrade);
            if (answerUpgrade.includes(' 101 ')) {
              piped = true;
              if (buf) sock.write(buf);
              return;
            }
          } else {
            const body = `ok ${line.split(' ')[1]}`;
            sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
          }
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    proxy = new ApiServerProxy(
      {
        server: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
        credentials: async () => ({ authorization: 'Bearer agent-token' }),
      },
      createLogger({ name: 'test', level: 'silent' }),
    );
  });
  afterAll(() => {
    proxy.close();
    server.close();
  });

  /** Sends `raw` on a new channel; resolves with what came back once `until` matches it. */
  async function exchange(raw: string, until: RegExp): Promise<string> {
    const toProxy = new PassThrough();
    const toClient = new PassThrough();
    proxy.handle(Duplex.from({ readable: toProxy, writable: toClient }));
    const c = Duplex.from({ readable: toClient, writable: toProxy });
    c.on('error', () => undefined);
    let got = '';
    const done = new Promise<void>((resolve) =>
      c.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (until.test(got)) resolve();
      }),
    );
    c.write(raw);
    await done;
    c.destroy();
    return got;
  }

  const UPGRADE =
    'GET /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nAuthorization: Bearer caller\r\n\r\n';
  const NEXT = 'GET /next HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer caller\r\n\r\n';

  it.each([
    ['200 with a body', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain'],
    ['400, chunked', 'HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n'],
    ['403 with no body', 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'],
    ['100 Continue, then 200', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ])(
    'answered %s: the pipelined request after it is framed and rewritten, not piped raw',
    async (_what, answer) => {
      answerUpgrade = answer;
      const before = seen.length;
      const got = await exchange(UPGRADE + NEXT, /ok \/next$/);
      expect(got).toBe(answer + 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nok /next');
      expect(seen.slice(before)).toEqual([
        'GET /exec HTTP/1.1 | Bearer agent-token',
        'GET /next HTTP/1.1 | Bearer agent-token',
      ]);
    },
  );

  it('answered 101: what follows is piped raw, also when it looks like a request', async () => {
    answerUpgrade = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n';
    const before = seen.length;
    const got = await exchange(UPGRADE + NEXT, /Bearer caller\r\n\r\n$/);
    expect(got).toBe(answerUpgrade + NEXT); // echoed as bytes, not forwarded as a request
    expect(seen.slice(before)).toEqual(['GET /exec HTTP/1.1 | Bearer agent-token']);
  });

  it('after requests answered before it, the upgrade is told by its own answer', async () => {
    answerUpgrade = 'HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope';
    const before = seen.length;
    const first = 'GET /first HTTP/1.1\r\nHost: x\r\n\r\n';
    const got = await exchange(first + UPGRADE + NEXT, /ok \/next$/);
    expect(got).toBe(
      'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok /first' +
        answerUpgrade +
        'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nok /next',
    );
    expect(seen.slice(before).map((l) => l.split(' ')[1])).toEqual(['/first', '/exec', '/next']);
  });
});

describe('ApiServerProxy to a server URL with a path (a kubeconfig behind a path-routing proxy)', () => {
  let upstream: Server;
  let port: number;
  const seen: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'knet-kc-'));

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.end('ok');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    port = (upstream.address() as AddressInfo).port;
  });
  afterAll(() => {
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** GETs each path through a channel of a proxy to `up`; returns the paths the API server saw. */
  async function forwarded(up: Upstream, paths: string[]): Promise<string[]> {
    const p = new ApiServerProxy(up, createLogger({ name: 'test', level: 'silent' }));
    const before = seen.length;
    const toProxy = new PassThrough();
    const toClient = new PassThrough();
    p.handle(Duplex.from({ readable: toProxy, writable: toClient }));
    const client = Duplex.from({ readable: toClient, writable: toProxy });
    client.on('error', () => undefined);
    client.resume();
    const ended = new Promise((r) => client.once('end', r));
    client.end(
      paths
        .map(
          (path, i) =>
            `GET ${path} HTTP/1.1\r\nHost: x\r\n${i === paths.length - 1 ? 'Connection: close\r\n' : ''}\r\n`,
        )
        .join(''),
    );
    await ended;
    p.close();
    return seen.slice(before);
  }

  it.each([
    ['/prefix', ['/prefix/api/v1/namespaces?limit=1', '/prefix/version']],
    ['/prefix/', ['/prefix/api/v1/namespaces?limit=1', '/prefix/version']],
    ['/a/b', ['/a/b/api/v1/namespaces?limit=1', '/a/b/version']],
    ['', ['/api/v1/namespaces?limit=1', '/version']],
  ])('server path %p', async (path, want) => {
    const up: Upstream = {
      server: new URL(`http://127.0.0.1:${port}${path}`),
      credentials: async () => ({}),
    };
    expect(await forwarded(up, ['/api/v1/namespaces?limit=1', '/version'])).toEqual(want);
  });

  it('keeps the path of a --kubeconfig server', async () => {
    const ca = await createCertificateAuthority('kc-ca');
    const serving = await issueCertificate(ca, {
      commonName: 'apiserver',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const tls = createHttpsServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      seen.push(`${req.url} ${req.headers.authorization}`);
      res.end('ok');
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    try {
      const file = join(dir, 'kubeconfig');
      const server = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/clusters/member-1`;
      writeFileSync(
        file,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            {
              name: 'c',
              cluster: { server, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') },
            },
          ],
          users: [{ name: 'u', user: { token: 'kc-token' } }],
          contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
          'current-context': 'x',
        }),
      );
      const up = await chooseUpstream({ kubeconfig: file, serviceAccountDir: '/nonexistent' }, {});
      expect(await forwarded(up, ['/api?timeout=32s'])).toEqual([
        '/clusters/member-1/api?timeout=32s Bearer kc-token',
      ]);
    } finally {
      tls.close();
    }
  }, 60_000); // (loading client-node under jest takes seconds)
});

describe('ApiServerProxy over https', () => {
  it('gives each channel one verified API server connection, kept for its keep-alive requests', async () => {
    const ca = await createCertificateAuthority('test-ca');
    const other = await createCertificateAuthority('other-ca');
    const serving = await issueCertificate(ca, {
      commonName: 'apiserver',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const server = createHttpsServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) =>
      res.end(`ok ${req.headers.authorization}`),
    );
    let connections = 0;
    server.on('secureConnection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const logger = createLogger({ name: 'test', level: 'silent' });
    const good = new ApiServerProxy(
      { server: url, credentials: async () => ({ ca: ca.certPem, authorization: 'Bearer t' }) },
      logger,
    );
    const wrongCa = new ApiServerProxy(
      { server: url, credentials: async () => ({ ca: other.certPem, authorization: 'Bearer t' }) },
      logger,
    );
    /** A keep-alive client whose one connection is a channel into `p` (here a loopback TCP socket). */
    const entries: NetServer[] = [];
    const client = async (p: ApiServerProxy) => {
      const entry = createNetServer((sock) => p.handle(sock));
      entries.push(entry);
      await new Promise<void>((r) => entry.listen(0, '127.0.0.1', r));
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      return { agent, port: (entry.address() as AddressInfo).port };
    };
    const get = ({ agent, port }: { agent: Agent; port: number }) =>
      new Promise<{ status?: number; body: string }>((resolve, reject) => {
        const req = request({ agent, host: '127.0.0.1', port, path: '/version' }, (r) => {
          let b = '';
          r.on('data', (c: Buffer) => (b += c.toString()));
          r.on('end', () => resolve({ status: r.statusCode, body: b }));
        });
        req.on('error', reject);
        req.end();
      });
    const a = await client(good);
    const b = await client(good);
    try {
      expect([await get(a), await get(a), await get(a)].map((r) => r.body)).toEqual([
        'ok Bearer t',
        'ok Bearer t',
        'ok Bearer t',
      ]);
      expect(connections).toBe(1);
      expect((await get(b)).body).toBe('ok Bearer t');
      expect(connections).toBe(2);
      const refused = await get(await client(wrongCa));
      expect(refused.status).toBe(502);
      expect(JSON.parse(refused.body).message).toMatch(
        /^agent cannot reach the member's kube-apiserver at 127.0.0.1:\d+: .*certificate/,
      );
    } finally {
      a.agent.destroy();
      b.agent.destroy();
      for (const e of entries) e.close();
      good.close();
      wrongCa.close();
      server.close();
    }
  });
});
