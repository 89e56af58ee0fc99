import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { ManagedProcess, appBundle, until } from '@knet/testing';
import { SUBPROTOCOL, generateHostKey } from '@knet/tunnel';

jest.setTimeout(90_000);

/**
 * The agent bundle against a tower-proxy that goes away in the middle of each SSH handshake (it
 * sends its ident, then closes), reached through an egress HTTP proxy named by HTTP_PROXY. The
 * agent names the tower by a name only the egress proxy resolves (to loopback), as behind a real
 * egress proxy; all traffic stays on loopback.
 */
describe('tower-agent when the proxy keeps closing during the handshake, behind an egress proxy', () => {
  const TOWER_NAME = 'tower.invalid';
  const dir = mkdtempSync(join(tmpdir(), 'knet-agent-resilience-'));
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  let upgrades = 0;
  const connects: string[] = [];
  let agent: ManagedProcess | undefined;

  const listen = async (s: Server) => {
    servers.push(s);
    s.on('connection', (c: Socket) => {
      sockets.add(c);
      c.once('close', () => sockets.delete(c));
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return (s.address() as AddressInfo).port;
  };

  afterAll(async () => {
    await agent?.stop();
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  });

  it('retries each attempt at once, goes through the egress proxy, and /healthz fails after --liveness-timeout', async () => {
    // The tower: upgrades, sends its SSH ident, closes.
    const tower = createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ noServer: true, handleProtocols: () => SUBPROTOCOL });
    tower.on('upgrade', (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (ws) => {
        upgrades++;
        ws.send(Buffer.from('SSH-2.0-x\r\n'));
        setTimeout(() => ws.close(1001), 20);
      }),
    );
    const towerPort = await listen(tower);

    // The egress proxy: CONNECT only, and it alone knows where tower.invalid is.
    const egress = createServer((_req, res) => res.writeHead(405).end());
    egress.on('connect', (req: IncomingMessage, client: Socket) => {
      connects.push(req.url ?? '');
      client.on('error', () => undefined);
      if (req.url !== `${TOWER_NAME}:${towerPort}`) {
        client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      const up = netConnect({ host: '127.0.0.1', port: towerPort }, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        client.pipe(up).pipe(client);
      });
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
    });
    const egressPort = await listen(egress);

    const saDir = join(dir, 'sa');
    mkdirSync(saDir);
    writeFileSync(join(saDir, 'token'), 'sa-token\n');
    writeFileSync(join(saDir, 'ca.crt'), 'unused\n');

    const bundle = await appBundle('tower-agent');
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      TOWER_TOKEN: 't'.repeat(32),
      HTTP_PROXY: `http://127.0.0.1:${egressPort}`,
    };
    agent = ManagedProcess.start(
      'tower-agent-resilience',
      process.execPath,
      [
        bundle,
        '--name=resilient',
        `--proxy-server=http://${TOWER_NAME}:${towerPort}`,
        `--fingerprint=${generateHostKey().fingerprint}`,
        `--service-account-dir=${saDir}`,
        '--kubernetes-service=127.0.0.1:1',
        '--kubesphere-service=none',
        '--max-retry-interval=1s',
        '--liveness-timeout=2s',
        '--metrics-port=0',
        '--metrics-host=127.0.0.1',
        '--log-level=debug',
      ],
      join(dir, 'agent.log'),
      env,
    );
    const log = () => readFileSync(agent!.logFile, 'utf8');

    // Each attempt ends when the tower closes, and the next follows after the (1 s capped) backoff:
    // no attempt waits for an SSH timeout (30 s).
    await until(
      () => `3 attempts; agent log:\n${agent!.tail(20)}`,
      () => upgrades >= 3,
      30_000,
    );
    expect(connects.slice(0, 3)).toEqual(Array(3).fill(`${TOWER_NAME}:${towerPort}`));
    expect(log()).toContain('connection to the proxy closed');

    // Never connected for longer than --liveness-timeout: liveness fails, readiness too.
    const port = /"port":(\d+).*observability server listening/.exec(log())?.[1];
    expect(port).toBeDefined();
    const healthz = await until(
      () => `/healthz to fail; agent log:\n${agent!.tail(20)}`,
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/healthz?verbose`);
        return r.status === 500 ? r.text() : undefined;
      },
      20_000,
    );
    expect(healthz).toContain('[-]connected-recently failed');
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(500);
    expect(agent.running).toBe(true);
  });
});
