import { fork } from 'node:child_process';
import { connect as tlsConnect } from 'node:tls';
import { Client as SshClient } from 'ssh2';
import type { FloorReport, FloorRequest } from './floor-server';
import { emit, log, type Cleanup } from './util';

export interface FloorOptions {
  clusters: number;
  /** floor-server.cjs */
  bundle: string;
  /** SSH dials in flight (the simulated agents' --dial-concurrency). */
  dialConcurrency: number;
  /** TLS requests in flight (the restart probe's --probe-concurrency). */
  probeConcurrency: number;
  cleanup: Cleanup;
}

/** The restart floor in CPU milliseconds of the one event loop that serves, and its parts. */
export interface Floor {
  ms: number;
  sshMs: number;
  contextMs: number;
  tlsMs: number;
  issueMs: number;
  wallMs: number;
}

/**
 * The restart floor: what any proxy must do, on one event loop, before the restart part can count
 * N clusters served, measured on this machine in this run with tower-proxy's own libraries and
 * key types, and nothing else (floor-server.ts; this process plays the agents and the prober):
 * accept N SSH connections (every agent redials: key exchange, ed25519 host key signature, ssh2's
 * packet handling), create N TLS contexts (each listener presents its cluster's certificate and
 * checks client certificates against the CA), and complete N TLS handshakes with a client
 * certificate, one request each. Not counted, so the floor stays a floor: issuing the serving
 * certificates (they could be kept; reported as `issue_ms`), the agents' WebSocket and hello, the
 * 2N requests through SSH channels, reading the Clusters, the plain kubesphere requests. The value
 * is the server process's CPU time: one core's worth, however many the machine has.
 */
export async function measureFloor(o: FloorOptions): Promise<Floor> {
  const server = fork(o.bundle, [String(o.clusters)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const stop = o.cleanup.defer('floor server', () => server.kill('SIGKILL'));
  const next = <K extends FloorReport['kind']>(kind: K) =>
    new Promise<Extract<FloorReport, { kind: K }>>((resolve, reject) => {
      const onMessage = (m: FloorReport) => {
        if (m.kind !== kind) return;
        server.off('message', onMessage);
        server.off('exit', onExit);
        resolve(m as Extract<FloorReport, { kind: K }>);
      };
      const onExit = (code: number | null) =>
        reject(new Error(`floor server exited (${code}) before ${kind}`));
      server.on('message', onMessage);
      server.once('exit', onExit);
    });
  const ask = (r: FloorRequest) => server.send(r);
  const cpu = async () => {
    const answer = next('cpu');
    ask({ cmd: 'cpu' });
    return answer;
  };
  const ssh: SshClient[] = [];
  try {
    const ready = await next('ready');
    const t0 = performance.now();
    const listening = next('listening');
    ask({ cmd: 'listen' });
    const { ports, issueCpuMs, contextCpuMs } = await listening;
    const t1 = performance.now();

    const before = await cpu();
    await inParallel(
      o.clusters,
      o.dialConcurrency,
      () =>
        new Promise<void>((resolve, reject) => {
          const c = new SshClient();
          c.once('ready', () => {
            ssh.push(c);
            resolve();
          });
          c.once('error', reject);
          c.connect({ host: '127.0.0.1', port: ready.sshPort, username: 'floor', hostVerifier: () => true });
        }),
    );
    const afterSsh = await cpu();
    if (afterSsh.sshReady !== o.clusters)
      throw new Error(`floor: ${afterSsh.sshReady}/${o.clusters} SSH connections ready`);
    const t2 = performance.now();

    await inParallel(
      o.clusters,
      o.probeConcurrency,
      (i) =>
        new Promise<void>((resolve, reject) => {
          const s = tlsConnect({
            host: '127.0.0.1',
            port: ports[i],
            ca: ready.caPem,
            cert: ready.client.certPem,
            key: ready.client.keyPem,
          });
          let got = '';
          s.setEncoding('latin1');
          s.once('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: floor\r\n\r\n'));
          s.on('data', (d: string) => (got += d));
          s.once('end', () => {
            s.destroy();
            if (got.startsWith('HTTP/1.1 200 ')) resolve();
            else reject(new Error(`floor: listener ${i} answered ${JSON.stringify(got.slice(0, 40))}`));
          });
          s.once('error', reject);
        }),
    );
    const afterTls = await cpu();
    const t3 = performance.now();
    const sshMs = afterSsh.ms - before.ms;
    const tlsMs = afterTls.ms - afterSsh.ms;
    const floor: Floor = {
      ms: sshMs + contextCpuMs + tlsMs,
      sshMs,
      contextMs: contextCpuMs,
      tlsMs,
      issueMs: issueCpuMs,
      wallMs: t3 - t0, // issue and listen, SSH, TLS: one after the other
    };
    const each = (ms: number) => Number((ms / o.clusters).toFixed(2));
    log(
      `floor: ${o.clusters} SSH handshakes ${each(floor.sshMs)} ms, TLS contexts ${each(floor.contextMs)} ms, ` +
        `TLS handshakes ${each(floor.tlsMs)} ms of server CPU each (serving certificates ${each(floor.issueMs)} ms each, not counted); ` +
        `wall ${((t1 - t0) / 1000).toFixed(1)} + ${((t2 - t1) / 1000).toFixed(1)} + ${((t3 - t2) / 1000).toFixed(1)} s`,
    );
    emit({
      metric: `restart_floor_${o.clusters}_clusters_ms`,
      value: Math.round(floor.ms),
      unit: 'ms',
      ssh_handshake_ms_each: each(floor.sshMs),
      tls_context_ms_each: each(floor.contextMs),
      tls_handshake_ms_each: each(floor.tlsMs),
      serving_certificate_ms_each: each(floor.issueMs),
      wall_ms: Math.round(floor.wallMs),
    });
    return floor;
  } finally {
    for (const c of ssh) c.end();
    await stop();
  }
}

/** Runs `fn(0…count-1)`, `concurrency` at a time; the first failure fails all. */
async function inParallel(
  count: number,
  concurrency: number,
  fn: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) await fn(i);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
