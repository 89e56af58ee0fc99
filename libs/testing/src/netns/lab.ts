import { spawn, type ChildProcess } from 'node:child_process';
import { errorMessage, sleep } from '@knet/runtime';
import { execArgv, NetLabCommandError, oneLine, type LabExecOptions, type LabExecResult } from '../exec';
import {
  destroyNamespace,
  installExitHandlers,
  liveNamespaces,
  liveProcessGroups,
  freshNamespaceName,
  sweepStaleNetns,
} from './namespaces';

/** The lab cannot run here (not root, or no usable `ip netns`). One line; tests should fail, not skip. */
export class NetLabUnavailableError extends Error {
  override readonly name = 'NetLabUnavailableError';
}

/**
 * Throws {@link NetLabUnavailableError} unless network namespaces can be created: running as root
 * and `ip netns list` works. `uid` and `ip` are injectable for tests.
 */
export async function checkNetLabSupport(env: { uid?: number; ip?: string } = {}): Promise<void> {
  const uid = env.uid ?? process.getuid?.();
  const need = 'network tests need root and iproute2 (ip netns)';
  if (uid !== 0) throw new NetLabUnavailableError(`${need}: running as uid ${uid ?? 'unknown'}`);
  const ip = env.ip ?? 'ip';
  try {
    await execArgv([ip, 'netns', 'list'], { timeoutMs: 10_000 });
  } catch (err) {
    throw new NetLabUnavailableError(`${need}: ${errorMessage(err)}`);
  }
}

export interface HostOptions {
  /**
   * Give the host a private mount namespace (shared by every command and process of the host) with
   * a tmpfs on /var/run/wireguard, so wireguard-go control sockets of different hosts do not
   * collide. Commands then run through `nsenter` instead of `ip netns exec`.
   */
  privateMounts?: boolean;
  /** Enable IPv4 and IPv6 forwarding in the host. */
  forwarding?: boolean;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
}

const MAX_OUTPUT = 256 * 1024;

/** A process started inside a host, in its own process group. */
export class LabProcess {
  readonly pid: number;
  /** Resolves when the process exits (never rejects). */
  readonly exited: Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }>;
  private buffer = '';
  private done = false;

  constructor(
    readonly argv: readonly string[],
    private readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`could not spawn ${argv.join(' ')}`);
    this.pid = child.pid;
    liveProcessGroups.add(this.pid);
    const append = (c: Buffer): void => {
      this.buffer = (this.buffer + c.toString('utf8')).slice(-MAX_OUTPUT);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.exited = new Promise((resolve) => {
      child.on('close', (exitCode, signal) => {
        this.done = true;
        liveProcessGroups.delete(this.pid);
        resolve({ exitCode, signal });
      });
      child.on('error', () => {
        this.done = true;
        liveProcessGroups.delete(this.pid);
        resolve({ exitCode: null, signal: null });
      });
    });
  }

  get running(): boolean {
    return !this.done;
  }

  /** Combined stdout and stderr so far (the last 256 KiB). */
  output(): string {
    return this.buffer;
  }

  /** Waits until the output matches `pattern`; throws (one line) on timeout or exit. */
  async waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = pattern.exec(this.buffer);
      if (m) return m[0];
      if (this.done) break;
      await sleep(50);
    }
    throw new Error(
      `${this.argv.join(' ')}: ${this.done ? 'exited' : 'timed out'} before printing ${pattern}; output: ${oneLine(this.buffer)}`,
    );
  }

  /** Signals the whole process group; SIGKILL after `graceMs` if still running. */
  async kill(signal: NodeJS.Signals = 'SIGTERM', graceMs = 2_000): Promise<void> {
    if (this.done) return;
    // Hold the event loop while waiting: a process started unref'd (the mount anchors) holds
    // nothing, and a lab or bench with nothing else pending would exit 0 halfway through its
    // teardown (seen in the lab and bench/kilo).
    const hold = setInterval(() => undefined, 1000);
    let timeout: NodeJS.Timeout | undefined;
    try {
      signalGroup(this.pid, signal);
      const timer = new Promise<'timeout'>((r) => (timeout = setTimeout(() => r('timeout'), graceMs)));
      if ((await Promise.race([this.exited, timer])) === 'timeout') {
        signalGroup(this.pid, 'SIGKILL');
        await this.exited;
      }
    } finally {
      clearTimeout(timeout);
      clearInterval(hold);
    }
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** A network namespace of the lab. */
export class NetHost {
  /**
   * Argv that runs a command inside this host: `ip netns exec NAME`, or with private mounts
   * `nsenter --target=PID --mount --net --`. Pass it to @knet/host-net's ExecaRunner `prefix`.
   */
  readonly commandPrefix: readonly string[];
  private ifCount = 0;

  /** @internal use {@link NetLab.addHost} */
  constructor(
    readonly lab: NetLab,
    readonly label: string,
    /** The netns name (`knt-...`). */
    readonly name: string,
    /** pid of the process anchoring the private mount namespace, if any. */
    readonly mountAnchorPid?: number,
  ) {
    this.commandPrefix =
      mountAnchorPid === undefined
        ? ['ip', 'netns', 'exec', name]
        : ['nsenter', `--target=${mountAnchorPid}`, '--mount', '--net', '--'];
  }

  get privateMounts(): boolean {
    return this.mountAnchorPid !== undefined;
  }

  /** The next free interface name for lab links: eth0, eth1, ... */
  nextIfName(): string {
    return `eth${this.ifCount++}`;
  }

  /** Runs a command inside the host; throws a one-line NetLabCommandError on failure unless `check: false`. */
  async exec(
    cmd: string,
    args: readonly string[] = [],
    options: LabExecOptions = {},
  ): Promise<LabExecResult> {
    this.lab.assertOpen();
    return await execArgv([...this.commandPrefix, cmd, ...args], options);
  }

  /** `ip ARGS` inside the host; returns stdout. */
  async ip(...args: string[]): Promise<string> {
    return (await this.exec('ip', args)).stdout;
  }

  /** Starts a long-running process inside the host (own process group; killed by dispose). */
  spawn(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): LabProcess {
    this.lab.assertOpen();
    const argv = [...this.commandPrefix, cmd, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    const proc = new LabProcess(argv, child);
    this.lab.track(proc);
    return proc;
  }

  /** One ping round (default 1 packet, 1 s wait); true when answered. */
  async ping(address: string, options: { count?: number; timeoutSeconds?: number } = {}): Promise<boolean> {
    const r = await this.exec(
      'ping',
      ['-n', '-q', '-c', String(options.count ?? 1), '-W', String(options.timeoutSeconds ?? 1), address],
      { check: false },
    );
    return r.exitCode === 0;
  }

  /** Pings until answered; throws a one-line error after `timeoutMs` (default 10 s). */
  async waitForPing(address: string, options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    do {
      if (await this.ping(address)) return;
    } while (Date.now() < deadline);
    throw new Error(
      `${this.label} (${this.name}): no ping reply from ${address} within ${options.timeoutMs ?? 10_000} ms`,
    );
  }
}

export interface LinkEndOptions {
  /** Interface name (default: the host's next ethN). */
  ifname?: string;
  /** Address(es) with prefix length, e.g. `192.0.2.1/24`. IPv6 ones are added with nodad. */
  address?: string | readonly string[];
}

export interface LinkOptions {
  a?: LinkEndOptions;
  b?: LinkEndOptions;
  mtu?: number;
}

export interface NetLinkEnd {
  host: NetHost;
  ifname: string;
  addresses: string[];
}

export interface NetLink {
  a: NetLinkEnd;
  b: NetLinkEnd;
}

/** A Linux bridge (`br0`) in its own namespace; hosts plug in through veths. */
export class NetSwitch {
  readonly bridge = 'br0';
  private ports = 0;

  /** @internal use {@link NetLab.addSwitch} */
  constructor(
    readonly lab: NetLab,
    /** The switch's own namespace. */
    readonly ns: NetHost,
  ) {}

  get name(): string {
    return this.ns.name;
  }

  /** Connects `host` with a veth (host side `ethN` or `ifname`, switch side `pN` in br0). */
  async connect(host: NetHost, options: LinkEndOptions & { mtu?: number } = {}): Promise<NetLinkEnd> {
    const port = `p${this.ports++}`;
    const ifname = options.ifname ?? host.nextIfName();
    await this.lab.createVeth(host, ifname, this.ns, port, options.mtu);
    await this.ns.ip('link', 'set', 'dev', port, 'master', this.bridge, 'up');
    const addresses = await configureEnd(host, ifname, options.address);
    return { host, ifname, addresses };
  }
}

async function configureEnd(
  host: NetHost,
  ifname: string,
  address?: string | readonly string[],
): Promise<string[]> {
  const list = address === undefined ? [] : typeof address === 'string' ? [address] : [...address];
  for (const a of list) {
    await host.ip(
      ...(a.includes(':') ? ['-6'] : []),
      'addr',
      'add',
      a,
      'dev',
      ifname,
      ...(a.includes(':') ? ['nodad'] : []),
    );
  }
  await host.ip('link', 'set', 'dev', ifname, 'up');
  return list;
}

export interface NetLabOptions {
  /** Remove `knt-` namespaces of crashed runs first (default true; live runs are never touched). */
  sweepStale?: boolean;
}

/**
 * A throw-away network of namespaces: hosts, veth links, bridges. Everything lives in `knt-*`
 * namespaces; nothing is ever configured in the root namespace (veths are created directly inside
 * their namespaces). `dispose()` kills processes and deletes the namespaces; exit and signal
 * handlers do the same if a run dies first.
 */
export class NetLab {
  readonly hosts: NetHost[] = [];
  readonly switches: NetSwitch[] = [];
  private readonly namespaces: string[] = [];
  private readonly processes: LabProcess[] = [];
  private disposed = false;

  private constructor() {
    // use NetLab.create()
  }

  /** Checks root and `ip netns` (throwing one clear line otherwise), then returns an empty lab. */
  static async create(options: NetLabOptions = {}): Promise<NetLab> {
    await checkNetLabSupport();
    installExitHandlers();
    if (options.sweepStale ?? true) await sweepStaleNetns();
    return new NetLab();
  }

  /** @internal */
  assertOpen(): void {
    if (this.disposed) throw new Error('NetLab: already disposed');
  }

  /** @internal */
  track(proc: LabProcess): void {
    this.processes.push(proc);
  }

  /** Namespace names owned by this lab. */
  get namespaceNames(): readonly string[] {
    return [...this.namespaces];
  }

  private async addNamespace(): Promise<string> {
    this.assertOpen();
    const name = freshNamespaceName(liveNamespaces);
    // Registered before creation so that a crash between the two still cleans it up.
    liveNamespaces.add(name);
    this.namespaces.push(name);
    await execArgv(['ip', 'netns', 'add', name]);
    await execArgv(['ip', '-n', name, 'link', 'set', 'dev', 'lo', 'up']);
    return name;
  }

  /** A new host (network namespace with loopback up). */
  async addHost(label = `h${this.hosts.length}`, options: HostOptions = {}): Promise<NetHost> {
    const name = await this.addNamespace();
    const anchor = options.privateMounts ? await this.startMountAnchor(name) : undefined;
    const host = new NetHost(this, label, name, anchor);
    this.hosts.push(host);
    if (options.forwarding) {
      await host.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
      await host.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    }
    return host;
  }

  /**
   * A process that holds a private mount namespace for the host (inside its netns) with a tmpfs on
   * /var/run/wireguard; commands of the host join both namespaces through nsenter.
   */
  private async startMountAnchor(name: string): Promise<number> {
    const script =
      'mkdir -p /var/run/wireguard && mount -t tmpfs -o mode=0700,size=4m knt-wg /var/run/wireguard && echo ready && exec sleep infinity';
    const argv = [
      'ip',
      'netns',
      'exec',
      name,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
    ];
    const child = spawn(argv[0] as string, argv.slice(1), {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new LabProcess(argv, child);
    this.track(proc);
    await proc.waitForOutput(/ready/, 10_000);
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.unref();
    return proc.pid;
  }

  /**
   * A bare veth pair (down, no addresses) with each end created directly inside its namespace —
   * never in the root namespace. For tests that configure the ends themselves.
   */
  async createVeth(a: NetHost, aName: string, b: NetHost, bName: string, mtu?: number): Promise<void> {
    this.assertOpen();
    if (a.name === b.name) throw new Error('NetLab: a link needs two different hosts');
    await execArgv([
      'ip',
      'link',
      'add',
      aName,
      'netns',
      a.name,
      ...(mtu !== undefined ? ['mtu', String(mtu)] : []),
      'type',
      'veth',
      'peer',
      'name',
      bName,
      'netns',
      b.name,
    ]);
  }

  /** A veth pair between two hosts, with optional addresses; both ends up. */
  async link(a: NetHost, b: NetHost, options: LinkOptions = {}): Promise<NetLink> {
    const aName = options.a?.ifname ?? a.nextIfName();
    const bName = options.b?.ifname ?? b.nextIfName();
    await this.createVeth(a, aName, b, bName, options.mtu);
    return {
      a: { host: a, ifname: aName, addresses: await configureEnd(a, aName, options.a?.address) },
      b: { host: b, ifname: bName, addresses: await configureEnd(b, bName, options.b?.address) },
    };
  }

  /** A switch: a bridge in its own namespace. */
  async addSwitch(label = `sw${this.switches.length}`): Promise<NetSwitch> {
    const name = await this.addNamespace();
    const ns = new NetHost(this, label, name);
    await ns.ip('link', 'add', 'br0', 'type', 'bridge');
    await ns.ip('link', 'set', 'dev', 'br0', 'up');
    const sw = new NetSwitch(this, ns);
    this.switches.push(sw);
    return sw;
  }

  /**
   * Kills every spawned process (process groups, then anything left in the namespaces) and deletes
   * the namespaces. Idempotent; tries everything and then throws one line if something failed.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const failures: string[] = [];
    await Promise.all(this.processes.map((p) => p.kill('SIGTERM', 1_000).catch(() => undefined)));
    for (const name of this.namespaces) {
      try {
        await destroyNamespace(name);
        liveNamespaces.delete(name);
      } catch (err) {
        failures.push(err instanceof NetLabCommandError ? err.message : String(err));
      }
    }
    if (failures.length > 0) throw new Error(`NetLab.dispose: ${failures.join('; ')}`);
  }
}
