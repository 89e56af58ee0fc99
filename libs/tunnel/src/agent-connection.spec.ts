import { createHook } from 'node:async_hooks';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server as SshServer } from 'ssh2';
import { WebSocketServer, type WebSocket } from 'ws';
import { AgentConnection, FingerprintMismatchError, RefusedError } from './agent-connection';
import { generateHostKey } from './hostkey';
import { SUBPROTOCOL, TUNNEL_PATH } from './protocol';
import { SSH_ALGORITHMS } from './ssh';
import { webSocketDuplex } from './ws';

/**
 * A loopback stand-in for a proxy that goes away at some step of the handshake: it upgrades
 * `/v1/tunnel` with the tower subprotocol and hands each WebSocket to `onTunnel`. Everything it
 * accepted is torn down in `close()`.
 */
class StubProxy {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  readonly wss = new WebSocketServer({ noServer: true, handleProtocols: () => SUBPROTOCOL });
  upgrades = 0;

  constructor(onTunnel: (ws: WebSocket) => void, o: { answerUpgrade?: boolean } = {}) {
    this.server = createServer((_req, res) => res.writeHead(404).end());
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.server.on('upgrade', (req, socket, head) => {
      this.upgrades++;
      if (o.answerUpgrade === false) return; // holds the request: never answers
      this.wss.handleUpgrade(req, socket, head, onTunnel);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}${TUNNEL_PATH}`;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

const hostKey = generateHostKey('stub');

function connect(url: string, extra: Partial<ConstructorParameters<typeof AgentConnection>[0]> = {}) {
  return new AgentConnection({
    url,
    cluster: 'alpha',
    token: 't'.repeat(64),
    agent: 'pod-1',
    agentVersion: 'test',
    fingerprint: [hostKey.fingerprint],
    keepaliveMs: 30_000,
    targets: {},
    ...extra,
  });
}

/** Settles with how `established` ended and how long it took. */
async function outcome(conn: AgentConnection): Promise<{ error: string; ms: number }> {
  const t = performance.now();
  const error = await conn.established.then(
    () => 'established',
    (e: unknown) => (e instanceof Error ? e.message : String(e)),
  );
  return { error, ms: performance.now() - t };
}

/** Unencrypted SSH packets (before NEWKEYS) after the ident line: the message types, as they come. */
function messageTypes(onType: (type: number) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  let identDone = false;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (!identDone) {
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      buf = buf.subarray(eol + 2);
      identDone = true;
    }
    while (buf.length >= 6) {
      const len = buf.readUInt32BE(0);
      if (buf.length < 4 + len) return;
      onType(buf[5] as number);
      buf = buf.subarray(4 + len);
    }
  };
}

/**
 * Tracks the timers and TCP sockets created from now on (what --detectOpenHandles would report);
 * `leftOver()` waits (up to 2 s) until all of them are gone, and names those that are not.
 */
function trackResources(): { leftOver(): Promise<string[]> } {
  const alive = new Map<number, string>();
  let tracking = true;
  const hook = createHook({
    init: (id, type) => void (tracking && (type === 'Timeout' || type === 'TCPWRAP') && alive.set(id, type)),
    destroy: (id) => void alive.delete(id),
  }).enable();
  return {
    async leftOver() {
      tracking = false; // (not the timers of this wait)
      for (let i = 0; i < 100 && alive.size > 0; i++) await new Promise((r) => setImmediate(r));
      for (let i = 0; i < 100 && alive.size > 0; i++) await new Promise((r) => setTimeout(r, 20).unref());
      hook.disable();
      return [...alive.values()];
    },
  };
}

/** An SSH server (the stub's host key) that accepts the agent and refuses its hello as bad-token. */
function refusingSshServer(): SshServer {
  const ssh = new SshServer({ hostKeys: [hostKey.privateKey], algorithms: SSH_ALGORITHMS as never });
  ssh.on('connection', (c) => {
    c.on('error', () => undefined);
    c.on('authentication', (ctx) => ctx.accept());
    c.on('session', (accept) =>
      accept().once('exec', (acceptExec) => {
        const ch = acceptExec();
        ch.end('{"ok":false,"reason":"bad-token","message":"wrong token"}\n');
        ch.exit(1);
        ch.close();
      }),
    );
  });
  return ssh;
}

const KEXINIT = 20;
const KEX_ECDH_INIT = 30;

describe('AgentConnection when the proxy goes away during the handshake', () => {
  let proxy: StubProxy | undefined;
  let conn: AgentConnection | undefined;
  afterEach(async () => {
    conn?.close();
    await conn?.closed;
    await proxy?.close();
    proxy = conn = undefined;
  });

  it.each([
    ['closes the WebSocket cleanly after its ident', (ws: WebSocket) => ws.close(1001, 'going away')],
    ['drops the TCP connection after its ident', (ws: WebSocket) => ws.terminate()],
  ])('rejects at once when the proxy %s', async (_what, hangUp) => {
    proxy = new StubProxy((ws) => {
      ws.send(Buffer.from('SSH-2.0-x\r\n'));
      setTimeout(() => hangUp(ws), 20);
    });
    const url = await proxy.listen();
    const resources = trackResources();
    conn = connect(url);
    const r = await outcome(conn);
    expect(r.error).toBe('connection to the proxy closed');
    // ssh2's readyTimeout (30 s) is not what ended it.
    expect(r.ms).toBeLessThan(10_000);
    await expect(conn.closed).resolves.toBeInstanceOf(Error);
    // No timer (ssh2's readyTimeout, keepalive, the hello timer) and no socket is left behind.
    expect(await resources.leftOver()).toEqual([]);
  });

  it('rejects at once when the proxy closes in the middle of the key exchange', async () => {
    const seen: number[] = [];
    proxy = new StubProxy((ws) => {
      const stream = webSocketDuplex(ws);
      // A real SSH server that is cut off once the agent sent its half of the key exchange,
      // before the server answers it (a slow key exchange meeting a rollout).
      stream.on(
        'data',
        messageTypes((t) => {
          seen.push(t);
          if (t === KEX_ECDH_INIT) ws.terminate();
        }),
      );
      ssh.injectSocket(stream as never);
    });
    const ssh = new SshServer({ hostKeys: [hostKey.privateKey], algorithms: SSH_ALGORITHMS as never });
    ssh.on('connection', (c) => c.on('error', () => undefined));
    const url = await proxy.listen();
    const resources = trackResources();
    conn = connect(url);
    const r = await outcome(conn);
    expect(seen).toEqual([KEXINIT, KEX_ECDH_INIT]);
    expect(r.error).toBe('connection to the proxy closed');
    expect(r.ms).toBeLessThan(10_000);
    expect(await resources.leftOver()).toEqual([]);
  });

  it('gives up on a proxy that upgrades and then never speaks SSH, after the handshake timeout', async () => {
    let tunnel: Duplex | undefined;
    proxy = new StubProxy((ws) => void (tunnel = webSocketDuplex(ws)));
    conn = connect(await proxy.listen(), { handshakeTimeoutMs: 300 });
    const r = await outcome(conn);
    expect(tunnel).toBeDefined();
    expect(r.error).toBe('SSH with the proxy failed: Timed out while waiting for handshake');
  });

  it('gives up on a proxy that never answers the WebSocket upgrade, after the handshake timeout', async () => {
    proxy = new StubProxy(() => undefined, { answerUpgrade: false });
    conn = connect(await proxy.listen(), { handshakeTimeoutMs: 300 });
    const r = await outcome(conn);
    expect(proxy.upgrades).toBe(1);
    expect(r.error).toMatch(
      /^cannot reach the proxy at ws:\/\/127\.0\.0\.1:\d+\/v1\/tunnel: Opening handshake has timed out$/,
    );
  });

  it('accepts a host key that has any of the pinned fingerprints (key rotation)', async () => {
    const ssh = refusingSshServer();
    proxy = new StubProxy((ws) => ssh.injectSocket(webSocketDuplex(ws) as never));
    conn = connect(await proxy.listen(), {
      fingerprint: [generateHostKey().fingerprint, hostKey.fingerprint],
    });
    // Past the host key check: the proxy got the hello, and refused its token.
    const e = await conn.established.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RefusedError);
    expect((e as RefusedError).reason).toBe('bad-token');
  });

  it('names every pinned fingerprint when the host key is none of them', async () => {
    proxy = new StubProxy((ws) => ssh.injectSocket(webSocketDuplex(ws) as never));
    const ssh = new SshServer({ hostKeys: [hostKey.privateKey], algorithms: SSH_ALGORITHMS as never });
    ssh.on('connection', (c) => c.on('error', () => undefined));
    const [a, b] = [generateHostKey().fingerprint, generateHostKey().fingerprint];
    conn = connect(await proxy.listen(), { fingerprint: [a, b] });
    const e = await conn.established.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FingerprintMismatchError);
    expect((e as Error).message).toContain(
      `the proxy's SSH host key is ${hostKey.fingerprint}, not one of the pinned --fingerprint ${a}, ${b}`,
    );
  });
});
