import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { createCertificateAuthority, issueCertificate } from '@knet/crypto';
import { UsageError } from '@knet/runtime';
import { AgentConnection, SUBPROTOCOL, generateHostKey } from '@knet/tunnel';
import WebSocket, { WebSocketServer } from 'ws';
import { egressProxyFor, noProxyMatches, tunnelingAgent } from './egress-proxy';

describe('egressProxyFor (as Go reads HTTPS_PROXY, HTTP_PROXY, NO_PROXY)', () => {
  const WSS = 'wss://tower.example.com/v1/tunnel';
  const WS = 'ws://tower.example.com:8080/v1/tunnel';
  it.each([
    ['wss: HTTPS_PROXY', WSS, { HTTPS_PROXY: 'http://proxy:3128' }, 'http://proxy:3128/'],
    ['wss: https_proxy (lower case)', WSS, { https_proxy: 'http://low:3128' }, 'http://low:3128/'],
    ['upper case first', WSS, { HTTPS_PROXY: 'http://up:1', https_proxy: 'http://low:2' }, 'http://up:1/'],
    ['wss: not HTTP_PROXY', WSS, { HTTP_PROXY: 'http://proxy:3128' }, undefined],
    ['ws: HTTP_PROXY', WS, { HTTP_PROXY: 'http://proxy:3128' }, 'http://proxy:3128/'],
    ['ws: not HTTPS_PROXY', WS, { HTTPS_PROXY: 'http://proxy:3128' }, undefined],
    ['no scheme: http', WSS, { HTTPS_PROXY: 'proxy:3128' }, 'http://proxy:3128/'],
    ['credentials kept', WSS, { HTTPS_PROXY: 'http://u:p@proxy:3128' }, 'http://u:p@proxy:3128/'],
    ['an https proxy', WSS, { HTTPS_PROXY: 'https://proxy' }, 'https://proxy/'],
    ['empty: none', WSS, { HTTPS_PROXY: '' }, undefined],
    ['NO_PROXY the host', WSS, { HTTPS_PROXY: 'p:1', NO_PROXY: 'other, tower.example.com' }, undefined],
    ['NO_PROXY a parent domain', WSS, { HTTPS_PROXY: 'p:1', NO_PROXY: 'example.com' }, undefined],
    ['no_proxy (lower case)', WSS, { HTTPS_PROXY: 'p:1', no_proxy: '.example.com' }, undefined],
    ['NO_PROXY *', WSS, { HTTPS_PROXY: 'p:1', NO_PROXY: '*' }, undefined],
    ['NO_PROXY another port', WSS, { HTTPS_PROXY: 'p:1', NO_PROXY: 'tower.example.com:8443' }, 'http://p:1/'],
    ['NO_PROXY the port', WSS, { HTTPS_PROXY: 'p:1', NO_PROXY: 'tower.example.com:443' }, undefined],
    [
      'NO_PROXY another domain',
      WSS,
      { HTTPS_PROXY: 'p:1', NO_PROXY: 'ample.com,.tower.example.com' },
      'http://p:1/',
    ],
    ['localhost never', 'ws://localhost:8080/v1/tunnel', { HTTP_PROXY: 'p:1' }, undefined],
    ['loopback never', 'ws://127.0.0.2:8080/v1/tunnel', { HTTP_PROXY: 'p:1' }, undefined],
    ['IPv6 loopback never', 'ws://[::1]:8080/v1/tunnel', { HTTP_PROXY: 'p:1' }, undefined],
  ])('%s', (_what, url, env, want) => {
    expect(egressProxyFor(url, env)?.href).toBe(want);
  });

  it.each([
    ['198.51.100.7', '443', '198.51.100.0/24', true],
    ['198.51.100.7', '443', '198.51.101.0/24', false],
    ['198.51.100.7', '443', '198.51.100.7', true],
    ['198.51.100.7', '443', '198.51.100.7:443', true],
    ['198.51.100.7', '443', '198.51.100.7:80', false],
    ['2001:db8::7', '443', '2001:db8::/32', true],
    ['2001:db8::7', '443', '[2001:db8::7]:443', true],
    ['2001:db8::7', '443', '2001:db8::7', true],
    ['example.com', '443', '.example.com', false],
    ['a.example.com', '443', '.example.com', true],
    ['badexample.com', '443', 'example.com', false],
  ])('NO_PROXY: %s:%s with %p → %p', (host, port, list, want) => {
    expect(noProxyMatches(host, port, list)).toBe(want);
  });

  it('refuses a proxy it cannot use, in one line', () => {
    expect(() => egressProxyFor(WSS, { HTTPS_PROXY: 'socks5://proxy:1080' })).toThrow(
      new UsageError(
        'HTTPS_PROXY: scheme socks5 not supported (an HTTP proxy with CONNECT: http:// or https://)',
      ),
    );
  });
});

/** A loopback HTTP proxy that only does CONNECT, counting them and what they carried. */
class ConnectProxy {
  readonly server: Server;
  readonly connects: { target: string; auth: string | undefined }[] = [];
  /** Bytes it relayed from the client to the target. */
  relayed = Buffer.alloc(0);
  private readonly sockets = new Set<Socket>();

  constructor(o: { requireAuth?: string } = {}) {
    this.server = createServer((_req, res) => res.writeHead(405).end());
    this.server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
      this.sockets.add(client);
      client.on('error', () => undefined);
      const auth = req.headers['proxy-authorization'];
      this.connects.push({ target: req.url ?? '', auth });
      if (o.requireAuth && auth !== o.requireAuth) {
        client.end('HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const [host, port] = [(req.url ?? '').replace(/:\d+$/, ''), Number(/:(\d+)$/.exec(req.url ?? '')?.[1])];
      const up = netConnect({ host: host.replace(/^\[|\]$/g, ''), port }, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) up.write(head);
        client.on('data', (d: Buffer) => (this.relayed = Buffer.concat([this.relayed, d])));
        client.pipe(up).pipe(client);
      });
      this.sockets.add(up);
      up.on('error', () => client.destroy());
    });
  }

  async listen(): Promise<URL> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return new URL(`http://127.0.0.1:${(this.server.address() as AddressInfo).port}`);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

describe('tunnelingAgent (the agent behind an egress proxy)', () => {
  let proxy: ConnectProxy;
  let target: Server;
  let wss: WebSocketServer;
  let stop: (() => Promise<void>)[] = [];

  /** A WebSocket target (echo on /echo, silent elsewhere), plain or TLS. */
  async function startTarget(tls?: { cert: string; key: string }): Promise<number> {
    target = tls ? createHttpsServer(tls) : createServer();
    wss = new WebSocketServer({ server: target, handleProtocols: () => SUBPROTOCOL });
    wss.on('connection', (ws, req) => {
      if (req.url === '/echo') ws.on('message', (m: Buffer) => ws.send(m));
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const t = target;
    const w = wss;
    stop.push(async () => {
      for (const c of w.clients) c.terminate();
      await new Promise((r) => t.close(r));
    });
    return (target.address() as AddressInfo).port;
  }

  afterEach(async () => {
    for (const s of stop) await s();
    stop = [];
  });

  /** Opens a WebSocket with `agent`, sends `message`, resolves with the echo (or rejects with the error). */
  function echo(url: string, agent: ReturnType<typeof tunnelingAgent>, message: string, ca?: string) {
    return new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(url, SUBPROTOCOL, { agent, ...(ca ? { ca } : {}) });
      ws.once('open', () => ws.send(message));
      ws.once('message', (m: Buffer) => {
        resolve(m.toString());
        ws.close();
      });
      ws.once('error', reject);
    });
  }

  it('ws: the connection goes through the proxy (one CONNECT to the target)', async () => {
    proxy = new ConnectProxy();
    const url = await proxy.listen();
    stop.push(() => proxy.close());
    const port = await startTarget();
    expect(await echo(`ws://127.0.0.1:${port}/echo`, tunnelingAgent(url, false), 'hello')).toBe('hello');
    expect(proxy.connects).toEqual([{ target: `127.0.0.1:${port}`, auth: undefined }]);
  });

  it('wss: TLS to the target inside the tunnel (the proxy sees no plaintext), with proxy credentials', async () => {
    const ca = await createCertificateAuthority('egress-test-ca');
    const cert = await issueCertificate(ca, {
      commonName: 'tower',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const basic = `Basic ${Buffer.from('agent:s3cret').toString('base64')}`;
    proxy = new ConnectProxy({ requireAuth: basic });
    const url = await proxy.listen();
    stop.push(() => proxy.close());
    const port = await startTarget({ cert: cert.certPem, key: cert.keyPem });
    const withAuth = new URL(url);
    withAuth.username = 'agent';
    withAuth.password = 's3cret';
    const got = await echo(
      `wss://127.0.0.1:${port}/echo`,
      tunnelingAgent(withAuth, true),
      'secret-message',
      ca.certPem,
    );
    expect(got).toBe('secret-message');
    expect(proxy.connects).toEqual([{ target: `127.0.0.1:${port}`, auth: basic }]);
    expect(proxy.relayed.length).toBeGreaterThan(0);
    expect(proxy.relayed.includes('secret-message')).toBe(false);
    expect(proxy.relayed.includes('Upgrade: websocket')).toBe(false);
  });

  it('a refused CONNECT fails the attempt in one line, without the credentials', async () => {
    proxy = new ConnectProxy({ requireAuth: 'Basic other' });
    const url = await proxy.listen();
    stop.push(() => proxy.close());
    const port = await startTarget();
    const withAuth = new URL(url);
    withAuth.username = 'agent';
    withAuth.password = 's3cret';
    const e = await echo(`ws://127.0.0.1:${port}/echo`, tunnelingAgent(withAuth, false), 'x').catch(
      (x: unknown) => x,
    );
    expect((e as Error).message).toBe(
      `the egress proxy http://${url.host} refused CONNECT 127.0.0.1:${port}: 407 Proxy Authentication Required`,
    );
  });

  it('AgentConnection dials through it (httpAgent)', async () => {
    proxy = new ConnectProxy();
    const url = await proxy.listen();
    stop.push(() => proxy.close());
    const port = await startTarget();
    const conn = new AgentConnection({
      url: `ws://127.0.0.1:${port}/v1/tunnel`,
      cluster: 'alpha',
      token: 't'.repeat(32),
      agent: 'pod-1',
      agentVersion: 'test',
      fingerprint: generateHostKey().fingerprint,
      keepaliveMs: 30_000,
      handshakeTimeoutMs: 300,
      httpAgent: tunnelingAgent(url, false),
      targets: {},
    });
    // The target upgrades and says nothing: the SSH handshake times out, after the tunnel was made.
    await expect(conn.established).rejects.toThrow(
      'SSH with the proxy failed: Timed out while waiting for handshake',
    );
    await conn.closed;
    expect(proxy.connects).toEqual([{ target: `127.0.0.1:${port}`, auth: undefined }]);
  });
});
