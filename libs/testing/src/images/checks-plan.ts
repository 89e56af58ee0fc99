/**
 * What each image is checked for under runc, and the runc config of one check. Pure.
 */
import type { ImageRecipe } from './catalog';

/** The parts of an image's config a check needs (`buildah inspect`'s OCIv1.config). */
export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  /** `65532:65532`, `nonroot`, or '' (root). */
  user: string;
  workingDir: string;
}

/** One command run in a fresh container of the image. */
export interface ImageCheck {
  /** Names the check in progress lines and errors: `--help`, `iptables-restore`… */
  name: string;
  /** The whole argv; or `args` after the image's ENTRYPOINT. */
  argv?: string[];
  args?: string[];
  env?: Record<string, string>;
  /** Exit code expected (default 0). */
  exit?: number;
  /** What stdout (or, for `stderr`, stderr) must match. */
  stdout?: RegExp;
  stderr?: RegExp;
  /**
   * `signal`: the container keeps running (pause); the check waits until runc reports it running,
   * sends SIGTERM and expects the exit code.
   */
  mode?: 'run' | 'signal';
}

/**
 * Capabilities a check grants, as the charts add them: net apps get NET_ADMIN and NET_RAW,
 * wireguard-go (kilo-agent's sidecar) NET_ADMIN.
 */
export function checkCapabilities(recipe: ImageRecipe): string[] {
  if (recipe.kind === 'net') return ['CAP_NET_ADMIN', 'CAP_NET_RAW'];
  return recipe.kind === 'wireguard-go' ? ['CAP_NET_ADMIN'] : [];
}

/**
 * What a check's container gets besides its root and /tmp, as the chart gives it: wireguard-go the
 * host's /dev/net/tun and a writable /var/run/wireguard (its UAPI sockets, an emptyDir in the chart).
 */
export function checkExtras(recipe: ImageRecipe): { tun: boolean; tmpfs: string[] } {
  return recipe.kind === 'wireguard-go'
    ? { tun: true, tmpfs: ['/var/run/wireguard'] }
    : { tun: false, tmpfs: [] };
}

/**
 * Node run inside a node image: who it runs as, how many CA certificates it can read (the first one
 * parsed), that /tmp (the charts' emptyDir, here a tmpfs) is writable, and which native add-ons of
 * /app load. Prints one line: `user=nonroot uid=65532 certs=146 tmp=ok addons=a.node,b.node`.
 */
export const NODE_RUNTIME_PROBE = [
  "const fs=require('fs'),os=require('os'),crypto=require('crypto');",
  "const pem=fs.readFileSync('/etc/ssl/certs/ca-certificates.crt','utf8');",
  "const certs=pem.split('-----BEGIN CERTIFICATE-----').length-1;",
  "new crypto.X509Certificate(pem.slice(pem.indexOf('-----BEGIN CERTIFICATE-----')));",
  "const t=os.tmpdir()+'/probe';fs.writeFileSync(t,'ok');",
  "const addons=fs.readdirSync('/app').filter(f=>f.endsWith('.node')).sort();",
  "for(const a of addons)require('/app/'+a);",
  'const u=os.userInfo();',
  "console.log(`user=${u.username} uid=${u.uid} certs=${certs} tmp=${fs.readFileSync(t,'utf8')} addons=${addons.join(',')}`);",
].join('');

/** Writes what the fake connector writes after an accepted heartbeat, then runs `/connectorctl health`. */
const FAKE_HEARTBEAT_THEN_HEALTH = [
  "require('fs').writeFileSync(process.env.FAKE_CONNECTOR_HEALTH_FILE,JSON.stringify({pid:1,at:Date.now()}));",
  "const r=require('child_process').spawnSync('/connectorctl',['health'],{stdio:'inherit'});",
  'process.exit(r.status===null?1:r.status);',
].join('');

/**
 * The checks of an image: every app answers `--help` with its usage; a node image's runtime
 * (user, CA certificates, /tmp, native add-ons `addons`, the *.node files of its bundle folder);
 * a net image's tools, each as the apps call them, in the container's own network namespace;
 * capi-packet generates a cluster with the bundled clusterctl components; connector-init's
 * busybox makes a FIFO; pause starts and exits 0 on SIGTERM; busybox runs a shell.
 */
export function imageChecks(recipe: ImageRecipe, addons: readonly string[] = []): ImageCheck[] {
  const checks: ImageCheck[] = [];
  if (recipe.kind === 'node' || recipe.kind === 'net') {
    checks.push({
      name: '--help',
      args: ['--help'],
      stdout: new RegExp(`^Usage: ${recipe.name} `, 'm'),
    });
  }
  if (recipe.kind === 'node') {
    checks.push({
      name: 'node runtime',
      argv: ['/nodejs/bin/node', '-e', NODE_RUNTIME_PROBE],
      stdout: new RegExp(
        `^user=nonroot uid=65532 certs=[1-9]\\d{2,} tmp=ok addons=${[...addons].sort().map(escapeRegExp).join(',')}$`,
        'm',
      ),
    });
  }
  if (recipe.name === 'capi-packet') {
    checks.push({
      name: 'generate',
      args: ['generate', '--out', '/tmp/packet', '--cluster-name', 'image-check'],
      env: { PACKET_PROJECT_ID: '00000000-0000-4000-8000-000000000000', PACKET_API_KEY: 'image-check' },
      stdout: /^wrote \/tmp\/packet\/components\.yaml /m,
    });
  }
  if (recipe.name === 'connector-init') {
    checks.push({
      name: 'busybox mkfifo',
      argv: ['/bin/busybox', 'sh', '-c', 'busybox mkfifo /tmp/fifo && test -p /tmp/fifo && echo fifo-ok'],
      stdout: /^fifo-ok$/m,
    });
  }
  if (recipe.kind === 'net') {
    const restore = (bin: string) =>
      `printf '*filter\\n:KNET-CHECK - [0:0]\\n-A KNET-CHECK -j RETURN\\nCOMMIT\\n' | ${bin}-restore -w 5 --noflush && ${bin} -w 5 -S KNET-CHECK`;
    checks.push(
      { name: 'ip', argv: ['ip', '-j', 'link', 'show'], stdout: /"ifname":"lo"/ },
      { name: 'bridge', argv: ['bridge', '-j', 'link', 'show'], stdout: /^\[.*\]$/m },
      {
        name: 'iptables-restore',
        argv: ['sh', '-c', restore('iptables')],
        stdout: /^-A KNET-CHECK -j RETURN$/m,
      },
      {
        name: 'ip6tables-restore',
        argv: ['sh', '-c', restore('ip6tables')],
        stdout: /^-A KNET-CHECK -j RETURN$/m,
      },
      { name: 'sysctl', argv: ['sysctl', '-n', 'net.ipv4.ip_forward'], stdout: /^[01]$/m },
      {
        name: 'ping',
        argv: ['sh', '-c', 'ip link set lo up && ping -c 1 -W 2 127.0.0.1'],
        stdout: /1 packets transmitted, 1 received/,
      },
      { name: 'wg', argv: ['wg', '--version'], stdout: /^wireguard-tools v\d/m },
      { name: 'wg show', argv: ['wg', 'show', 'all', 'dump'] },
    );
  }
  if (recipe.kind === 'fake-connector') {
    // The TEST stand-in: /connectord refuses to start without a token pair, as nonroot on a
    // read-only root; /connectorctl health (a #! node script: no shell) fails before a heartbeat
    // and passes after one.
    checks.push(
      { name: 'connectord without tokens', args: [], exit: 2, stderr: /^fake-connector: usage: /m },
      {
        name: 'connectorctl health before a heartbeat',
        argv: ['/connectorctl', 'health'],
        exit: 1,
        stderr: /^unhealthy: no heartbeat recorded/m,
      },
      {
        name: 'connectorctl health after a heartbeat',
        argv: ['/nodejs/bin/node', '-e', FAKE_HEARTBEAT_THEN_HEALTH],
        env: { FAKE_CONNECTOR_HEALTH_FILE: '/tmp/health' },
        stdout: /^healthy: last accepted heartbeat \d+ ms ago$/m,
      },
    );
  }
  if (recipe.kind === 'pause') {
    checks.push(
      { name: '-v', args: ['-v'], stdout: /^pause\.c v\d+\.\d+/m },
      { name: 'SIGTERM', mode: 'signal', stderr: /Shutting down, got signal: Terminated/ },
    );
  }
  if (recipe.kind === 'wireguard-go') {
    checks.push(
      { name: '--version', args: ['wireguard-go', '--version'], stdout: /^wireguard-go v\d+\.\d+\.\d+/m },
      {
        // Daemon mode: the first process creates the TUN device and the UAPI socket, hands both to
        // its child and exits 0 (1 when either fails), so exit 0 means both worked.
        name: 'device',
        args: ['wireguard-go', 'wg0'],
        env: { LOG_LEVEL: 'verbose' },
        stdout: /Starting wireguard-go version/,
      },
    );
  }
  if (recipe.kind === 'busybox') {
    checks.push(
      { name: 'sh', argv: ['sh', '-c', 'echo ok'], stdout: /^ok$/m },
      {
        name: 'applets',
        argv: ['sh', '-c', 'ls /bin/ls /usr/bin/wget && wget --help 2>&1 | head -1'],
        stdout: /BusyBox v/,
      },
    );
  }
  return checks;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The argv of a check: its own, or its args as a pod's `args` (after the image's ENTRYPOINT, in
 * place of its CMD; with no ENTRYPOINT the args are the whole command), or the image's default.
 */
export function checkArgv(check: ImageCheck, config: ImageConfig): string[] {
  if (check.argv) return check.argv;
  const argv = [...config.entrypoint, ...(check.args ?? config.cmd)];
  if (argv.length === 0) throw new Error(`check ${check.name}: the image has neither ENTRYPOINT nor CMD`);
  return argv;
}

/** The uid and gid of an image's USER (`65532:65532`, `65532`, a name looked up in its /etc/passwd, or root). */
export function imageUser(user: string, passwd = '', group = ''): { uid: number; gid: number } {
  if (user === '') return { uid: 0, gid: 0 };
  const [u = '', g] = user.split(':');
  const lookup = (text: string, name: string, field: number): number | undefined => {
    for (const line of text.split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[field] !== undefined && /^\d+$/.test(f[field] as string))
        return Number(f[field]);
    }
    return undefined;
  };
  const uid = /^\d+$/.test(u) ? Number(u) : lookup(passwd, u, 2);
  if (uid === undefined)
    throw new Error(`image user ${JSON.stringify(user)}: no such user in the image's /etc/passwd`);
  let gid: number | undefined;
  if (g === undefined) gid = /^\d+$/.test(u) ? uid : lookup(passwd, u, 3);
  else gid = /^\d+$/.test(g) ? Number(g) : lookup(group, g, 2);
  if (gid === undefined) throw new Error(`image user ${JSON.stringify(user)}: no such group in the image`);
  return { uid, gid };
}

/** A runc config.json, as far as a check touches it. */
export interface RuncSpec {
  process: {
    terminal?: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities?: Record<'bounding' | 'effective' | 'permitted' | 'ambient' | 'inheritable', string[]>;
    noNewPrivileges?: boolean;
    oomScoreAdj?: number;
    [k: string]: unknown;
  };
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: { destination: string; type: string; source: string; options?: string[] }[];
  linux: { namespaces: { type: string; path?: string }[]; [k: string]: unknown };
  [k: string]: unknown;
}

export interface CheckSpecOptions {
  rootfs: string;
  argv: string[];
  config: ImageConfig;
  user: { uid: number; gid: number };
  capabilities: string[];
  env?: Record<string, string>;
  hostname: string;
  /** The host's /dev/net/tun in the container (`c 10:200`), allowed by its device cgroup. */
  tun?: boolean;
  /** More writable tmpfs mounts, owned by the process's user. */
  tmpfs?: string[];
}

/**
 * A check's config from `runc spec`'s default: the argv, the image's env (plus the check's) and
 * user, no terminal, a read-only root with a tmpfs on /tmp (the charts' emptyDir, the user's), only the given
 * capabilities, no new privileges, and fresh namespaces — a network namespace of its own above
 * all (refused otherwise). No oomScoreAdj: setting it needs CAP_SYS_RESOURCE, which root lacks on
 * some machines (runc then fails with "can't get final child's PID from pipe: EOF").
 */
export function checkSpec(defaults: RuncSpec, o: CheckSpecOptions): RuncSpec {
  const spec = structuredClone(defaults);
  const env = new Map<string, string>();
  for (const kv of [...o.config.env, ...Object.entries(o.env ?? {}).map(([k, v]) => `${k}=${v}`)]) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  if (!env.has('PATH')) env.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  const { oomScoreAdj: _dropped, ...process } = spec.process;
  spec.process = {
    ...process,
    terminal: false,
    user: { uid: o.user.uid, gid: o.user.gid },
    args: o.argv,
    env: [...env].map(([k, v]) => `${k}=${v}`),
    cwd: o.config.workingDir || '/',
    capabilities: {
      bounding: [...o.capabilities],
      effective: [...o.capabilities],
      permitted: [...o.capabilities],
      ambient: [],
      inheritable: [],
    },
    noNewPrivileges: true,
  };
  spec.root = { path: o.rootfs, readonly: true };
  spec.hostname = o.hostname;
  const tmpfs = (destination: string, mode: string) => ({
    destination,
    type: 'tmpfs',
    source: 'tmpfs',
    // runc gives the tmpfs the mode of the image's /tmp; owned by the process's user, it is writable as an emptyDir is.
    options: ['nosuid', 'nodev', `mode=${mode}`, `uid=${o.user.uid}`, `gid=${o.user.gid}`, 'size=65536k'],
  });
  spec.mounts = [
    ...spec.mounts.filter((m) => m.destination !== '/tmp'),
    tmpfs('/tmp', '1777'),
    ...(o.tmpfs ?? []).map((d) => tmpfs(d, '0755')),
  ];
  if (o.tun) {
    const tun = { type: 'c', major: 10, minor: 200 };
    const linux = spec.linux as RuncSpec['linux'] & {
      devices?: unknown[];
      resources?: { devices?: unknown[]; [k: string]: unknown };
    };
    linux.devices = [
      ...(linux.devices ?? []),
      { path: '/dev/net/tun', ...tun, fileMode: 0o666, uid: 0, gid: 0 },
    ];
    linux.resources = {
      ...linux.resources,
      devices: [...(linux.resources?.devices ?? []), { allow: true, ...tun, access: 'rwm' }],
    };
  }
  const wanted = ['pid', 'network', 'ipc', 'uts', 'mount'];
  const have = spec.linux.namespaces.filter((n) => !n.path).map((n) => n.type);
  spec.linux.namespaces = [
    ...spec.linux.namespaces.filter((n) => !n.path),
    ...wanted.filter((t) => !have.includes(t)).map((type) => ({ type })),
  ];
  return spec;
}
