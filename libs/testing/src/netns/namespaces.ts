import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { sleep } from '@knet/runtime';
import { execArgv, execArgvSync, processAlive } from '../exec';

/** Every namespace the harness creates starts with this. */
export const NETLAB_PREFIX = 'knt-';

/** Names encode the owning process: `knt-<pid base36>-<random hex>`, at most 15 characters. */
const NAME = /^knt-([0-9a-z]{1,6})-([0-9a-f]{4})$/;

export function newNamespaceName(): string {
  return `${NETLAB_PREFIX}${process.pid.toString(36)}-${randomBytes(2).toString('hex')}`;
}

/**
 * A harness namespace name that no live namespace (of any run) has: 16 random bits clash with
 * ~2% odds among 50 hosts, so names in use are skipped.
 */
export function freshNamespaceName(taken: ReadonlySet<string>): string {
  for (;;) {
    const name = newNamespaceName();
    if (!taken.has(name) && !existsSync(`/run/netns/${name}`)) return name;
  }
}

/** The pid that created a harness namespace, or undefined when the name is not one of ours. */
export function namespaceOwner(name: string): number | undefined {
  const m = NAME.exec(name);
  return m ? parseInt(m[1] as string, 36) : undefined;
}

/** Only harness namespaces may be destroyed by the harness. */
function assertLabName(name: string): void {
  if (!name.startsWith(NETLAB_PREFIX) || name.includes('/')) {
    throw new Error(`NetLab: refusing to destroy ${JSON.stringify(name)}: not a ${NETLAB_PREFIX}* namespace`);
  }
}

/** Names from `ip netns list` (lines like `knt-abc-1234 (id: 3)`). */
export function parseNetnsList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

function pidsIn(text: string): number[] {
  return text
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0 && n !== process.pid);
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Kills every process inside the namespace (SIGTERM, then SIGKILL after up to 2 s) — this also
 * catches daemons such as wireguard-go that left their process group — then deletes it, which
 * deletes its links (and the peers of its veths).
 */
export async function destroyNamespace(name: string): Promise<void> {
  assertLabName(name);
  const list = async (): Promise<number[]> =>
    pidsIn((await execArgv(['ip', 'netns', 'pids', name], { check: false })).stdout);
  let pids = await list();
  if (pids.length > 0) {
    signalAll(pids, 'SIGTERM');
    for (let i = 0; i < 20 && pids.length > 0; i++) {
      await sleep(100);
      pids = await list();
    }
    signalAll(pids, 'SIGKILL');
    for (let i = 0; i < 20 && (await list()).length > 0; i++) await sleep(50);
  }
  const r = await execArgv(['ip', 'netns', 'del', name], { check: false });
  if (r.exitCode !== 0 && !/No such file|not found|does not exist/i.test(r.stderr)) {
    await execArgv(['ip', 'netns', 'del', name]); // retry once, throwing a one-line error
  }
}

/** Synchronous {@link destroyNamespace}, for process exit handlers. */
export function destroyNamespaceSync(name: string): void {
  assertLabName(name);
  const list = (): number[] => pidsIn(execArgvSync(['ip', 'netns', 'pids', name])?.stdout ?? '');
  let pids = list();
  if (pids.length > 0) {
    signalAll(pids, 'SIGTERM');
    for (let i = 0; i < 10 && pids.length > 0; i++) {
      sleepSync(100);
      pids = list();
    }
    signalAll(pids, 'SIGKILL');
    sleepSync(100);
  }
  execArgvSync(['ip', 'netns', 'del', name]);
}

export interface SweepOptions {
  /** Also remove harness namespaces whose owner is still running (default false). */
  all?: boolean;
}

/**
 * Removes `knt-` namespaces left behind by crashed runs: those whose owning process (encoded in the
 * name) is gone, or whose name does not carry an owner. Namespaces of live runs (e.g. a parallel
 * Jest worker) are kept unless `all` is set. Returns the names removed.
 */
export async function sweepStaleNetns(options: SweepOptions = {}): Promise<string[]> {
  const r = await execArgv(['ip', 'netns', 'list'], { check: false });
  const removed: string[] = [];
  for (const name of parseNetnsList(r.stdout)) {
    if (!name.startsWith(NETLAB_PREFIX)) continue;
    const owner = namespaceOwner(name);
    if (options.all || owner === undefined || !processAlive(owner)) {
      await destroyNamespace(name);
      removed.push(name);
    }
  }
  return removed;
}

/** Namespaces created by this process and not yet destroyed; removed by the exit handlers. */
export const liveNamespaces = new Set<string>();
/** Process groups spawned by this process and not yet reaped. */
export const liveProcessGroups = new Set<number>();

let handlersInstalled = false;

function cleanupAllSync(): void {
  for (const pgid of liveProcessGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  liveProcessGroups.clear();
  for (const name of [...liveNamespaces]) {
    destroyNamespaceSync(name);
    liveNamespaces.delete(name);
  }
}

/** Installs (once) exit/SIGINT/SIGTERM handlers that destroy whatever the harness left. */
export function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once('exit', cleanupAllSync);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const handler = (): void => {
      cleanupAllSync();
      process.removeListener(signal, handler);
      // Keep the default behaviour (terminate) unless someone else handles the signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
}
