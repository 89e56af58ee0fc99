import { IMAGES, type ImageRecipe } from './catalog';
import { containerConfig, judge } from './checks';
import {
  checkArgv,
  checkCapabilities,
  checkExtras,
  checkSpec,
  imageChecks,
  imageUser,
  type ImageConfig,
  type RuncSpec,
} from './checks-plan';

const recipe = (name: string) => IMAGES[name] as ImageRecipe;

/** The parts of `runc spec`'s default a check changes, plus what it must drop or keep. */
const defaults: RuncSpec = {
  ociVersion: '1.0.2-dev',
  process: {
    terminal: true,
    user: { uid: 0, gid: 0 },
    args: ['sh'],
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
    cwd: '/',
    capabilities: {
      bounding: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
      effective: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
      permitted: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
      ambient: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
      inheritable: [],
    },
    rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
    noNewPrivileges: true,
    oomScoreAdj: -100,
  },
  root: { path: 'rootfs', readonly: true },
  hostname: 'runc',
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/tmp', type: 'bind', source: '/tmp', options: ['rbind'] },
  ],
  linux: {
    namespaces: [{ type: 'pid' }, { type: 'network', path: '/proc/1/ns/net' }, { type: 'mount' }],
    maskedPaths: ['/proc/kcore'],
  },
};

const nodeConfig: ImageConfig = {
  entrypoint: ['/nodejs/bin/node', '--enable-source-maps', '/app/main.js'],
  cmd: [],
  env: ['PATH=/nodejs/bin:/usr/bin', 'NODE_ENV=production'],
  user: '65532:65532',
  workingDir: '',
};

describe('imageChecks', () => {
  it.each(
    Object.values(IMAGES)
      .filter((r) => r.kind === 'node' || r.kind === 'net')
      .map((r) => [r.name, r]),
  )('%s answers --help with its own usage', (_n, r) => {
    const help = imageChecks(r).find((c) => c.name === '--help');
    expect(help?.args).toEqual(['--help']);
    expect(help?.stdout?.test(`Usage: ${r.name} [options]\n`)).toBe(true);
    expect(help?.stdout?.test('Usage: other [options]\n')).toBe(false);
  });

  it('checks a net image’s tools in its own network namespace, with the capabilities the charts grant', () => {
    const checks = imageChecks(recipe('gateway-init'));
    expect(checks.map((c) => c.name)).toEqual([
      '--help',
      'ip',
      'bridge',
      'iptables-restore',
      'ip6tables-restore',
      'sysctl',
      'ping',
      'wg',
      'wg show',
    ]);
    expect(checks.find((c) => c.name === 'iptables-restore')?.argv?.join(' ')).toMatch(
      /iptables-restore -w 5 --noflush && iptables -w 5 -S KNET-CHECK/,
    );
    expect(checkCapabilities(recipe('kilo-agent'))).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect(checkCapabilities(recipe('tower-proxy'))).toEqual([]);
  });

  it('expects a node image to load exactly the native add-ons of its bundle folder', () => {
    const probe = imageChecks(recipe('tower-proxy'), ['sshcrypto-X.node']).find(
      (c) => c.name === 'node runtime',
    );
    expect(probe?.stdout?.test('user=nonroot uid=65532 certs=146 tmp=ok addons=sshcrypto-X.node')).toBe(true);
    expect(probe?.stdout?.test('user=nonroot uid=65532 certs=146 tmp=ok addons=')).toBe(false);
    expect(probe?.stdout?.test('user=root uid=0 certs=146 tmp=ok addons=sshcrypto-X.node')).toBe(false);
    expect(probe?.stdout?.test('user=nonroot uid=65532 certs=3 tmp=ok addons=sshcrypto-X.node')).toBe(false);
    const plain = imageChecks(recipe('gateway-webhook')).find((c) => c.name === 'node runtime');
    expect(plain?.stdout?.test('user=nonroot uid=65532 certs=146 tmp=ok addons=')).toBe(true);
  });

  it('has the image-specific checks: generate, busybox mkfifo, pause on SIGTERM, busybox sh', () => {
    expect(imageChecks(recipe('capi-packet')).map((c) => c.name)).toContain('generate');
    expect(imageChecks(recipe('connector-init')).map((c) => c.name)).toContain('busybox mkfifo');
    const pause = imageChecks(recipe('pause'));
    expect(
      pause.find((c) => c.mode === 'signal')?.stderr?.test('Shutting down, got signal: Terminated\n'),
    ).toBe(true);
    expect(imageChecks(recipe('busybox')).map((c) => c.argv)).toContainEqual(['sh', '-c', 'echo ok']);
  });

  it('checks the fake connector stand-in’s entrypoint and /connectorctl health, not as an app', () => {
    const checks = imageChecks(recipe('fake-connector'));
    expect(checks.map((c) => c.name)).toEqual([
      'connectord without tokens',
      'connectorctl health before a heartbeat',
      'connectorctl health after a heartbeat',
    ]);
    const [entry, before, after] = checks;
    expect(checkArgv(entry!, { ...nodeConfig, entrypoint: ['/connectord'] })).toEqual(['/connectord']);
    expect([
      entry?.exit,
      entry?.stderr?.test('fake-connector: usage: fake-connector.mjs <tenant url>'),
    ]).toEqual([2, true]);
    expect([before?.argv, before?.exit]).toEqual([['/connectorctl', 'health'], 1]);
    expect(after?.env).toEqual({ FAKE_CONNECTOR_HEALTH_FILE: '/tmp/health' });
    expect(after?.stdout?.test('healthy: last accepted heartbeat 3 ms ago\n')).toBe(true);
    expect(after?.stdout?.test('unhealthy: last accepted heartbeat 9000 ms ago\n')).toBe(false);
    expect(checkCapabilities(recipe('fake-connector'))).toEqual([]);
  });
});

describe('checkArgv', () => {
  it('runs args after the ENTRYPOINT, an argv of its own, or the CMD', () => {
    expect(checkArgv({ name: 'h', args: ['--help'] }, nodeConfig)).toEqual([
      ...nodeConfig.entrypoint,
      '--help',
    ]);
    expect(checkArgv({ name: 'x', argv: ['ip', 'link'] }, nodeConfig)).toEqual(['ip', 'link']);
    expect(checkArgv({ name: 'c' }, { ...nodeConfig, entrypoint: [], cmd: ['sh'] })).toEqual(['sh']);
    // No ENTRYPOINT: args replace the CMD, as a pod's args do (the wireguard-go image).
    expect(
      checkArgv(
        { name: 'a', args: ['wireguard-go', 'wg0'] },
        { ...nodeConfig, entrypoint: [], cmd: ['wireguard-go', '--version'] },
      ),
    ).toEqual(['wireguard-go', 'wg0']);
    expect(checkArgv({ name: 'e' }, { ...nodeConfig, entrypoint: ['/pause'], cmd: ['-v'] })).toEqual([
      '/pause',
      '-v',
    ]);
    expect(() => checkArgv({ name: 'none' }, { ...nodeConfig, entrypoint: [], cmd: [] })).toThrow(
      'check none: the image has neither ENTRYPOINT nor CMD',
    );
  });
});

describe('imageUser', () => {
  const passwd = 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n';
  const group = 'root:x:0:\nnonroot:x:65532:\nstaff:x:50:\n';
  it.each([
    ['', { uid: 0, gid: 0 }],
    ['65532:65532', { uid: 65532, gid: 65532 }],
    ['65535', { uid: 65535, gid: 65535 }],
    ['nonroot', { uid: 65532, gid: 65532 }],
    ['nonroot:staff', { uid: 65532, gid: 50 }],
  ])('%j', (user, ids) => {
    expect(imageUser(user, passwd, group)).toEqual(ids);
  });
  it('refuses a user or group the image does not have', () => {
    expect(() => imageUser('nobody', passwd, group)).toThrow(/no such user/);
    expect(() => imageUser('0:wheel', passwd, group)).toThrow(/no such group/);
  });
});

describe('checkSpec', () => {
  const spec = checkSpec(defaults, {
    rootfs: '/var/x/rootfs',
    argv: ['ip', '-j', 'link', 'show'],
    config: nodeConfig,
    user: { uid: 65532, gid: 65532 },
    capabilities: ['CAP_NET_ADMIN', 'CAP_NET_RAW'],
    env: { PACKET_API_KEY: 'k', NODE_ENV: 'test' },
    hostname: 'kilo-agent',
  });

  it('runs the argv as the image’s user with the image’s env and the check’s on top, no terminal', () => {
    expect(spec.process.args).toEqual(['ip', '-j', 'link', 'show']);
    expect(spec.process.user).toEqual({ uid: 65532, gid: 65532 });
    expect(spec.process.env).toEqual(['PATH=/nodejs/bin:/usr/bin', 'NODE_ENV=test', 'PACKET_API_KEY=k']);
    expect(spec.process.terminal).toBe(false);
    expect(spec.hostname).toBe('kilo-agent');
    expect(spec.process.rlimits).toEqual(defaults.process.rlimits);
  });

  it('sets no oomScoreAdj (root may lack CAP_SYS_RESOURCE) and grants only the given capabilities', () => {
    expect('oomScoreAdj' in spec.process).toBe(false);
    expect(spec.process.capabilities?.bounding).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect(spec.process.capabilities?.effective).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect(spec.process.capabilities?.ambient).toEqual([]);
    expect(spec.process.noNewPrivileges).toBe(true);
  });

  it('gives the container a read-only root, a writable /tmp and namespaces of its own, never the host’s', () => {
    expect(spec.root).toEqual({ path: '/var/x/rootfs', readonly: true });
    const tmp = spec.mounts.filter((m) => m.destination === '/tmp');
    expect(tmp).toEqual([
      expect.objectContaining({ type: 'tmpfs', options: expect.arrayContaining(['uid=65532', 'gid=65532']) }),
    ]);
    expect(spec.linux.namespaces).toEqual(
      expect.arrayContaining([
        { type: 'network' },
        { type: 'pid' },
        { type: 'mount' },
        { type: 'uts' },
        { type: 'ipc' },
      ]),
    );
    expect(spec.linux.namespaces.some((n) => n.path)).toBe(false);
    expect(defaults.linux.namespaces[1]).toEqual({ type: 'network', path: '/proc/1/ns/net' }); // not changed
  });

  it('defaults PATH when the image sets none', () => {
    const s = checkSpec(defaults, {
      rootfs: '/r',
      argv: ['/pause'],
      config: { ...nodeConfig, env: [] },
      user: { uid: 65535, gid: 65535 },
      capabilities: [],
      hostname: 'pause',
    });
    expect(s.process.env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    expect(s.process.cwd).toBe('/');
  });
});

describe('the wireguard-go image’s checks', () => {
  const wg = recipe('wireguard-go');
  const config: ImageConfig = { ...nodeConfig, entrypoint: [], cmd: ['wireguard-go', '--version'], user: '' };

  it('creates a device in its own namespace with NET_ADMIN, the host’s TUN and a writable /var/run/wireguard, as the chart gives it', () => {
    expect(checkCapabilities(wg)).toEqual(['CAP_NET_ADMIN']);
    expect(checkExtras(wg)).toEqual({ tun: true, tmpfs: ['/var/run/wireguard'] });
    const device = imageChecks(wg).find((c) => c.name === 'device');
    expect(checkArgv(device!, config)).toEqual(['wireguard-go', 'wg0']);
    const s = checkSpec(defaults, {
      rootfs: '/r',
      argv: ['wireguard-go', 'wg0'],
      config,
      user: { uid: 0, gid: 0 },
      capabilities: checkCapabilities(wg),
      hostname: 'wireguard-go',
      ...checkExtras(wg),
    });
    const linux = s.linux as { devices?: unknown[]; resources?: { devices?: unknown[] } };
    expect(linux.devices).toEqual([
      { path: '/dev/net/tun', type: 'c', major: 10, minor: 200, fileMode: 0o666, uid: 0, gid: 0 },
    ]);
    expect(linux.resources?.devices?.at(-1)).toEqual({
      allow: true,
      type: 'c',
      major: 10,
      minor: 200,
      access: 'rwm',
    });
    expect(s.mounts.filter((m) => m.destination === '/var/run/wireguard')).toEqual([
      expect.objectContaining({ type: 'tmpfs', options: expect.arrayContaining(['uid=0', 'mode=0755']) }),
    ]);
  });

  it('gives no other image a device or an extra mount', () => {
    for (const name of ['kilo-agent', 'pause', 'busybox', 'tower-proxy'])
      expect(checkExtras(recipe(name))).toEqual({ tun: false, tmpfs: [] });
    const s = checkSpec(defaults, {
      rootfs: '/r',
      argv: ['/pause'],
      config: nodeConfig,
      user: { uid: 65535, gid: 65535 },
      capabilities: [],
      hostname: 'pause',
    });
    expect((s.linux as { devices?: unknown[] }).devices).toEqual(
      (defaults.linux as { devices?: unknown[] }).devices,
    );
  });
});

describe('judge', () => {
  const check = { name: 'wg', stdout: /^wireguard-tools v\d/m };
  it.each([
    [
      {
        exitCode: 0,
        stdout: 'wireguard-tools v1.0.20210914 - https://git.zx2c4.com/wireguard-tools/\n',
        stderr: '',
      },
      '',
    ],
    [
      { exitCode: 127, stdout: '', stderr: 'exec: "wg": executable file not found in $PATH' },
      /^exit 127, expected 0; stderr: exec: "wg"/,
    ],
    [{ exitCode: 0, stdout: 'wg 1.0', stderr: '' }, /^stdout does not match .*: wg 1\.0$/],
    [{ exitCode: null, stdout: '', stderr: '', timedOut: true }, /time limit/],
  ])('%j', (r, expected) => {
    if (expected === '') expect(judge(check, r)).toBe('');
    else expect(judge(check, r)).toMatch(expected);
  });
  it('checks stderr and another exit code when told', () => {
    expect(
      judge({ name: 's', exit: 0, stderr: /got signal/ }, { exitCode: 0, stdout: '', stderr: 'nothing' }),
    ).toMatch(/stderr does not match/);
    expect(judge({ name: 'e', exit: 2 }, { exitCode: 2, stdout: '', stderr: '' })).toBe('');
  });
});

describe('containerConfig', () => {
  it('reads the OCI config of buildah inspect', () => {
    const json = JSON.stringify({
      OCIv1: { config: { Entrypoint: ['/pause'], User: '65535:65535', Env: ['PATH=/bin'] } },
    });
    expect(containerConfig(json)).toEqual({
      entrypoint: ['/pause'],
      cmd: [],
      env: ['PATH=/bin'],
      user: '65535:65535',
      workingDir: '',
    });
  });
});
