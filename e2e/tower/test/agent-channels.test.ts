import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { until, type ManagedProcess } from '@knet/testing';
import { towerBed } from './harness';

const bed = towerBed({ testTimeout: 120_000 });
const CLUSTER = 'agent-channels';
const N = 50;

/** A ks-apiserver stand-in that answers each connection and closes it first. */
let target: Server;
let agent: ManagedProcess;
let ksPort: number;
const targetSockets = new Set<Socket>();

/** The sum of a metric's series, read from `/metrics` at `url`, whose labels include `labels`. */
async function metricSum(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/** Where the agent serves /metrics (it logs its port). */
function agentUrl(): string {
  const port = /"port":(\d+).*observability server listening/.exec(readFileSync(agent.logFile, 'utf8'))?.[1];
  if (!port) throw new Error(`the agent has not logged its metrics port; log:\n${agent.tail(20)}`);
  return `http://127.0.0.1:${port}`;
}

/** One request through the cluster's kubesphere listener; resolves with what came back once closed. */
function request(): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port: ksPort }, () =>
      s.write('GET /kapis/version HTTP/1.1\r\nHost: ks\r\n\r\n'),
    );
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString()));
    s.once('close', () => resolve(answer));
    s.once('error', reject);
  });
}

beforeAll(async () => {
  target = createServer((s) => {
    targetSockets.add(s);
    s.once('close', () => targetSockets.delete(s));
    s.on('error', () => undefined);
    s.resume(); // (a socket that is not read never sees the agent's FIN, and never closes)
    s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const c = await bed.readyCluster(CLUSTER);
  ksPort = c.spec!.connection!.kubesphereAPIServerPort!;
  agent = bed.startAgent({
    cluster: CLUSTER,
    token: c.spec!.connection!.token!,
    id: 'channels',
    extra: [`--kubesphere-service=127.0.0.1:${(target.address() as AddressInfo).port}`],
  });
  await bed.untilAgentAvailable(CLUSTER, agent);
});

afterAll(async () => {
  for (const s of targetSockets) s.destroy();
  await new Promise((r) => (target ? target.close(r) : r(undefined)));
});

describe('the agent counts the channels it serves', () => {
  it('a kubesphere target that closes first leaves no channel counted open', async () => {
    const labels = 'target="kubesphere"';
    const url = await until(`the agent's metrics; agent log:\n${agent.tail(20)}`, () => agentUrl());
    const before = await metricSum(url, 'tower_agent_channels_total', labels);
    for (let round = 0; round < N / 10; round++) {
      const answers = await Promise.all(Array.from({ length: 10 }, () => request()));
      for (const a of answers) expect(a).toMatch(/^HTTP\/1.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
    }
    expect(await metricSum(url, 'tower_agent_channels_total', labels)).toBe(before + N);
    // Each channel is closed on both sides: the agent's count and the proxy's return to 0.
    let open = { agent: -1, proxy: -1 };
    await until(
      () =>
        `no kubesphere channel counted open (open: ${JSON.stringify(open)}, target connections: ${targetSockets.size})`,
      async () => {
        open = {
          agent: await metricSum(url, 'tower_agent_channels', labels),
          proxy: await metricSum(bed.proxy.url, 'tower_proxy_channels', `cluster="${CLUSTER}",${labels}`),
        };
        return open.agent === 0 && open.proxy === 0 && targetSockets.size === 0;
      },
      10_000,
    );
  });
});
