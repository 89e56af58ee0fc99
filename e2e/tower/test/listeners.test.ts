import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { sleep } from '@knet/runtime';
import { until } from '@knet/testing';
import { getCluster, towerBed, writeKubeconfig } from './harness';

const bed = towerBed({ testTimeout: 180_000 });
const CLUSTER = 'listeners';

/** The sum of a proxy metric's series whose labels include `labels`. */
async function proxySum(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${bed.proxy.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

interface Credentials {
  host: string;
  port: number;
  ca: string;
  cert: string;
  key: string;
}

function credentials(kubeconfig: string): Credentials {
  const field = (name: string) => {
    const v = new RegExp(`${name}: "?([^"\\s]+)"?`).exec(kubeconfig)?.[1];
    if (!v) throw new Error(`kubeconfig has no ${name}`);
    return v;
  };
  const server = new URL(field('server'));
  const b64 = (name: string) => Buffer.from(field(name), 'base64').toString();
  return {
    host: server.hostname,
    port: Number(server.port),
    ca: b64('certificate-authority-data'),
    cert: b64('client-certificate-data'),
    key: b64('client-key-data'),
  };
}

/** Sends a request head over TLS, then resets the connection `afterMs` later (while the channel opens). */
function requestAndReset(c: Credentials, afterMs: number): Promise<void> {
  return new Promise((resolve) => {
    const raw = netConnect({ host: c.host, port: c.port });
    raw.on('error', () => undefined);
    raw.once('close', () => resolve());
    const s = tlsConnect(
      { socket: raw, servername: 'kubernetes', ca: c.ca, cert: c.cert, key: c.key },
      () => {
        s.write('GET /api/v1/namespaces?watch=true HTTP/1.1\r\nHost: kubernetes\r\n\r\n');
        setTimeout(() => raw.resetAndDestroy(), afterMs);
      },
    );
    s.on('error', () => undefined);
  });
}

/** Connects and closes at once, as a load balancer's TCP health check does. */
function probe(host: string, port: number): Promise<void> {
  return new Promise((resolve) => {
    const s: Socket = netConnect({ host, port }, () => s.destroy());
    s.on('error', () => undefined);
    s.once('close', () => resolve());
  });
}

describe('cluster listeners', () => {
  let creds: Credentials;
  let kubeconfig: string;

  beforeAll(async () => {
    const c = await bed.readyCluster(CLUSTER);
    const agent = bed.startAgent({ cluster: CLUSTER, token: c.spec!.connection!.token!, id: 'listeners' });
    await bed.untilAgentAvailable(CLUSTER, agent);
    kubeconfig = writeKubeconfig(c, bed.host.dir);
    creds = credentials(Buffer.from(c.spec!.connection!.kubeconfig!, 'base64').toString());
  });

  it('clients that reset while their channel opens leave no channel open', async () => {
    const labels = `cluster="${CLUSTER}"`;
    // A watch through the tunnel: its channel stays open, so the count below is not trivially 0.
    const watch = tlsConnect({ servername: 'kubernetes', ...creds }, () =>
      watch.write('GET /api/v1/namespaces?watch=true HTTP/1.1\r\nHost: kubernetes\r\n\r\n'),
    );
    watch.on('error', () => undefined);
    try {
      await until(
        'the watch channel is open',
        async () => (await proxySum('tower_proxy_channels', labels)) >= 1,
      );
      const before = await proxySum('tower_proxy_channels_total', labels);
      for (let round = 0; round < 4; round++)
        await Promise.all(Array.from({ length: 50 }, (_, i) => requestAndReset(creds, i % 10)));
      // Channels were opened for them (most requests reached the proxy before their reset)…
      expect(await proxySum('tower_proxy_channels_total', labels)).toBeGreaterThan(before + 100);
      await sleep(1000);
      expect(await proxySum('tower_proxy_channels', labels)).toBe(1); // the watch's only
    } finally {
      watch.destroy();
    }
    let open = -1;
    await until(
      () => `no channel open (open: ${open})`,
      async () => (open = await proxySum('tower_proxy_channels', labels)) === 0,
      20_000,
    );
    expect(await bed.host.kubectlOk(['get', 'namespace', 'default', '-o', 'name'], { kubeconfig })).toBe(
      'namespace/default',
    );
  });

  it('TCP health checks on both listeners open no channel', async () => {
    const c = await getCluster(bed.host, CLUSTER);
    const labels = `cluster="${CLUSTER}"`;
    const before = await proxySum('tower_proxy_channels_total', labels);
    const ports = [
      c.spec!.connection!.kubernetesAPIServerPort!,
      c.spec!.connection!.kubesphereAPIServerPort!,
    ];
    for (let i = 0; i < 100; i++) await probe(creds.host, ports[i % 2]!);
    await sleep(500);
    expect(await proxySum('tower_proxy_channels_total', labels)).toBe(before);
  });
});
