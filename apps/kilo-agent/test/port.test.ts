/**
 * Strangers on kilo-agent's :1107 (it runs on the host network, so anyone who reaches the node can
 * connect): idle connections, a request head sent byte by byte, an oversized head, a truncated
 * request, and more connections than the cap. The real bundle, in a network namespace, must close
 * each within its deadline, refuse what is over the cap at accept, keep its memory bounded, and
 * still answer /health, /metrics (Kilo's names) and /graph.
 */
import {
  ControlPlane,
  KiloMesh,
  NetLab,
  appBundle,
  bridgeLoopbackPort,
  until,
  type LabProcess,
  type LoopbackBridge,
  type NetHost,
} from '@knet/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

jest.setTimeout(180_000);

const AGENT_IP = '192.0.2.1';
let cp: ControlPlane | undefined;
let lab: NetLab | undefined;
let agentHost: NetHost;
let clientHost: NetHost;
let bridge: LoopbackBridge | undefined;
let agent: LabProcess;
let dir: string;

/** Runs a small node script in the client namespace; returns its JSON result. */
async function inClient<T>(script: string): Promise<T> {
  const r = await clientHost.exec(process.execPath, ['-e', script], { timeoutMs: 120_000 });
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null') as T;
}

const HELPERS = `
const net = require('net');
const ip = '${AGENT_IP}', port = 1107;
function conn(drive) {
  return new Promise((resolve) => {
    const t0 = Date.now(); let data = '';
    const s = net.connect(port, ip, () => drive && drive(s));
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ data, ms: Date.now() - t0 }));
  });
}
async function get(path) {
  const r = await conn((s) => s.write('GET ' + path + ' HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'));
  return r.data;
}
`;

async function rssBytes(): Promise<number> {
  const text = await inClient<string>(
    `${HELPERS}(async () => { const body = await get('/metrics'); console.log(JSON.stringify(body)); })();`,
  );
  // Connection: close → the whole response; pick the gauge out of it.
  const m = /process_resident_memory_bytes (\d+)/.exec(text);
  return Number(m?.[1] ?? NaN);
}

let withoutCrd: { exitCode: number | null; output: string } | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'knet-kilo-port-'));
  cp = await ControlPlane.start();
  lab = await NetLab.create();
  agentHost = await lab.addHost('agent', { privateMounts: true });
  clientHost = await lab.addHost('client');
  await lab.link(agentHost, clientHost, { a: { address: `${AGENT_IP}/30` }, b: { address: '192.0.2.2/30' } });
  bridge = await bridgeLoopbackPort(agentHost, Number(new URL(cp.server).port));
  const args = async () => [
    await appBundle('kilo-agent'),
    // No Node of this name: the agent serves its port and waits, and never plans a datapath.
    '--hostname=not-a-node',
    `--kubeconfig=${cp?.kubeconfigPath}`,
    `--key-file=${join(dir, 'key')}`,
    '--cni=false',
    `--listen=${AGENT_IP}:1107`,
  ];
  // First without the Peer CRD: Kilo refuses to start then, and so does the agent, in one line.
  const refused = agentHost.spawn(process.execPath, await args());
  const { exitCode } = await refused.exited;
  withoutCrd = { exitCode, output: refused.output() };
  await KiloMesh.applyCrds(cp);
  agent = agentHost.spawn(process.execPath, await args());
  await until(
    'kilo-agent answers /health',
    async () =>
      (
        await inClient<string>(`${HELPERS}get('/health').then((d) => console.log(JSON.stringify(d)));`)
      ).includes('200 OK'),
    60_000,
  );
});

afterAll(async () => {
  await agent?.kill('SIGTERM', 10_000);
  await bridge?.close();
  await lab?.dispose();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('refuses to start without the Peer CRD, with one line saying how to install it', () => {
  expect(withoutCrd?.exitCode).toBe(1);
  const lines = (withoutCrd?.output ?? '').trim().split('\n');
  expect(lines.at(-1)).toMatch(
    /the Peer CRD \(peers\.kilo\.squat\.ai\) is not installed in this cluster: install charts\/kilo-agent/,
  );
});

describe("kilo-agent's :1107 against hostile clients", () => {
  it('closes idle and slow clients within the header deadline, answers an oversized head with 431', async () => {
    const r = await inClient<{
      idle: { ms: number };
      slow: { ms: number; data: string };
      big: { data: string };
      cut: { ms: number };
    }>(`${HELPERS}
(async () => {
  const head = 'GET /health HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: ' + 'a'.repeat(400) + '\\r\\n\\r\\n';
  const [idle, slow, big, cut] = await Promise.all([
    conn(() => undefined),
    conn((s) => { let i = 0; const t = setInterval(() => { if (s.destroyed || i >= head.length) return clearInterval(t); s.write(head[i++]); }, 50); }),
    conn((s) => s.write('GET /health HTTP/1.1\\r\\nHost: x\\r\\nX-Big: ' + 'b'.repeat(64 * 1024) + '\\r\\n\\r\\n')),
    conn((s) => s.write('GET /health HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 1000\\r\\n\\r\\npartial')),
  ]);
  console.log(JSON.stringify({ idle, slow, big, cut }));
})();`);
    // Default header deadline 10 s (checked every 2.5 s): cut off well before a minute.
    expect(r.idle.ms).toBeGreaterThanOrEqual(9_000);
    expect(r.idle.ms).toBeLessThan(20_000);
    expect(r.slow.ms).toBeLessThan(20_000);
    expect(r.slow.data).not.toContain('200 OK');
    expect(r.big.data).toMatch(/^HTTP\/1.1 431 /);
    // A truncated body on a GET: answered or closed, never held past the request deadline (30 s).
    expect(r.cut.ms).toBeLessThan(40_000);
  });

  it('refuses connections over the cap at accept, keeps memory bounded, and serves again after', async () => {
    const before = await rssBytes();
    const r = await inClient<{ accepted: number; refused: number; after: string }>(`${HELPERS}
(async () => {
  const socks = []; let refused = 0;
  await Promise.all(Array.from({ length: 400 }, () => new Promise((resolve) => {
    const s = net.connect(port, ip); socks.push(s);
    let closed = false;
    s.on('error', () => undefined);
    s.on('close', () => { closed = true; refused++; resolve(); });
    s.on('connect', () => setTimeout(() => resolve(), 300));
  })));
  const accepted = socks.filter((s) => !s.destroyed).length;
  for (const s of socks) s.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const after = await get('/health');
  console.log(JSON.stringify({ accepted, refused, after }));
})();`);
    expect(r.accepted).toBeLessThanOrEqual(128);
    expect(r.refused).toBeGreaterThanOrEqual(400 - 128);
    expect(r.after).toContain('200 OK');
    const after = await rssBytes();
    // 400 strangers must not cost more than a few MiB.
    expect(after - before).toBeLessThan(32 * 1024 * 1024);
  });

  it("serves /metrics with Kilo's metric names, and /graph says there is no topology yet", async () => {
    const metrics = await inClient<string>(
      `${HELPERS}get('/metrics').then((d) => console.log(JSON.stringify(d)));`,
    );
    expect(metrics).toContain('200 OK');
    for (const name of [
      'kilo_errors_total',
      'kilo_leader',
      'kilo_nodes',
      'kilo_peers',
      'kilo_reconciles_total',
    ]) {
      expect(metrics).toContain(`# TYPE ${name} `);
    }
    const graph = await inClient<string>(
      `${HELPERS}get('/graph').then((d) => console.log(JSON.stringify(d)));`,
    );
    expect(graph).toMatch(/^HTTP\/1.1 503 /);
    await until(
      'the agent says its Node is missing',
      async () => agent.output().includes('the local Node does not exist'),
      30_000,
    );
  });
});
