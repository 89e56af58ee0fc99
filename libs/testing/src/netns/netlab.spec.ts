import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '@knet/runtime';
import {
  checkNetLabSupport,
  destroyNamespace,
  namespaceOwner,
  NetLab,
  NetLabUnavailableError,
  parseNetnsList,
  sweepStaleNetns,
} from './index';
import { NetLabCommandError } from '../exec';

jest.setTimeout(60_000);

const netnsList = (): string[] => parseNetnsList(execFileSync('ip', ['netns', 'list']).toString());
const rootLinks = (): string[] =>
  (JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as { ifname: string }[])
    .map((l) => l.ifname)
    .sort();
const rootAddrs = (): string => execFileSync('ip', ['-j', 'addr', 'show']).toString();

describe('NetLab', () => {
  let lab: NetLab | undefined;
  afterEach(async () => {
    await lab?.dispose();
    lab = undefined;
  });

  it('links two hosts with a veth, with loopback up and nothing in the root namespace', async () => {
    const linksBefore = rootLinks();
    const addrsBefore = rootAddrs();
    lab = await NetLab.create();
    const a = await lab.addHost('a');
    const b = await lab.addHost('b');
    expect(a.name).toMatch(/^knt-[0-9a-z]+-[0-9a-f]{4}$/);
    expect(a.name.length).toBeLessThanOrEqual(15);
    expect(namespaceOwner(a.name)).toBe(process.pid);
    const link = await lab.link(a, b, {
      a: { address: '192.0.2.1/24' },
      b: { address: ['192.0.2.2/24', '2001:db8::2/64'] },
    });
    expect(link.a.ifname).toBe('eth0');
    expect(await a.ping('127.0.0.1')).toBe(true);
    expect(await a.ping('192.0.2.2')).toBe(true);
    expect(await b.ping('192.0.2.1')).toBe(true);
    expect(await b.ip('-br', 'addr', 'show', 'dev', 'eth0')).toContain('2001:db8::2/64');
    expect(rootLinks()).toEqual(linksBefore);
    expect(rootAddrs()).toEqual(addrsBefore);
    expect(netnsList()).toEqual(expect.arrayContaining([a.name, b.name]));
  });

  it('connects hosts through a switch (a bridge in its own namespace)', async () => {
    lab = await NetLab.create();
    const sw = await lab.addSwitch();
    const hosts = await Promise.all([lab.addHost('x'), lab.addHost('y'), lab.addHost('z')]);
    for (const [i, h] of hosts.entries()) await sw.connect(h, { address: `198.51.100.${i + 1}/24` });
    expect(await sw.ns.ip('-br', 'link', 'show', 'master', 'br0')).toMatch(/p0[\s\S]*p1[\s\S]*p2/);
    expect(await hosts[0]!.ping('198.51.100.3')).toBe(true);
    expect(await hosts[2]!.ping('198.51.100.2')).toBe(true);
  });

  it('dispose kills spawned processes and deletes the namespaces', async () => {
    lab = await NetLab.create();
    const h = await lab.addHost();
    const proc = h.spawn('sh', ['-c', 'echo started; exec sleep 600']);
    await proc.waitForOutput(/started/);
    expect(proc.running).toBe(true);
    expect((await h.exec('ip', ['netns', 'identify', String(proc.pid)])).stdout).toBeDefined();
    const names = lab.namespaceNames;
    await lab.dispose();
    expect(proc.running).toBe(false);
    expect(() => process.kill(proc.pid, 0)).toThrow();
    for (const n of names) expect(netnsList()).not.toContain(n);
    await expect(h.exec('true')).rejects.toThrow(/already disposed/);
  });

  it('gives private-mount hosts their own /var/run/wireguard', async () => {
    lab = await NetLab.create();
    const a = await lab.addHost('a', { privateMounts: true });
    const b = await lab.addHost('b', { privateMounts: true });
    expect(a.commandPrefix[0]).toBe('nsenter');
    await a.exec('sh', ['-c', 'echo hi > /var/run/wireguard/marker']);
    expect((await a.exec('cat', ['/var/run/wireguard/marker'])).stdout).toBe('hi\n');
    expect((await b.exec('ls', ['-A', '/var/run/wireguard'])).stdout).toBe('');
    expect(spawnSync('test', ['-e', '/var/run/wireguard/marker']).status).not.toBe(0);
    expect((await a.exec('findmnt', ['-n', '-o', 'FSTYPE', '/var/run/wireguard'])).stdout.trim()).toBe(
      'tmpfs',
    );
    expect(spawnSync('findmnt', ['-n', '/var/run/wireguard']).status).not.toBe(0); // no mount in the root namespace
    // still the host's network namespace
    expect(await a.ip('netns', 'identify')).toContain(a.name);
  });

  it('sweeps namespaces whose owner died, and keeps live ones', async () => {
    lab = await NetLab.create();
    const live = await lab.addHost();
    const dead = spawnSync('true').pid;
    const stale = `knt-${dead.toString(36)}-beef`;
    execFileSync('ip', ['netns', 'add', stale]);
    try {
      const removed = await sweepStaleNetns();
      expect(removed).toContain(stale);
      expect(removed).not.toContain(live.name);
      expect(netnsList()).not.toContain(stale);
      expect(netnsList()).toContain(live.name);
    } finally {
      spawnSync('ip', ['netns', 'del', stale]);
    }
  });

  it('reports failed commands in one line', async () => {
    lab = await NetLab.create();
    const h = await lab.addHost();
    const err = await h.exec('ip', ['link', 'del', 'nosuch']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetLabCommandError);
    expect(errorMessage(err)).toMatch(
      /^ip netns exec knt-\S+ ip link del nosuch failed \(exit 1\): Cannot find device "nosuch"$/,
    );
    const missing = await h.exec('no-such-binary-knt').catch((e: unknown) => e);
    expect(errorMessage(missing)).not.toContain('\n');
  });
});

describe('cleanup when a run dies without dispose()', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'knt-spec-'));
    writeFileSync(
      join(dir, 'crash.ts'),
      `import { NetLab } from ${JSON.stringify(join(__dirname, 'index'))};
(async () => {
  const lab = await NetLab.create();
  const h = await lab.addHost('x', { privateMounts: true });
  h.spawn('sleep', ['600']);
  console.log(JSON.stringify(lab.namespaceNames));
  if (process.argv[2] === 'exit') process.exit(3);
})();
`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const tsx = join(__dirname, '../../../../node_modules/.bin/tsx');

  it.each(['exit', 'SIGTERM', 'SIGINT'])('removes namespaces and processes on %s', async (how) => {
    const child = spawn(tsx, [join(dir, 'crash.ts'), how === 'exit' ? 'exit' : 'wait'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const names = await new Promise<string[]>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve(JSON.parse(out) as string[]);
      });
      child.on('error', reject);
    });
    expect(names).toHaveLength(1);
    const ownerAlive = how !== 'exit';
    if (ownerAlive) {
      expect(netnsList()).toContain(names[0]);
      child.kill(how as NodeJS.Signals);
    }
    const code = await new Promise<number | null>((resolve) =>
      child.on('close', (c, s) => resolve(c ?? (s ? -1 : null))),
    );
    // tsx relays the signal to the script and exits 128+n itself
    expect(code).toBe({ exit: 3, SIGTERM: 143, SIGINT: 130 }[how]);
    expect(netnsList()).not.toContain(names[0]);
    expect(spawnSync('pgrep', ['-f', `^sleep 600$`]).stdout.toString()).toBe('');
  });
});

it("destroyNamespace refuses namespaces that are not the harness's", async () => {
  await expect(destroyNamespace('production')).rejects.toThrow(/refusing to destroy "production"/);
  await expect(destroyNamespace('knt-../x')).rejects.toThrow(/refusing/);
});

describe('checkNetLabSupport', () => {
  it('refuses non-root with one clear line', async () => {
    const err = await checkNetLabSupport({ uid: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetLabUnavailableError);
    expect(errorMessage(err)).toBe('network tests need root and iproute2 (ip netns): running as uid 1000');
  });

  it('refuses when ip is missing with one clear line', async () => {
    const err = await checkNetLabSupport({ uid: 0, ip: '/nonexistent/ip' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetLabUnavailableError);
    expect(errorMessage(err)).toMatch(
      /^network tests need root and iproute2 \(ip netns\): .*command not found/,
    );
    expect(errorMessage(err)).not.toContain('\n');
  });
});
