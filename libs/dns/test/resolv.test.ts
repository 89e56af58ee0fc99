// Following resolv.conf: the watcher on real files, and the server switching dnsmasq upstreams
// (and flushing its cache) when a VPN client rewrites the file in place or renames a new one over it.
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep, until } from '@knet/testing';
import { DnsServer, ResolvConfWatcher, type ResolvConf } from '../src';
import { addresses, query, startDnsmasq, type Addr, type Dnsmasq } from './helpers';

jest.setTimeout(60_000);

const NET = '127.0.13';
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'knet-resolv-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('ResolvConfWatcher', () => {
  let watcher: ResolvConfWatcher | undefined;
  afterEach(() => watcher?.stop());

  /** Waits until the watcher's last report has `nameserver` first. */
  const reported = (seen: ResolvConf[], nameserver: string) =>
    until(
      `the watcher to report nameserver ${nameserver}`,
      () => seen.at(-1)?.nameservers[0] === nameserver,
      15_000,
    );

  function watch(path: string, pollMs = 60_000): ResolvConf[] {
    const seen: ResolvConf[] = [];
    watcher = new ResolvConfWatcher({ path, debounceMs: 50, pollMs, onChange: (conf) => seen.push(conf) });
    return seen;
  }

  /** A resolv.conf with nameserver 10.0.0.1, watched and started: its path, the reports, the first read. */
  function watchStarted(pollMs?: number) {
    const path = join(dir, 'resolv.conf');
    writeFileSync(path, 'nameserver 10.0.0.1\n');
    const seen = watch(path, pollMs);
    return { path, seen, first: watcher!.start() };
  }

  it('sees in-place rewrites and renames over the file, through fs.watch alone', async () => {
    const { path, seen, first } = watchStarted();
    expect(first.nameservers).toEqual(['10.0.0.1']);

    writeFileSync(path, 'nameserver 10.0.0.2\n');
    await reported(seen, '10.0.0.2');

    writeFileSync(join(dir, 'resolv.conf.new'), 'nameserver 10.0.0.3\nnameserver fd00::3\n');
    renameSync(join(dir, 'resolv.conf.new'), path);
    await reported(seen, '10.0.0.3');
    expect(watcher!.current.nameservers).toEqual(['10.0.0.3', 'fd00::3']);

    // in place again, on the renamed-in inode
    writeFileSync(path, 'nameserver 10.0.0.4\n');
    await reported(seen, '10.0.0.4');
  });

  it('keeps the last configuration while the file is missing and picks up its return', async () => {
    const { path, seen } = watchStarted(100);
    unlinkSync(path);
    await sleep(300);
    expect(watcher!.current.nameservers).toEqual(['10.0.0.1']);
    writeFileSync(path, 'nameserver 10.0.0.5\n');
    await reported(seen, '10.0.0.5');
  });

  it('reports content changes only, once each', async () => {
    const { path, seen } = watchStarted(100);
    // identical content: no change reported
    writeFileSync(path, 'nameserver 10.0.0.1\n');
    expect(watcher!.check()).toBe(false);
    writeFileSync(path, 'nameserver 10.0.0.6\n');
    await reported(seen, '10.0.0.6');
    expect(seen).toHaveLength(1);
  });

  it('start() throws when the file cannot be read', () => {
    watch(join(dir, 'missing'));
    expect(() => watcher!.start()).toThrow(/ENOENT/);
  });
});

describe('DnsServer following resolv.conf', () => {
  let a: Dnsmasq;
  let b: Dnsmasq;
  let server: DnsServer;
  let addr: Addr;
  let port: number;

  beforeAll(async () => {
    // resolv.conf has no ports: both upstreams listen on the same port, on two addresses
    port = await freePort();
    const start = (n: number) =>
      startDnsmasq(`resolv-${n}`, `${NET}.${n}`, [`--host-record=vpn.test,10.${n}.0.1,3600`], port);
    [a, b] = [await start(1), await start(2)];
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  afterEach(() => server?.stop());

  it('switches upstreams and flushes the cache on in-place and rename rewrites', async () => {
    const path = join(dir, 'resolv.conf');
    // our own listen address is listed too (pod-gateway's clients point at it): it must be skipped
    addr = { address: `${NET}.10`, port };
    writeFileSync(path, `nameserver ${NET}.10\nnameserver ${a.address}\n`);
    server = new DnsServer({
      listen: [addr],
      resolvConfPath: path,
      upstreamPort: port,
      resolvConfDebounceMs: 50,
      resolvConfPollMs: 500,
    });
    await server.start();
    expect(server.upstreams.map((u) => u.address)).toEqual([a.address]);
    expect(addresses(await query(addr, 'vpn.test', 'A'))).toEqual(['10.1.0.1']);
    expect(addresses(await query(addr, 'vpn.test', 'A'))).toEqual(['10.1.0.1']); // cached, TTL 3600
    expect(server.cacheSize).toBe(1);

    // the VPN client rewrites the file in place
    writeFileSync(path, `nameserver ${b.address}\n`);
    await until(
      'vpn.test to resolve to 10.2.0.1',
      async () => (await addressesOf('vpn.test'))[0] === '10.2.0.1',
      15_000,
    );
    expect(server.upstreams.map((u) => u.address)).toEqual([b.address]);

    // and later replaces it by rename
    writeFileSync(join(dir, 'resolv.tmp'), `# VPN down\nnameserver ${a.address}\n`);
    renameSync(join(dir, 'resolv.tmp'), path);
    await until(
      'vpn.test to resolve to 10.1.0.1',
      async () => (await addressesOf('vpn.test'))[0] === '10.1.0.1',
      15_000,
    );
  });

  async function addressesOf(name: string): Promise<string[]> {
    return addresses(await query(addr, name, 'A'));
  }
});
