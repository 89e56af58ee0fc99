/**
 * The live part of the kilo bench: kilo-agent on a real mesh (KiloMesh from @knet/testing: four
 * nodes in two locations, network namespaces with wireguard-go, the agents from their shipped
 * bundle against the test bed's kube-apiserver).
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  changedSessions,
  descendants,
  log,
  memoryMiB,
  podAddress,
  sleep,
  type ControlPlane,
  type KiloMesh,
} from '@knet/testing';

export const PEER_CRD = 'peers.kilo.squat.ai';
/** knet's leader-probe verdict on a member's Node (apps/kilo-agent). */
export const LEADER_PROBE_ANNOTATION = 'kilo-agent.knet.dev/leader-probe';
const WIREGUARD_IP_ANNOTATION = 'kilo.squat.ai/wireguard-ip';

/** A WireGuard public key (x25519, base64), as `wg genkey | wg pubkey` gives. */
export function publicKey(): string {
  const jwk = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' });
  return Buffer.from(jwk.x ?? '', 'base64url').toString('base64');
}

/** A Peer object as a user applies it (Kilo's docs peer, no endpoint). */
export function peerObject(name: string, key: string, allowedIPs: readonly string[]): object {
  return {
    apiVersion: 'kilo.squat.ai/v1alpha1',
    kind: 'Peer',
    metadata: { name },
    spec: { allowedIPs, publicKey: key, persistentKeepalive: 0 },
  };
}

/** Every Node's annotations, by name. */
export async function nodeAnnotations(cp: ControlPlane): Promise<Map<string, Record<string, string>>> {
  const out = JSON.parse(await cp.kubectlOk(['get', 'nodes', '-o', 'json'])) as {
    items: { metadata: { name: string; annotations?: Record<string, string> } }[];
  };
  return new Map(out.items.map((n) => [n.metadata.name, n.metadata.annotations ?? {}]));
}

/** The nodes whose agent publishes a WireGuard IP (the leaders), sorted. */
export async function leaders(cp: ControlPlane, mesh: KiloMesh): Promise<string[]> {
  const all = await nodeAnnotations(cp);
  return [...mesh.nodes.keys()].filter((n) => Boolean(all.get(n)?.[WIREGUARD_IP_ANNOTATION])).sort();
}

/**
 * The leaders once the mesh has settled: exactly one node per location publishes a WireGuard IP
 * (at start-up an agent that sees only itself ready leads its location for a moment).
 */
export async function settledLeaders(cp: ControlPlane, mesh: KiloMesh, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const locations = new Set([...mesh.nodes.values()].map((n) => n.spec.location));
  let current: string[] = [];
  while (Date.now() < deadline) {
    current = await leaders(cp, mesh);
    const led = current.map((n) => mesh.node(n).spec.location);
    if (led.length === locations.size && new Set(led).size === locations.size) return current;
    await sleep(500);
  }
  throw new Error(`no single leader per location after ${timeoutMs / 1000} s: ${current.join(', ')}`);
}

/** Parsed `wg show kilo0 dump` peer lines: public key → allowed IPs and latest handshake. */
export function parseDump(dump: string): Map<string, { allowedIPs: string[]; handshake: number }> {
  const peers = new Map<string, { allowedIPs: string[]; handshake: number }>();
  for (const line of dump.trim().split('\n').slice(1)) {
    const f = line.split('\t');
    if (f.length < 8) continue;
    const allowed = f[3] === '(none)' ? [] : (f[3] ?? '').split(',');
    peers.set(f[0] as string, { allowedIPs: allowed, handshake: Number(f[4]) });
  }
  return peers;
}

/** ms (performance.now) when every node in `names` shows `key` with `cidr` on kilo0, or undefined at the deadline. */
async function waitVisible(
  mesh: KiloMesh,
  names: readonly string[],
  key: string,
  cidr: string,
  timeoutMs: number,
): Promise<{ all?: number; each: Record<string, number> }> {
  const deadline = performance.now() + timeoutMs;
  const each: Record<string, number> = {};
  while (performance.now() < deadline) {
    await Promise.all(
      names
        .filter((n) => each[n] === undefined)
        .map(async (n) => {
          const peer = parseDump(await mesh.wgDump(n)).get(key);
          if (peer?.allowedIPs.includes(cidr)) each[n] = performance.now();
        }),
    );
    if (names.every((n) => each[n] !== undefined)) {
      return { all: Math.max(...names.map((n) => each[n] as number)), each };
    }
    await sleep(5);
  }
  return { each };
}

/**
 * `kubectl get peers --watch`: when the API server's watch delivered an object with a given name
 * and allowed IP (the moment the change is "in the API server" for any watcher, the agents included).
 */
class PeerWatch {
  private readonly seen: { name: string; allowed: string; at: number }[] = [];
  private readonly child;

  constructor(cp: ControlPlane) {
    this.child = spawn(
      cp.bin.kubectl,
      [
        `--kubeconfig=${cp.kubeconfigPath}`,
        'get',
        PEER_CRD,
        '--watch',
        '-o',
        'jsonpath={.metadata.name}{" "}{.spec.allowedIPs}{"\\n"}',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const at = performance.now();
      const [name = '', ...rest] = line.split(' ');
      this.seen.push({ name, allowed: rest.join(' '), at });
    });
  }

  /** When the watch first showed `name` with `cidr` after `since`, if it did. */
  at(name: string, cidr: string, since: number): number | undefined {
    return this.seen.find((s) => s.at >= since && s.name === name && s.allowed.includes(cidr))?.at;
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

export interface ChangeSample {
  kind: 'create' | 'allowed-ips';
  /** From the watch event (the change in the API server) to the datapath on every leader, ms. */
  ms?: number;
  /** From starting kubectl to the datapath on every leader, ms. */
  fromKubectlMs?: number;
  kubectlMs: number;
}

/**
 * Change → datapath: `iterations` Peer changes through kubectl (the first half creates Peers, the
 * rest change the allowed IPs of the first), each timed until `wg show kilo0 dump` shows it on
 * every leader. Allowed IPs from 198.51.100.64/27 (documentation range, inside the namespaces).
 */
export async function changeToDatapath(
  cp: ControlPlane,
  mesh: KiloMesh,
  leaderNames: readonly string[],
  iterations: number,
  timeoutMs: number,
): Promise<ChangeSample[]> {
  const watch = new PeerWatch(cp);
  const samples: ChangeSample[] = [];
  const creates = Math.ceil(iterations / 2);
  const firstKey = publicKey();
  try {
    await sleep(1000); // the watch's initial list
    for (let i = 0; i < iterations; i++) {
      const cidr = `198.51.100.${64 + (i % 32)}/32`;
      const create = i < creates;
      const name = create ? `bench-change-${i}` : 'bench-change-0';
      const key = create && i > 0 ? publicKey() : firstKey;
      const t0 = performance.now();
      if (create) {
        await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(peerObject(name, key, [cidr])) });
      } else {
        await cp.kubectlOk([
          'patch',
          PEER_CRD,
          name,
          '--type=merge',
          '-p',
          JSON.stringify({ spec: { allowedIPs: [cidr] } }),
        ]);
      }
      const kubectlMs = performance.now() - t0;
      const seen = await waitVisible(mesh, leaderNames, key, cidr, timeoutMs);
      const event = watch.at(name, cidr, t0);
      const sample: ChangeSample = { kind: create ? 'create' : 'allowed-ips', kubectlMs };
      if (seen.all !== undefined) {
        sample.fromKubectlMs = seen.all - t0;
        if (event !== undefined) sample.ms = seen.all - event;
        else log(`change ${i}: the watch did not show ${name} ${cidr}; timing from kubectl's start instead`);
        sample.ms ??= sample.fromKubectlMs;
      } else {
        log(
          `change ${i}: ${name} ${cidr} not on every leader after ${timeoutMs} ms (seen on: ${Object.keys(seen.each).join(', ') || 'none'})`,
        );
      }
      samples.push(sample);
      log(
        `  change ${i} (${sample.kind}): ${sample.ms?.toFixed(0) ?? 'timeout'} ms from the watch event, ` +
          `${sample.fromKubectlMs?.toFixed(0) ?? '-'} ms from kubectl's start (kubectl ${kubectlMs.toFixed(0)} ms)`,
      );
      await sleep(300 + Math.random() * 400);
    }
  } finally {
    watch.stop();
  }
  return samples;
}

export interface ResetResult {
  sessions: number;
  reset: string[];
}

/**
 * Sessions reset by unrelated changes: a foreign annotation on a Node, a new Peer with another
 * key, a label on a member; then `settleMs` (with traffic through every session at the end, so a
 * reset session would have to handshake again) and a count of the sessions whose handshake changed.
 * `replayKilo`: after the agents applied the new Peer, every leader's device gets the same config
 * the way Kilo applies any differing config (wgctrl ConfigureDevice with ReplacePeers, i.e.
 * `wg setconf`: every peer removed and added again).
 */
export async function resetsOnUnrelatedChange(
  cp: ControlPlane,
  mesh: KiloMesh,
  leaderNames: readonly string[],
  o: { tag: string; settleMs: number; replayKilo: boolean },
): Promise<ResetResult> {
  const before = await mesh.freshHandshakes(leaderNames, 90);
  const t0 = Date.now();
  const members = [...mesh.nodes.keys()].filter((n) => !leaderNames.includes(n));
  const annotated = members[members.length - 1] ?? leaderNames[0] ?? '';
  await cp.kubectlOk(['annotate', 'node', annotated, `example.com/bench-${o.tag}=${t0}`, '--overwrite']);
  const key = publicKey();
  const cidr = o.replayKilo ? '198.51.100.101/32' : '198.51.100.100/32';
  await cp.kubectlOk(['apply', '-f', '-'], {
    input: JSON.stringify(peerObject(`bench-unrelated-${o.tag}`, key, [cidr])),
  });
  const labelled = members[0] ?? annotated;
  await cp.kubectlOk(['label', 'node', labelled, `example.com/bench-${o.tag}=${t0}`, '--overwrite']);
  const seen = await waitVisible(mesh, leaderNames, key, cidr, 35_000);
  if (seen.all === undefined) log(`resets (${o.tag}): the new Peer did not reach every leader in 35 s`);
  if (o.replayKilo) {
    for (const l of leaderNames) {
      const conf = (await mesh.node(l).host.exec('wg', ['showconf', 'kilo0'])).stdout;
      // In the bed's temp dir (0600): /dev/stdin is a socket here, which wg cannot fopen.
      const file = mesh.writeFile(`kilo-replay-${l}.conf`, conf);
      await mesh.node(l).host.exec('wg', ['setconf', 'kilo0', file]);
    }
  }
  await sleep(Math.max(0, o.settleMs - (Date.now() - t0)));
  await mesh.pingMatrix();
  await sleep(1000);
  const after = await mesh.handshakeTable(leaderNames);
  const sessions = [...before.values()].filter((t) => t > 0).length;
  return { sessions, reset: changedSessions(before, after) };
}

/** The kilo-agent (node) process of a node: the spawned pid if it is node itself, else its node child. */
export function agentPid(mesh: KiloMesh, name: string): number | undefined {
  const pid = mesh.node(name).agent?.pid;
  if (pid === undefined) return undefined;
  const node = realpathSync(process.execPath);
  const isNode = (p: number): boolean => {
    try {
      return realpathSync(`/proc/${p}/exe`) === node;
    } catch {
      return false;
    }
  };
  return [pid, ...descendants(pid)].find(isNode);
}

/** VmRSS and VmHWM of every agent, MiB. */
export function agentMemory(mesh: KiloMesh): Record<string, { rss: number; peak: number; pid: number }> {
  const out: Record<string, { rss: number; peak: number; pid: number }> = {};
  for (const name of mesh.nodes.keys()) {
    const pid = agentPid(mesh, name);
    if (pid !== undefined) out[name] = { ...memoryMiB(pid), pid };
  }
  return out;
}

/** wireguard-go processes in a node's network namespace (only there: the machine runs others). */
function wireguardGoIn(mesh: KiloMesh, name: string): number[] {
  const netns = `net:[${statSync(`/run/netns/${mesh.node(name).host.name}`).ino}]`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'wireguard-go') continue;
      if (readlinkSync(`/proc/${pid}/ns/net`) === netns) pids.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * A node dies: its agent SIGKILLed (its process group: no clean-up), then whatever wireguard-go
 * still runs in its network namespace — only there. (KiloMesh.killNode's `pkill -f wireguard-go`
 * runs in the node's network and mount namespaces but the machine's pid namespace, so it would
 * kill every wireguard-go on the machine: the other nodes' too.) Returns the wireguard-go pids
 * found before, and those that outlived the agent's process group and were killed here.
 */
export async function killNode(mesh: KiloMesh, name: string): Promise<{ found: number[]; killed: number[] }> {
  const found = wireguardGoIn(mesh, name);
  await mesh.node(name).agent?.kill('SIGKILL', 0);
  const killed: number[] = [];
  for (const pid of wireguardGoIn(mesh, name)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return { found, killed };
}

export interface FailoverResult {
  /** ms from the fault to the first answered ping sent after it; undefined when none within the limit. */
  ms?: number;
  /** ms from the fault to the send of that ping (the datapath worked by then, ±200 ms). */
  sentMs?: number;
  lost: number;
  answeredBefore: number;
  /** With `watchAfterMs`: pings lost after the failover while the fault stays, and the longest outage (first lost send → next answered send). */
  after?: { lost: number; sent: number; longestOutageMs: number };
  error?: string;
}

/** Lost pings among those sent in [from, to), and the longest stretch from a lost send to the next answered one. */
function outages(
  pings: readonly { sent: number; ok?: boolean }[],
  from: number,
  to: number,
): { lost: number; sent: number; longestOutageMs: number } {
  const window = pings.filter((p) => p.sent >= from && p.sent < to && p.ok !== undefined);
  let longest = 0;
  let start: number | undefined;
  for (const p of window) {
    if (!p.ok) start ??= p.sent;
    else if (start !== undefined) {
      longest = Math.max(longest, p.sent - start);
      start = undefined;
    }
  }
  if (start !== undefined) longest = Math.max(longest, to - start);
  return { lost: window.filter((p) => !p.ok).length, sent: window.length, longestOutageMs: longest };
}

/**
 * Failover: east-2 pings west-2's pod address every 200 ms (each ping waits up to 1 s) while
 * `fault` breaks east's leader; the result is the time from the fault to the first answer to a ping
 * sent after it. `watchAfterMs`: keep pinging that long after the failover, with the fault still
 * in place, and count what is lost then (a demoted leader is tried again after the members' hold).
 */
export async function failover(
  mesh: KiloMesh,
  from: string,
  to: string,
  fault: () => Promise<unknown>,
  limitMs: number,
  watchAfterMs = 0,
): Promise<FailoverResult> {
  const address = podAddress(mesh.node(to).spec.podCIDR);
  const pings: { sent: number; done?: number; ok?: boolean }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const p: { sent: number; done?: number; ok?: boolean } = { sent: performance.now() };
      pings.push(p);
      void mesh.ping(from, address, 1).then(
        (ok) => {
          p.ok = ok;
          p.done = performance.now();
        },
        () => {
          p.ok = false;
          p.done = performance.now();
        },
      );
      await sleep(200);
    }
  })();
  try {
    await sleep(3000);
    const answeredBefore = pings.filter((p) => p.ok).length;
    if (answeredBefore === 0) throw new Error(`${from} cannot ping ${to} (${address}) before the fault`);
    const t0 = performance.now();
    await fault();
    const tFault = performance.now();
    const first = async (): Promise<{ sent: number; done: number } | undefined> => {
      while (performance.now() - t0 < limitMs) {
        const hit = pings.find((p) => p.sent >= tFault && p.ok === true);
        if (hit?.done !== undefined) return { sent: hit.sent, done: hit.done };
        await sleep(50);
      }
      return undefined;
    };
    const hit = await first();
    const lost = pings.filter(
      (p) => p.sent >= tFault && p.ok === false && (!hit || p.sent < hit.sent),
    ).length;
    if (!hit) {
      return {
        lost,
        answeredBefore,
        error: `no ping from ${from} to ${to} answered within ${limitMs / 1000} s of the fault`,
      };
    }
    const result: FailoverResult = { ms: hit.done - t0, sentMs: hit.sent - t0, lost, answeredBefore };
    if (watchAfterMs > 0) {
      log(
        `failover: ${(hit.done - t0).toFixed(0)} ms; watching ${watchAfterMs / 1000} s more with the fault in place`,
      );
      const end = hit.done + watchAfterMs;
      await sleep(Math.max(0, end - performance.now()) + 1200);
      result.after = outages(pings, hit.sent, end);
    }
    return result;
  } finally {
    running = false;
    await loop;
    await sleep(1200); // the last pings finish
  }
}

/** What each node shows: leader annotations, leader-probe verdicts, `wg show kilo0 dump` (for a failed failover). */
export async function meshSnapshot(cp: ControlPlane, mesh: KiloMesh): Promise<string> {
  const lines: string[] = [];
  const annotations = await nodeAnnotations(cp).catch(() => new Map<string, Record<string, string>>());
  for (const name of mesh.nodes.keys()) {
    const a = annotations.get(name) ?? {};
    lines.push(
      `${name}: wireguard-ip=${JSON.stringify(a[WIREGUARD_IP_ANNOTATION] ?? null)} ` +
        `leader-probe=${a[LEADER_PROBE_ANNOTATION] ?? '-'} last-seen=${a['kilo.squat.ai/last-seen'] ?? '-'} ` +
        `agent=${mesh.node(name).agent?.running ? 'running' : 'stopped'}`,
    );
    const dump = await mesh.wgDump(name).catch(() => '');
    const [iface, ...peers] = dump.trim().split('\n');
    lines.push(`  kilo0: ${iface ? iface.split('\t').slice(2).join(' ') : '(no device)'}`);
    for (const p of peers.filter(Boolean)) {
      const f = p.split('\t');
      lines.push(
        `    peer ${f[0]?.slice(0, 8)}… endpoint=${f[2]} allowed=${f[3]} handshake=${f[4]} rx=${f[5]} tx=${f[6]}`,
      );
    }
  }
  return lines.join('\n');
}
