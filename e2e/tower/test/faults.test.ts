import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { createInterface } from 'node:readline';
import { Client } from 'ssh2';
import WebSocket, { createWebSocketStream } from 'ws';
import { until, type ManagedProcess } from '@knet/testing';
import { SUBPROTOCOL, TUNNEL_PATH, encodeHello } from '@knet/tunnel';
import { condition, getCluster, refreshToken, towerBed, writeKubeconfig } from './harness';

const bed = towerBed({ testTimeout: 180_000 });
let token: string;
let kubeconfig: string;

const proxySessions = async () =>
  Number(
    /^tower_proxy_agent_sessions\{cluster="faulty"\} (\d+)/m.exec(
      await (await fetch(`${bed.proxy.url}/metrics`)).text(),
    )?.[1] ?? 0,
  );
const available = async () => condition(await getCluster(bed.host, 'faulty'), 'AgentAvailable');
const kubectlWorks = async () =>
  (await bed.host.kubectl(['get', '--raw', '/api/v1/namespaces/default'], { kubeconfig })).exitCode === 0;
const startAgent = (extra: string[] = [], id = 'a1') =>
  bed.startAgent({ cluster: 'faulty', token, id, extra });

beforeAll(async () => {
  const c = await bed.readyCluster('faulty');
  token = c.spec!.connection!.token!;
  kubeconfig = writeKubeconfig(c, bed.host.dir);
});

describe('faults', () => {
  it('kill -9 of the agent mid-watch: AgentAvailable turns False; a new agent brings it back and kubectl works', async () => {
    const agent = startAgent();
    await until(
      () => `the agent to connect; agent log:\n${agent.tail(20)}`,
      async () => (await available()) === 'True',
      30_000,
    );

    const w = spawn(
      bed.host.bin.kubectl,
      [`--kubeconfig=${kubeconfig}`, 'get', 'namespaces', '--watch', '-o', 'name'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: string[] = [];
    createInterface({ input: w.stdout! }).on('line', (l) => lines.push(l));
    const watchEnded = new Promise<number | null>((r) => w.once('exit', (code) => r(code)));
    await until(
      () => 'the watch to start',
      async () => lines.includes('namespace/default'),
      20_000,
    );

    await agent.kill();
    // The proxy's keepalive is 2 s: the dead agent is noticed within 2x that, then the condition is written.
    await until(
      () => `AgentAvailable to turn False; proxy log:\n${bed.proxy.proc.tail(20)}`,
      async () => (await available()) === 'False',
      15_000,
    );
    w.kill(); // kubectl may keep retrying the watch; it must not hang the test
    await watchEnded;
    expect(await kubectlWorks()).toBe(false);

    const again = startAgent([], 'a2');
    await until(
      () => `the new agent to connect; agent log:\n${again.tail(20)}`,
      async () => (await available()) === 'True',
      30_000,
    );
    expect(await kubectlWorks()).toBe(true);
  });

  it('a frozen agent (SIGSTOP: its TCP connection stays open) is dropped within 2x the keepalive', async () => {
    const agent = bed.procs.find((p) => p.name === 'tower-agent-a2')!;
    const stoppedAt = Date.now();
    process.kill(agent.pid, 'SIGSTOP');
    try {
      await until(
        () => `the frozen agent to be dropped; proxy log:\n${bed.proxy.proc.tail(8)}`,
        async () => (await available()) === 'False',
        15_000,
      );
      // keepalive 2 s: dropped after at most 4 s, plus the condition write
      expect(Date.now() - stoppedAt).toBeLessThan(4000 + 2000);
    } finally {
      process.kill(agent.pid, 'SIGCONT');
    }
    // thawed, it notices its connection is gone and reconnects
    await until(
      () => `the agent to reconnect; agent log:\n${agent.tail(10)}`,
      async () => (await available()) === 'True',
      30_000,
    );
  });

  it('a rotated service-account token is used without reconnecting', async () => {
    const sessions = () =>
      (readFileSync(bed.procs.at(-1)!.logFile, 'utf8').match(/connected to the proxy/g) ?? []).length;
    const before = sessions();
    // The old token is bound to a Secret; deleting the Secret revokes it, so only a re-read token works.
    await bed.member.kubectlOk(['create', 'secret', 'generic', 'bind-old', '-n', 'kubesphere-system']);
    const old = (
      await bed.member.kubectlOk([
        'create',
        'token',
        'tower-agent',
        '-n',
        'kubesphere-system',
        '--bound-object-kind=Secret',
        '--bound-object-name=bind-old',
      ])
    ).trim();
    writeFileSync(`${bed.saDir}/token`, old);
    expect(await kubectlWorks()).toBe(true);
    await refreshToken(bed.member, bed.saDir);
    await bed.member.kubectlOk(['delete', 'secret', 'bind-old', '-n', 'kubesphere-system']);
    // The old token is really dead (the API server caches token reviews for a few seconds).
    await until(
      () => 'the old token to stop working',
      async () =>
        (
          await bed.member.kubectl([
            'get',
            '--raw',
            '/api',
            `--token=${old}`,
            '--kubeconfig=/dev/null',
            `--server=${bed.member.server}`,
            '--insecure-skip-tls-verify',
          ])
        ).exitCode !== 0,
      30_000,
    );
    expect(await kubectlWorks()).toBe(true);
    expect(sessions()).toBe(before);
  });

  it('two agents share the load, and one failing leaves the other serving', async () => {
    // (a long backoff cap, for the SIGHUP test below)
    const second = startAgent(['--max-retry-interval=30s'], 'a3');
    const metric = async (p: ManagedProcess) => {
      const port = /"port":(\d+).*observability server listening/.exec(readFileSync(p.logFile, 'utf8'))?.[1];
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(/^tower_agent_channels_total\{target="kubernetes"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const first = bed.procs.find((p) => p.name === 'tower-agent-a2')!;
    await until(
      () => 'the second agent to register',
      async () =>
        (await fetch(`${bed.proxy.url}/metrics`).then((r) => r.text())).includes(
          'tower_proxy_agent_sessions{cluster="faulty"} 2',
        ),
      20_000,
    );
    const [f0, s0] = [await metric(first), await metric(second)];
    await Promise.all(Array.from({ length: 12 }, () => kubectlWorks()));
    const [f1, s1] = [await metric(first), await metric(second)];
    expect(f1 - f0).toBeGreaterThan(0);
    expect(s1 - s0).toBeGreaterThan(0);

    await first.kill();
    for (let i = 0; i < 5; i++) expect(await kubectlWorks()).toBe(true);
    expect(await available()).toBe('True');
  });

  it('a restarted proxy gets its agents back; SIGHUP skips the backoff', async () => {
    const agent = bed.procs.find((p) => p.name === 'tower-agent-a3')!;
    await bed.proxy.proc.stop();
    // Let the agent's backoff grow past 4 s.
    await until(
      () => `the backoff to grow past 4 s; agent log:\n${agent.tail(10)}`,
      async () =>
        [...readFileSync(agent.logFile, 'utf8').matchAll(/"retryInMs":(\d+)/g)].some(
          (m) => Number(m[1]) >= 4000,
        ),
      60_000,
    );
    await bed.restartProxy();
    const hupAt = Date.now();
    process.kill(agent.pid, 'SIGHUP');
    // (the condition may still say True from before the restart: ask the new proxy itself)
    await until(
      () => `the agent to come back; agent log:\n${agent.tail(20)}`,
      async () => (await proxySessions()) === 1,
      20_000,
    );
    expect(Date.now() - hupAt).toBeLessThan(4000);
    await until(
      () => 'AgentAvailable=True',
      async () => (await available()) === 'True',
      20_000,
    );
    expect(await kubectlWorks()).toBe(true); // the kubeconfig written before the restart still works
  });

  it('a frozen proxy (SIGSTOP) is noticed by the agent within 2x its keepalive, and it reconnects once thawed', async () => {
    const agent = bed.procs.find((p) => p.name === 'tower-agent-a3')!;
    const lost = () =>
      (readFileSync(agent.logFile, 'utf8').match(/connection to the proxy lost/g) ?? []).length;
    const connected = () =>
      (readFileSync(agent.logFile, 'utf8').match(/connected to the proxy/g) ?? []).length;
    const before = lost();
    const connectedBefore = connected();
    const stoppedAt = Date.now();
    process.kill(bed.proxy.proc.pid, 'SIGSTOP');
    try {
      await until(
        () => `the agent to notice; agent log:\n${agent.tail(10)}`,
        async () => lost() > before,
        15_000,
      );
      expect(Date.now() - stoppedAt).toBeLessThan(2 * 1000 + 1500); // agent keepalive 1 s
    } finally {
      process.kill(bed.proxy.proc.pid, 'SIGCONT');
    }
    process.kill(agent.pid, 'SIGHUP');
    await until(
      () => `the agent to reconnect; agent log:\n${agent.tail(10)}`,
      async () => connected() > connectedBefore && (await proxySessions()) === 1,
      30_000,
    );
    // The thawed proxy may still hold the session the agent dropped until it reads that socket's
    // close (a request picked it gets 502): the new session serves once that is done.
    await until(() => 'kubectl through the reconnected agent', kubectlWorks, 15_000);
  });

  it('1,000 malformed upgrade and handshake inputs: no crash, no leak, the tunnel still works', async () => {
    const pid = bed.proxy.proc.pid;
    const fds = () => readdirSync(`/proc/${pid}/fd`).length;
    const rssMiB = () =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
    const fd0 = fds();
    const rss0 = rssMiB();

    const raw = (payload: Buffer | string) =>
      new Promise<void>((resolve) => {
        const s = netConnect({ host: '127.0.0.1', port: bed.proxy.port }, () => s.end(payload));
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.setTimeout(5000, () => s.destroy());
        s.resume();
      });
    const ws = (after: (stream: ReturnType<typeof createWebSocketStream>, sock: WebSocket) => void) =>
      new Promise<void>((resolve) => {
        const sock = new WebSocket(`ws://127.0.0.1:${bed.proxy.port}${TUNNEL_PATH}`, SUBPROTOCOL);
        const t = setTimeout(() => sock.terminate(), 15_000);
        sock.on('error', () => undefined);
        sock.on('close', () => {
          clearTimeout(t);
          resolve();
        });
        sock.on('open', () => {
          const st = createWebSocketStream(sock);
          st.on('error', () => undefined);
          st.resume();
          after(st, sock);
        });
      });
    const ssh = (cmd: string) =>
      new Promise<void>((resolve) => {
        const sock = new WebSocket(`ws://127.0.0.1:${bed.proxy.port}${TUNNEL_PATH}`, SUBPROTOCOL);
        sock.on('error', () => resolve());
        sock.on('open', () => {
          const c = new Client();
          const done = () => {
            c.end();
            sock.terminate();
            resolve();
          };
          c.on('error', done);
          c.on('close', done);
          c.on('ready', () =>
            c.exec(cmd, (err, ch) => {
              if (err) return done();
              ch.on('close', done);
              ch.resume();
              ch.stderr.resume();
            }),
          );
          c.connect({
            sock: createWebSocketStream(sock) as never,
            username: 'x',
            authHandler: [{ type: 'none', username: 'x' }] as never,
            hostVerifier: () => true,
          });
        });
      });
    const http = (head: string) => raw(head);

    const cases: (() => Promise<void>)[] = [];
    for (let i = 0; i < 1000; i++) {
      switch (i % 10) {
        case 0:
          cases.push(() => raw(randomBytes(1 + (i % 2048))));
          break;
        case 1:
          cases.push(() => http(`GET ${TUNNEL_PATH} HTTP/1.1\r\nHost: x\r\n\r\n`));
          break;
        case 2:
          cases.push(() =>
            http(
              `GET /elsewhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`,
            ),
          );
          break;
        case 3:
          cases.push(() =>
            http(
              `GET ${TUNNEL_PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
            ),
          );
          break;
        case 4:
          cases.push(() =>
            http(
              `GET ${TUNNEL_PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`,
            ),
          );
          break;
        case 5:
          cases.push(() => ws((st) => st.end(randomBytes(64 + (i % 4096)))));
          break;
        case 6:
          cases.push(() =>
            ws((st) => st.end(Buffer.concat([Buffer.from('SSH-2.0-fuzz\r\n'), randomBytes(512)]))),
          );
          break;
        case 7:
          cases.push(() =>
            ws((_st, sock) =>
              (sock as unknown as { _socket: { end(b: Buffer): void } })._socket.end(
                Buffer.from([0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
              ),
            ),
          );
          break;
        case 8:
          cases.push(() => ssh(i % 20 === 8 ? 'knet-tower-hello {"version":1' : 'rm -rf /'));
          break;
        default:
          cases.push(() =>
            ssh(
              encodeHello({
                version: 1,
                cluster: i % 20 === 9 ? 'no-such-cluster' : 'faulty',
                token: 'wrong-token-0123456789',
                agent: 'fuzz',
              }),
            ),
          );
      }
    }
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < cases.length) await cases[next++]!();
      }),
    );

    expect(bed.proxy.proc.running).toBe(true);
    expect((await fetch(`${bed.proxy.url}/readyz`)).status).toBe(200);
    expect(await kubectlWorks()).toBe(true);
    const metrics = await (await fetch(`${bed.proxy.url}/metrics`)).text();
    expect(metrics).toContain('tower_proxy_agent_sessions{cluster="faulty"} 1'); // only the real agent
    for (const reason of ['bad-token', 'unknown-cluster', 'bad-hello', 'bad-subprotocol', 'bad-path']) {
      expect(metrics).toMatch(
        new RegExp(`tower_proxy_handshake_failures_total\\{reason="${reason}"\\} [1-9]`),
      );
    }
    // Nothing held on to: file descriptors come back to where they were, memory does not run away.
    await until(
      () => `the file descriptors to come back to ${fd0} (now ${fds()})`,
      async () => fds() <= fd0 + 5,
      30_000,
    );
    expect(rssMiB() - rss0).toBeLessThan(100);
  });
});
