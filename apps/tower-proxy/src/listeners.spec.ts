import { connect as tcpConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import {
  certificateFingerprintSha256,
  createCertificateAuthority,
  issueCertificate,
  type CertificateAndKey,
  type CertificateAuthority,
} from '@knet/crypto';
import { RecordingLogger, createMetricsRegistry, sleep, type Registry } from '@knet/runtime';
import { freePort, until } from '@knet/testing';
import type { TargetName } from '@knet/tunnel';
import { ClusterListeners, clientCommonName, type ListenerOptions, type ListenerSpec } from './listeners';
import { createProxyMetrics, type ProxyMetrics } from './metrics';
import { SessionRegistry, type AgentSession } from './sessions';

jest.setTimeout(30_000);

const REQUEST = 'GET /version HTTP/1.1\r\nHost: mc-alpha\r\n\r\n';
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

/**
 * An agent session like tunnel-server's: channels are counted while open (openChannels and the
 * `channels` gauge); each channel answers every request with 200. With `hold`, opening waits until
 * `release()`, as a channel open does while the agent dials its target.
 */
class FakeAgent implements AgentSession {
  readonly id = 'session-1';
  readonly agent = 'pod-1';
  readonly remoteAddress = '127.0.0.1';
  readonly connectedAt = new Date();
  readonly binding = 'uid/token';
  readonly targets = new Set<TargetName>(['kubernetes', 'kubesphere']);
  openChannels = 0;
  opened = 0;
  hold = false;
  readonly channels: Duplex[] = [];
  private readonly pending: (() => void)[] = [];

  constructor(
    readonly cluster: string,
    private readonly metrics: ProxyMetrics,
  ) {}

  get waiting(): number {
    return this.pending.length;
  }

  openChannel(target: TargetName): Promise<Duplex> {
    return new Promise((resolve) => {
      const open = () => {
        const labels = { cluster: this.cluster, target };
        const ch = fakeChannel();
        this.opened++;
        this.openChannels++;
        this.metrics.channels.inc(labels);
        ch.once('close', () => {
          this.openChannels--;
          this.metrics.channels.dec(labels);
        });
        this.channels.push(ch);
        resolve(ch);
      };
      if (this.hold) this.pending.push(open);
      else open();
    });
  }

  release(): void {
    for (const open of this.pending.splice(0)) open();
  }

  closedWith: string | undefined;

  close(reason: string): void {
    this.closedWith = reason;
  }
}

/**
 * A channel that behaves like ssh2's server Channel: it answers every request head with 200;
 * destroy() only ends it and sends CHANNEL_CLOSE, the agent's CHANNEL_CLOSE ends its readable side
 * (a tick later here), and `close` follows `end`, which a paused stream never emits.
 */
function fakeChannel(): Duplex {
  let closing = false;
  const ch = new Duplex({
    emitClose: false,
    allowHalfOpen: true,
    read() {
      // bytes from the agent are pushed by the test
    },
    write(chunk: Buffer, _enc, cb) {
      if (chunk.toString().includes('\r\n\r\n')) ch.push(OK);
      cb();
    },
  });
  ch.destroy = () => {
    ch.end();
    if (closing) return ch;
    closing = true;
    setImmediate(() => {
      ch.push(null);
      if (!ch.readable || ch.readableEnded) ch.emit('close');
      else ch.once('end', () => ch.emit('close'));
    });
    return ch;
  };
  return ch;
}

let ca: CertificateAuthority;
let serving: CertificateAndKey;
let client: CertificateAndKey;
let client2: CertificateAndKey;
let otherCluster: CertificateAndKey;

beforeAll(async () => {
  ca = await createCertificateAuthority('knet-tower test CA');
  serving = await issueCertificate(ca, { commonName: 'tower', ipAddresses: ['127.0.0.1'], usage: 'server' });
  client = await issueCertificate(ca, { commonName: clientCommonName('alpha'), usage: 'client' });
  client2 = await issueCertificate(ca, { commonName: clientCommonName('alpha'), usage: 'client' });
  otherCluster = await issueCertificate(ca, { commonName: clientCommonName('beta'), usage: 'client' });
});

interface Bed {
  listeners: ClusterListeners;
  logger: RecordingLogger;
  registry: Registry;
  metrics: ProxyMetrics;
  agent: FakeAgent;
  sessions: SessionRegistry;
  spec: ListenerSpec;
  clients: Socket[];
}

let bed: Bed | undefined;

async function start(
  options: Partial<ListenerOptions> = {},
  extra: Partial<ListenerSpec> = {},
): Promise<Bed> {
  const registry = createMetricsRegistry();
  const metrics = createProxyMetrics(registry);
  const sessions = new SessionRegistry();
  const agent = new FakeAgent('alpha', metrics);
  sessions.add(agent);
  const logger = new RecordingLogger();
  const listeners = new ClusterListeners(sessions, metrics, logger, '127.0.0.1', options);
  const spec: ListenerSpec = {
    cluster: 'alpha',
    kubernetesPort: await freePort(),
    kubespherePort: await freePort(),
    serving,
    caPem: ca.certPem,
    ...extra,
  };
  bed = { listeners, logger, registry, metrics, agent, sessions, spec, clients: [] };
  await listeners.ensure(spec);
  return bed;
}

afterEach(async () => {
  if (!bed) return;
  for (const c of bed.clients) c.destroy();
  await bed.listeners.closeAll();
  for (const ch of bed.agent.channels) ch.destroy();
  bed = undefined;
});

function ks(b: Bed, localAddress?: string): Socket {
  const s = tcpConnect({ port: b.spec.kubespherePort, host: '127.0.0.1', localAddress });
  s.on('error', () => undefined);
  b.clients.push(s);
  return s;
}

function k8s(b: Bed, cert: CertificateAndKey = client): TLSSocket {
  const raw = tcpConnect({ port: b.spec.kubernetesPort, host: '127.0.0.1' });
  raw.on('error', () => undefined);
  const s = tlsConnect({
    socket: raw,
    host: '127.0.0.1',
    ca: ca.certPem,
    cert: cert.certPem,
    key: cert.keyPem,
  });
  s.on('error', () => undefined);
  b.clients.push(s);
  Object.assign(s, { raw });
  return s;
}

/** Sends a request and resolves with the first bytes of the answer ('' when the connection closes first). */
function exchange(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.once('close', () => resolve(''));
    s.write(REQUEST);
  });
}

function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
}

async function sample(b: Bed, name: string, labels: Record<string, string>): Promise<number> {
  const m = await b.registry.getSingleMetric(name)?.get();
  const v = m?.values.find((x) => Object.entries(labels).every(([k, want]) => x.labels[k] === want));
  return v?.value ?? 0;
}

const refusals = (b: Bed, reason: string) =>
  sample(b, 'tower_proxy_listener_refusals_total', { cluster: 'alpha', reason });

const openGauge = async (b: Bed) =>
  (await sample(b, 'tower_proxy_channels', { cluster: 'alpha', target: 'kubesphere' })) +
  (await sample(b, 'tower_proxy_channels', { cluster: 'alpha', target: 'kubernetes' }));

describe('ClusterListeners: channels', () => {
  it('closes a channel that opens after its client reset (no leak), on both listeners', async () => {
    const b = await start();
    b.agent.hold = true;
    const plain: Socket[] = [];
    const tls: Socket[] = [];
    for (let i = 0; i < 40; i++) plain.push(ks(b));
    for (let i = 0; i < 10; i++) tls.push(k8s(b));
    const clients = [...plain, ...tls];
    for (const c of clients) c.write(REQUEST);
    await until('every channel is opening', () => b.agent.waiting === clients.length);
    for (const c of plain) c.resetAndDestroy();
    for (const c of tls) (c as unknown as { raw: Socket }).raw.resetAndDestroy();
    await Promise.all(clients.map(closed));
    await sleep(300); // the listener sees the resets
    b.agent.release();
    expect(b.agent.opened).toBe(50);
    await until(
      () => `channels closed (${b.agent.openChannels} open)`,
      async () => b.agent.openChannels === 0 && (await openGauge(b)) === 0,
    );
    // and the listener still serves
    b.agent.hold = false;
    expect(await exchange(ks(b))).toBe(OK);
  });

  it('leaves no channel open after clients that close once answered (kubectl exits)', async () => {
    const b = await start();
    const clients = [...Array.from({ length: 10 }, () => ks(b)), ...Array.from({ length: 10 }, () => k8s(b))];
    for (const c of clients) expect(await exchange(c)).toBe(OK);
    expect(b.agent.openChannels).toBe(20);
    for (const c of clients) c.end();
    await until(
      () => `channels closed (${b.agent.openChannels} open)`,
      async () => b.agent.openChannels === 0 && (await openGauge(b)) === 0,
    );
  });

  it('opens no channel for a client that leaves before its first byte (a TCP health check)', async () => {
    const b = await start({ maxConnections: 5 });
    for (let i = 0; i < 30; i++) {
      const c = i % 2 ? ks(b) : tcpConnect({ port: b.spec.kubernetesPort, host: '127.0.0.1' });
      c.on('error', () => undefined);
      await new Promise((r) => c.once('connect', r));
      c.resetAndDestroy();
      await closed(c);
    }
    // The slots are free again (5 < 30) and no channel was opened for the probes.
    expect(await until('a request answered', async () => (await exchange(ks(b))) === OK)).toBe(true);
    expect(await exchange(k8s(b))).toBe(OK);
    expect(b.agent.opened).toBe(2);
  });
});

describe('ClusterListeners: limits', () => {
  it('caps the connections of each listener', async () => {
    const b = await start({ maxConnections: 2 });
    const [a, c] = [ks(b), ks(b)];
    expect(await exchange(a)).toBe(OK);
    expect(await exchange(c)).toBe(OK);
    const third = ks(b);
    expect(await exchange(third)).toBe('');
    expect(await refusals(b, 'too-many-connections')).toBe(1);

    const [t1, t2] = [k8s(b), k8s(b)];
    expect(await exchange(t1)).toBe(OK);
    expect(await exchange(t2)).toBe(OK);
    expect(await exchange(k8s(b))).toBe('');
    expect(await refusals(b, 'too-many-connections')).toBe(2);

    a.destroy();
    t1.destroy();
    await until('a kubesphere slot is free again', async () => (await exchange(ks(b))) === OK);
    await until('a kubernetes slot is free again', async () => (await exchange(k8s(b))) === OK);
  });

  it('closes the oldest pending connection, not a new one, when a listener is full', async () => {
    const b = await start({ maxConnections: 2 });
    // Strangers hold every slot: connected, silent (no first byte, no TLS handshake).
    const idle = [ks(b), ks(b)];
    const idleTls = [0, 1].map(() => {
      const s = tcpConnect({ port: b.spec.kubernetesPort, host: '127.0.0.1' });
      s.on('error', () => undefined);
      b.clients.push(s);
      return s;
    });
    await Promise.all([...idle, ...idleTls].map((s) => new Promise((r) => s.once('connect', r))));
    await sleep(100);
    expect(await exchange(ks(b))).toBe(OK);
    expect(await exchange(k8s(b))).toBe(OK);
    await Promise.all([closed(idle[0]!), closed(idleTls[0]!)]);
    expect([idle[1]!.destroyed, idleTls[1]!.destroyed]).toEqual([false, false]);
    expect(await refusals(b, 'shed-total')).toBe(2);
  });

  it('gives a silent client the handshake timeout to send its first bytes', async () => {
    const b = await start({ handshakeTimeoutMs: 500 });
    const silent = ks(b);
    await until('the silent client is cut', () => silent.destroyed, 5000);
    expect(await refusals(b, 'request-timeout')).toBe(1);
    expect(b.agent.opened).toBe(0);
  });

  it('caps the connections of one source address', async () => {
    const b = await start({ maxConnectionsPerSource: 1 });
    expect(await exchange(ks(b, '127.0.0.1'))).toBe(OK);
    expect(await exchange(ks(b, '127.0.0.1'))).toBe('');
    expect(await refusals(b, 'too-many-from-source')).toBe(1);
    expect(await exchange(ks(b, '127.0.0.2'))).toBe(OK);
    // a pending (silent) connection of a full source is closed for a new one of that source
    const silent = ks(b, '127.0.0.3');
    await new Promise((r) => silent.once('connect', r));
    await sleep(100);
    expect(await exchange(ks(b, '127.0.0.3'))).toBe(OK);
    await closed(silent);
    expect(await refusals(b, 'shed-source')).toBe(1);
  });

  it('closes connections idle both ways, not those with bytes in either direction', async () => {
    const b = await start({ idleTimeoutMs: 1000 });
    const quiet = ks(b);
    const quietTls = k8s(b);
    const talking = ks(b);
    const listening = ks(b);
    const listeningTls = k8s(b);
    for (const s of [quiet, quietTls, talking, listening, listeningTls]) expect(await exchange(s)).toBe(OK);
    // channels 2 and 3 (talking, listening) and 4 (listeningTls), in the order of the exchanges
    const [, , , chListening, chListeningTls] = b.agent.channels;
    const ticks = setInterval(() => {
      talking.write('x');
      chListening?.push('y');
      chListeningTls?.push('z');
    }, 200);
    try {
      await Promise.all([closed(quiet), closed(quietTls)]);
      await sleep(1500);
      expect([talking.destroyed, listening.destroyed, listeningTls.destroyed]).toEqual([false, false, false]);
    } finally {
      clearInterval(ticks);
    }
    expect(await refusals(b, 'idle-timeout')).toBe(2);
  });

  it('bounds the TLS handshake of the kubernetes listener', async () => {
    const b = await start({ handshakeTimeoutMs: 500 });
    const silent = tcpConnect({ port: b.spec.kubernetesPort, host: '127.0.0.1' });
    silent.on('error', () => undefined);
    b.clients.push(silent);
    await until('the silent client is cut', () => silent.destroyed, 5000);
    expect(await refusals(b, 'tls-timeout')).toBe(1);
  });
});

describe('ClusterListeners: client certificates', () => {
  const fp = (c: CertificateAndKey) => certificateFingerprintSha256(c.certPem);

  it('accepts only the listed certificates, and updates the list in place', async () => {
    const b = await start({}, { clientCertificates: [fp(client)] });
    const old = k8s(b, client);
    expect(await exchange(old)).toBe(OK);
    const refused = await exchange(k8s(b, client2));
    expect(refused).toMatch(/^HTTP\/1\.1 403 /);
    expect(refused).toContain('"reason":"Forbidden"');
    expect(refused).toContain('no longer valid for cluster alpha');
    expect(await refusals(b, 'revoked-certificate')).toBe(1);

    // Renewed: the new certificate is listed, the old one no longer; the same listener, the old
    // connection is cut.
    await b.listeners.ensure({ ...b.spec, clientCertificates: [fp(client2).toLowerCase()] });
    await closed(old);
    expect(await exchange(k8s(b, client2))).toBe(OK);
    expect(await exchange(k8s(b, client))).toMatch(/^HTTP\/1\.1 403 /);
    expect(await refusals(b, 'revoked-certificate')).toBe(3); // the cut one and the refused one
  });

  it('requires both the CN and the fingerprint', async () => {
    const b = await start({}, { clientCertificates: [fp(client), fp(otherCluster)] });
    expect(await exchange(k8s(b, otherCluster))).toMatch(/^HTTP\/1\.1 403 /);
    expect(await refusals(b, 'wrong-cluster')).toBe(1);
    expect(await exchange(k8s(b, client))).toBe(OK);
  });

  it('checks the CN only while the spec lists no certificates', async () => {
    const b = await start();
    const open = k8s(b, client);
    expect(await exchange(open)).toBe(OK);
    expect(await exchange(k8s(b, client2))).toBe(OK);
    expect(await exchange(k8s(b, otherCluster))).toMatch(/^HTTP\/1\.1 403 /);
    await b.listeners.ensure({ ...b.spec, clientCertificates: [fp(client)] });
    await sleep(100);
    expect(open.destroyed).toBe(false);
    expect(await exchange(open)).toBe(OK);
  });
});

describe('ClusterListeners: log', () => {
  it('counts every refusal but warns once a minute per reason (a flood does not flood the log)', async () => {
    const b = await start();
    for (let i = 0; i < 5; i++) expect(await exchange(k8s(b, otherCluster))).toMatch(/^HTTP\/1\.1 403 /);
    for (let i = 0; i < 5; i++) {
      const anonymous = tlsConnect({ port: b.spec.kubernetesPort, host: '127.0.0.1', ca: ca.certPem });
      anonymous.on('error', () => undefined);
      b.clients.push(anonymous);
      await closed(anonymous);
    }
    await until('the TLS refusals are counted', async () => (await refusals(b, 'tls')) === 5);
    expect(await refusals(b, 'wrong-cluster')).toBe(5);
    expect(b.logger.messages('warn')).toEqual([
      'client certificate is for another cluster; refused',
      'TLS handshake refused',
    ]);
  });
});

describe('ClusterListeners: metrics', () => {
  it('drops the series of a removed cluster', async () => {
    const b = await start();
    expect(await exchange(ks(b))).toBe(OK);
    b.sessions.remove(b.agent);
    expect(await exchange(ks(b))).toMatch(/^HTTP\/1\.1 503 /);
    const series = async () =>
      (await b.registry.metrics()).split('\n').filter((l) => l.includes('cluster="alpha"'));
    expect((await series()).filter((l) => /listener_refusals|bytes_total/.test(l))).toHaveLength(3);
    await b.listeners.remove('alpha');
    await sleep(100);
    expect((await series()).filter((l) => /listener_refusals|bytes_total/.test(l))).toEqual([]);
  });
});
