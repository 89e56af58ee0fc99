import { generateWireGuardKeyPair, generateWireGuardPresharedKey } from '@knet/crypto';
import { NetLab } from '@knet/testing';
import {
  AddressSet,
  CommandError,
  createFakeHostNet,
  describeDrift,
  FdbSet,
  RouteTable,
  RuleSet,
  VxlanDevice,
  WireGuardDevice,
  ZERO_MAC,
  type HostNet,
  type RouteSpec,
  type RuleSpec,
  type SetResult,
  type StateDrift,
  type WgConfig,
  type WgInterfaceState,
} from '../src';
import { setUpVeth } from './fixtures/lab-net';
import { hostNetFor } from './helpers';

jest.setTimeout(60_000);

type Outcome =
  | { ok: true; value?: unknown }
  | { exitCode: number | undefined; stderr: string; kind: string; command: string };

/**
 * The same script against the kernel (in a namespace) and against the fakes: every step must
 * succeed on both or fail on both with the same exit code, stderr, kind and command line.
 */
const script: [string, (n: HostNet) => Promise<unknown>][] = [
  ['veth', (n) => n.ip.addVeth('v0', 'v1')],
  ['veth again', (n) => n.ip.addVeth('v0', 'v2')],
  ['bridge', (n) => n.ip.addBridge('br0')],
  ['bridge again', (n) => n.ip.addBridge('br0')],
  ['up v0', (n) => n.ip.setLink('v0', { up: true })],
  ['up v1', (n) => n.ip.setLink('v1', { up: true })],
  ['set missing', (n) => n.ip.setLink('nosuch', { up: true })],
  ['master missing', (n) => n.ip.setLink('v1', { master: 'nosuch' })],
  ['get missing', (n) => n.ip.getLink('nosuch')],
  ['delete missing link', (n) => n.ip.deleteLink('nosuch')],
  ['addr', (n) => n.ip.addAddress('v0', '192.0.2.1/24')],
  ['addr again', (n) => n.ip.addAddress('v0', '192.0.2.1/24')],
  ['addr6', (n) => n.ip.addAddress('v0', '2001:db8::1/64', { nodad: true })],
  ['addr6 again', (n) => n.ip.addAddress('v0', '2001:db8::1/64', { nodad: true })],
  ['addr on missing dev', (n) => n.ip.addAddress('nosuch', '192.0.2.5/24')],
  ['del missing addr', (n) => n.ip.deleteAddress('v0', '192.0.2.77/24')],
  ['del missing addr6', (n) => n.ip.deleteAddress('v0', '2001:db8::77/64')],
  ['list addrs of missing dev', (n) => n.ip.listAddresses({ dev: 'nosuch' })],
  ['route', (n) => n.ip.replaceRoute({ dst: '198.51.100.0/24', via: '192.0.2.2' })],
  [
    'routes',
    async (n) =>
      (await n.ip.listRoutes()).map((r) =>
        [r.dst, r.gateway ?? '', r.dev ?? '', r.table, r.protocol ?? ''].join(' '),
      ),
  ],
  ['route unreachable gw', (n) => n.ip.replaceRoute({ dst: '203.0.113.0/24', via: '198.18.0.1' })],
  ['route no dev/via', (n) => n.ip.replaceRoute({ dst: '203.0.113.0/24' })],
  ['route on down dev', (n) => n.ip.replaceRoute({ dst: '203.0.113.0/24', dev: 'br0' })],
  ['del missing route', (n) => n.ip.deleteRoute({ dst: '203.0.113.0/24' })],
  ['del route in missing table', (n) => n.ip.deleteRoute({ dst: '198.51.100.0/24', table: 77 })],
  ['list missing table', (n) => n.ip.listRoutes({ table: 78 })],
  ['rule', (n) => n.ip.addRule({ priority: 1000, from: '192.0.2.0/24', table: 100 })],
  ['rule again', (n) => n.ip.addRule({ priority: 1000, from: '192.0.2.0/24', table: 100 })],
  ['rule auto priority', (n) => n.ip.addRule({ table: 101 })],
  ['rules', async (n) => (await n.ip.listRules()).map((r) => `${r.priority} ${r.from} ${r.table ?? ''}`)],
  ['del rule by table', (n) => n.ip.deleteRule({ table: 100 })],
  ['del missing rule', (n) => n.ip.deleteRule({ priority: 4242 })],
  ['suppress rule', (n) => n.ip.addRule({ priority: 50, table: 'main', suppressPrefixLength: 0 })],
  ['suppress rule again', (n) => n.ip.addRule({ priority: 50, table: 'main', suppressPrefixLength: 0 })],
  [
    'rules with suppress',
    async (n) =>
      (await n.ip.listRules())
        .filter((r) => r.priority === 50)
        .map((r) => `${r.priority} ${r.table ?? ''} ${r.suppressPrefixLength ?? '-'}`),
  ],
  ['neigh', (n) => n.ip.replaceNeighbour({ dst: '192.0.2.9', dev: 'v0', lladdr: '02:00:00:00:00:09' })],
  [
    'neighs',
    async (n) =>
      (await n.ip.listNeighbours({ dev: 'v0' })).map(
        (x) => `${x.dst} ${x.lladdr ?? ''} ${x.state.join(',')}`,
      ),
  ],
  ['del neigh', (n) => n.ip.deleteNeighbour({ dst: '192.0.2.9', dev: 'v0' })],
  ['del missing neigh', (n) => n.ip.deleteNeighbour({ dst: '192.0.2.9', dev: 'v0' })],
  [
    'neigh on missing dev',
    (n) => n.ip.replaceNeighbour({ dst: '192.0.2.9', dev: 'nosuch', lladdr: '02:00:00:00:00:09' }),
  ],
  [
    'vxlan',
    (n) => n.ip.addVxlan('vx0', { id: 42, dstPort: 4789, local: '192.0.2.1', dev: 'v0', learning: false }),
  ],
  ['vxlan same vni', (n) => n.ip.addVxlan('vx1', { id: 42, dstPort: 4789 })],
  ['vxlan missing dev', (n) => n.ip.addVxlan('vx2', { id: 43, dstPort: 4789, dev: 'nosuch' })],
  ['fdb append', (n) => n.fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2' })],
  ['fdb append again', (n) => n.fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2' })],
  ['fdb del missing remote', (n) => n.fdb.delete({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.99' })],
  ['fdb del missing mac', (n) => n.fdb.delete({ mac: '02:00:00:00:00:99', dev: 'vx0', dst: '192.0.2.2' })],
  ['fdb on missing dev', (n) => n.fdb.append({ mac: ZERO_MAC, dev: 'nosuch', dst: '192.0.2.2' })],
  [
    'fdb zeros',
    async (n) => (await n.fdb.list({ dev: 'vx0' })).filter((e) => e.mac === ZERO_MAC).map((e) => e.dst),
  ],
  ['sysctl', (n) => n.sysctl.get('net.ipv4.ip_forward')],
  ['sysctl per-if', (n) => n.sysctl.get('net.ipv4.conf.v0.forwarding')],
  ['sysctl missing', (n) => n.sysctl.get('net.ipv4.nosuch')],
  ['sysctl missing if', (n) => n.sysctl.get('net.ipv4.conf.nosuch.forwarding')],
  // Route protocols and tables by number or name, scope, the IPv6 default metric, replacing by key.
  [
    'route proto by number',
    (n) => n.ip.replaceRoute({ dst: '203.0.113.0/24', via: '192.0.2.2', table: 1107, protocol: 4 }),
  ],
  [
    'route dev only',
    (n) => n.ip.replaceRoute({ dst: '203.0.113.128/25', dev: 'v0', table: 1107, protocol: 77 }),
  ],
  [
    'route6',
    (n) => n.ip.replaceRoute({ dst: '2001:db8:1::/64', via: '2001:db8::2', table: 1107, protocol: 77 }),
  ],
  ['routes of 1107', (n) => routesOf(n, 1107)],
  [
    'blackhole replaces unicast',
    (n) => n.ip.replaceRoute({ dst: '203.0.113.0/24', type: 'blackhole', table: 1107, protocol: 77 }),
  ],
  [
    'del route of another proto',
    (n) => n.ip.deleteRoute({ dst: '203.0.113.128/25', table: 1107, protocol: 78 }),
  ],
  [
    'del route6 by proto',
    (n) => n.ip.deleteRoute({ dst: '2001:db8:1::/64', family: 'inet6', table: 1107, protocol: 77 }),
  ],
  ['routes of 1107 again', (n) => routesOf(n, 1107)],
  // Rule protocols: part of a rule's identity, and of what `ip rule del` matches.
  ['rule with proto', (n) => n.ip.addRule({ priority: 1107, table: 1107, protocol: 77 })],
  ['same rule without proto', (n) => n.ip.addRule({ priority: 1107, table: 1107 })],
  ['same rule with proto again', (n) => n.ip.addRule({ priority: 1107, table: 1107, protocol: 77 })],
  [
    'rule with full mask',
    (n) => n.ip.addRule({ priority: 1109, fwmark: 0x10, fwmask: 0xffffffff, table: 254, protocol: 4 }),
  ],
  ['rules with proto', (n) => rulesFrom(n, 1107)],
  ['del rule by proto', (n) => n.ip.deleteRule({ priority: 1107, protocol: 77 })],
  ['del rule of another proto', (n) => n.ip.deleteRule({ priority: 1109, protocol: 77 })],
  ['rules after del', (n) => rulesFrom(n, 1107)],
  // FDB remotes: VNI and port are part of what delete matches; a unicast MAC has one remote.
  [
    'fdb with vni and port',
    (n) => n.fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3', vni: 43, port: 4790 }),
  ],
  ['fdb del without vni', (n) => n.fdb.delete({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3' })],
  ['fdb remotes', (n) => remotes(n)],
  [
    'fdb del with vni',
    (n) => n.fdb.delete({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3', vni: 43, port: 4790 }),
  ],
  ['fdb unicast', (n) => n.fdb.append({ mac: '02:00:00:00:00:01', dev: 'vx0', dst: '192.0.2.4' })],
  ['fdb unicast elsewhere', (n) => n.fdb.append({ mac: '02:00:00:00:00:01', dev: 'vx0', dst: '192.0.2.5' })],
  ['fdb remotes again', (n) => remotes(n)],
  // The kernel drops a device's FDB entries with the device: a new vx0 starts empty.
  ['delete vxlan', (n) => n.ip.deleteLink('vx0')],
  [
    'vxlan again',
    (n) => n.ip.addVxlan('vx0', { id: 42, dstPort: 4789, local: '192.0.2.1', dev: 'v0', learning: false }),
  ],
  ['fdb remotes of the new vx0', (n) => remotes(n)],
  ['vxlan without underlay', (n) => n.ip.addVxlan('vx3', { id: 46, dstPort: 4789 })],
  ['its mtu', async (n) => (await n.ip.getLink('vx3')).mtu],
  ['fdb del with no flood list', (n) => n.fdb.delete({ mac: ZERO_MAC, dev: 'vx3', dst: '192.0.2.9' })],
  // Address scopes, and secondaries going with their primary.
  ['link-local address', (n) => n.ip.addAddress('v0', 'fe80::1/64', { nodad: true })],
  [
    'its scope',
    async (n) => (await n.ip.listAddresses({ dev: 'v0' })).find((a) => a.local === 'fe80::1')?.scope,
  ],
  ['secondary', (n) => n.ip.addAddress('v0', '192.0.2.5/24')],
  ['other subnet', (n) => n.ip.addAddress('v0', '198.51.100.1/24')],
  ['del primary', (n) => n.ip.deleteAddress('v0', '192.0.2.1/24')],
  [
    'v4 addresses left',
    async (n) => (await n.ip.listAddresses({ dev: 'v0', family: 'inet' })).map((a) => a.cidr),
  ],
  ['delete veth', (n) => n.ip.deleteLink('v1')],
  ['peer is gone too', async (n) => (await n.ip.findLink('v0')) === undefined],
];

async function routesOf(n: HostNet, table: number): Promise<string[]> {
  const routes = [
    ...(await n.ip.listRoutes({ table })),
    ...(await n.ip.listRoutes({ table, family: 'inet6' })),
  ];
  return routes.map((r) =>
    [r.type, r.dst, r.gateway ?? '-', r.dev ?? '-', r.protocol ?? '-', r.scope ?? '-', r.metric ?? '-'].join(
      ' ',
    ),
  );
}

async function rulesFrom(n: HostNet, priority: number): Promise<string[]> {
  return (await n.ip.listRules())
    .filter((r) => r.priority >= priority && r.priority < 32766)
    .map((r) => [r.priority, r.table, r.protocol ?? '-', r.fwmark ?? '-', r.fwmask ?? '-'].join(' '));
}

async function remotes(n: HostNet): Promise<string[]> {
  return (await n.fdb.list({ dev: 'vx0' }))
    .filter((e) => e.dst)
    .map((e) => [e.mac, e.dst, e.vni ?? '-', e.port ?? '-'].join(' '))
    .sort(); // the kernel lists them in hash order
}

/** Runs `steps` in order, recording each one's value or CommandError (other errors fail the test). */
async function play<T>(
  subject: T,
  steps: readonly (readonly [string, (s: T) => Promise<unknown>])[],
): Promise<[string, Outcome][]> {
  const out: [string, Outcome][] = [];
  for (const [name, step] of steps) {
    try {
      const value = await step(subject);
      out.push([name, value === undefined ? { ok: true } : { ok: true, value }]);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      out.push([
        name,
        // The real command line has the `ip netns exec NAME` (or nsenter) prefix; compare the command itself.
        {
          exitCode: err.exitCode,
          stderr: err.stderr,
          kind: err.kind,
          command: err.commandLine.replace(/^(ip netns exec \S+|nsenter .*? --) /, ''),
        },
      ]);
    }
  }
  return out;
}

let lab: NetLab;
afterAll(async () => {
  await lab?.dispose();
});

it('the fakes behave like the kernel for the common successes and errors', async () => {
  lab ??= await NetLab.create();
  const host = await lab.addHost('parity');
  const real = await play(hostNetFor(host).net, script);
  const fake = await play(createFakeHostNet(), script);
  expect(fake).toEqual(real);
  // Sanity: the script exercised both outcomes.
  expect(real.filter(([, o]) => 'kind' in o).length).toBeGreaterThan(20);
});

/** The drivers over one HostNet, as kilo-agent and pod-gateway would hold them. */
function drivers(net: HostNet) {
  return {
    net,
    routes: new RouteTable(net.ip, { table: 1107, protocol: 77 }),
    rules: new RuleSet(net.ip, { protocol: 77 }),
    addresses: new AddressSet(net.ip, { dev: 'v1', family: 'inet', nodad: true }),
    device: new AddressSet(net.ip, { dev: 'v1', nodad: true }),
    fdb: new FdbSet(net.fdb, { dev: 'vx0', owned: ['192.0.2.0/24'] }),
    vxlan: new VxlanDevice(net.ip, { name: 'vx0' }),
  };
}
type Drivers = ReturnType<typeof drivers>;

const lines = async (result: Promise<SetResult | StateDrift[]>): Promise<string[]> => {
  const r = await result;
  return (Array.isArray(r) ? r : r.drift).map(describeDrift);
};

const A: RouteSpec = { dst: '198.51.100.0/24', via: '192.0.2.2' };
const B: RouteSpec = { dst: '203.0.113.7/32', dev: 'v0' };
const C6: RouteSpec = { dst: '2001:db8:1::/64', via: '2001:db8::2' };
const SUPPRESS: RuleSpec = { priority: 50, table: 'main', suppressPrefixLength: 0 };
const MARK: RuleSpec = { priority: 1107, fwmark: 0x10, fwmask: 0xff, table: 1107 };
const FROM6: RuleSpec = { priority: 1108, from: '2001:db8::/64', table: 1107 };
const VX = { id: 42, dstPort: 4789, dev: 'v0', learning: false };
const UNICAST = '02:00:00:00:00:01';

const driverScript: [string, (d: Drivers) => Promise<unknown>][] = [
  ['set up', (d) => setUpVeth(d.net)],
  ['routes: set', (d) => lines(d.routes.set([A, B, C6]))],
  ['routes: again', (d) => lines(d.routes.set([A, B, C6]))],
  [
    'routes: foreign ones',
    async (d) => {
      await d.net.ip.replaceRoute({
        dst: '198.51.100.128/25',
        via: '192.0.2.9',
        table: 1107,
        protocol: 'static',
      });
      await d.net.ip.replaceRoute({ dst: '203.0.113.0/24', via: '192.0.2.9', table: 1108, protocol: 77 });
    },
  ],
  [
    'routes: change',
    (d) =>
      lines(
        d.routes.set([
          { ...A, via: '192.0.2.3' },
          { ...B, src: '192.0.2.1' },
          { dst: '203.0.113.8', type: 'blackhole' },
        ]),
      ),
  ],
  [
    'routes: drift after a foreign delete',
    async (d) => {
      await d.net.ip.deleteRoute({ dst: A.dst, table: 1107, protocol: 77 });
      return lines(d.routes.drift());
    },
  ],
  [
    'routes: owned',
    async (d) => (await d.routes.owned()).map((r) => `${r.type} ${r.dst} ${r.gateway ?? '-'}`),
  ],
  ['routes: an unreachable gateway', (d) => d.routes.set([{ dst: '203.0.113.0/24', via: '198.18.0.1' }])],
  ['routes: cleanup', (d) => lines(d.routes.cleanup())],
  [
    'routes: foreign ones left',
    async (d) => [...(await routesOf(d.net, 1107)), ...(await routesOf(d.net, 1108))],
  ],
  ['rules: the same rule, foreign', (d) => d.net.ip.addRule(SUPPRESS)],
  ['rules: set', (d) => lines(d.rules.set([SUPPRESS, MARK, FROM6]))],
  ['rules: again', (d) => lines(d.rules.set([SUPPRESS, MARK, FROM6]))],
  ['rules: change', (d) => lines(d.rules.set([SUPPRESS, { ...MARK, table: 1108 }]))],
  ['rules: owned', async (d) => (await d.rules.owned()).map((r) => `${r.family} ${r.priority} ${r.table}`)],
  ['rules: cleanup', (d) => lines(d.rules.cleanup())],
  ['rules: foreign left', async (d) => (await d.net.ip.listRules()).map((r) => `${r.priority} ${r.table}`)],
  ['addresses: foreign IPv6', (d) => d.net.ip.addAddress('v1', '2001:db8::9/64', { nodad: true })],
  ['addresses: set', (d) => lines(d.addresses.set(['192.0.2.5/24', '192.0.2.6/24']))],
  ['addresses: the primary goes', (d) => lines(d.addresses.set(['192.0.2.6/24']))],
  ['addresses: the whole device', (d) => lines(d.device.set(['192.0.2.6/24', '2001:db8::9/64']))],
  ['addresses: the whole device again', (d) => lines(d.device.drift())],
  ['addresses: cleanup', (d) => lines(d.addresses.cleanup())],
  ['addresses: left', async (d) => (await d.device.owned()).map((a) => a.cidr)],
  ['vxlan: set', (d) => lines(d.vxlan.set(VX))],
  ['vxlan: again', (d) => lines(d.vxlan.set(VX))],
  ['vxlan: mtu', (d) => lines(d.vxlan.set({ ...VX, mtu: 1400 }))],
  ['vxlan: new VNI', (d) => lines(d.vxlan.set({ ...VX, id: 43, mtu: 1400 }))],
  ['vxlan: down', (d) => lines(d.vxlan.set({ ...VX, id: 43, mtu: 1400, up: false }))],
  [
    'vxlan: link',
    async (d) => {
      const l = await d.net.ip.getLink('vx0');
      return [l.kind, l.up, l.mtu, l.vxlan];
    },
  ],
  ['fdb: foreign', (d) => d.net.fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '198.51.100.9' })],
  ['fdb: set', (d) => lines(d.fdb.set([{ dst: '192.0.2.2' }, { mac: UNICAST, dst: '192.0.2.2' }]))],
  ['fdb: move', (d) => lines(d.fdb.set([{ dst: '192.0.2.3', vni: 44, port: 4790 }]))],
  ['fdb: again', (d) => lines(d.fdb.set([{ dst: '192.0.2.3', vni: 44, port: 4790 }]))],
  ['fdb: entries', (d) => remotes(d.net)],
  ['fdb: cleanup', (d) => lines(d.fdb.cleanup())],
  ['fdb: foreign left', (d) => remotes(d.net)],
  ['vxlan: cleanup', (d) => lines(d.vxlan.cleanup())],
  ['vxlan: gone', async (d) => (await d.net.ip.findLink('vx0')) === undefined],
  ['ping: loopback', (d) => d.net.ping.ping('127.0.0.1')],
  ['ping: own address', (d) => d.net.ping.ping('192.0.2.1')],
  ['ping: own address from its device', (d) => d.net.ping.ping('192.0.2.1', { device: 'v0' })],
  ['ping: IPv6 loopback', (d) => d.net.ping.ping('::1')],
  ['ping: a silent neighbour', (d) => d.net.ping.ping('192.0.2.9')],
  ['ping: no route', (d) => d.net.ping.ping('203.0.113.1')],
  ['ping: no route, from a device', (d) => d.net.ping.ping('203.0.113.1', { device: 'v0' })],
  ['ping: no IPv6 route, from a device', (d) => d.net.ping.ping('2001:db8:9::1', { device: 'v0' })],
  ['ping: a missing device', (d) => d.net.ping.ping('192.0.2.2', { device: 'nosuch' })],
  [
    'ping: a down device',
    async (d) => {
      await d.net.ip.addBridge('dn0');
      return d.net.ping.ping('192.0.2.2', { device: 'dn0' });
    },
  ],
];

it('the drivers give the same results on the kernel and on the fakes', async () => {
  lab ??= await NetLab.create();
  const host = await lab.addHost('drivers');
  const real = await play(drivers(hostNetFor(host).net), driverScript);
  const fake = await play(drivers(createFakeHostNet()), driverScript);
  expect(fake).toEqual(real);
  const value = (name: string) => real.find(([n]) => n === name)?.[1];
  // Spot checks of what the drivers must do, on the kernel.
  expect(value('routes: again')).toEqual({ ok: true, value: [] });
  expect(value('routes: foreign ones left')).toEqual({
    ok: true,
    value: [
      'unicast 198.51.100.128/25 192.0.2.9 v0 static - -',
      'unicast 203.0.113.0/24 192.0.2.9 v0 77 - -',
    ],
  });
  expect(value('rules: foreign left')).toMatchObject({ value: expect.arrayContaining(['50 main']) });
  expect(value('addresses: the whole device again')).toEqual({ ok: true, value: [] });
  expect(value('addresses: left')).toEqual({ ok: true, value: ['2001:db8::9/64'] });
  expect(value('fdb: foreign left')).toEqual({ ok: true, value: ['00:00:00:00:00:00 198.51.100.9 - -'] });
  expect(value('ping: own address')).toEqual({ ok: true, value: { answered: true, attempts: 1 } });
});

const me = generateWireGuardKeyPair();
const peer = generateWireGuardKeyPair();
const psk = generateWireGuardPresharedKey();

function shown(s: WgInterfaceState): unknown {
  return {
    mine: s.publicKey === me.publicKey,
    listenPort: s.listenPort === 51820 ? 51820 : 'another',
    fwmark: s.fwmark,
    peers: s.peers.map((p) => [
      p.publicKey === peer.publicKey,
      p.hasPresharedKey,
      p.endpoint,
      p.allowedIps,
      p.persistentKeepalive,
    ]),
  };
}

const FULL: WgConfig = {
  privateKey: me.privateKey,
  listenPort: 51820,
  fwmark: 0x20,
  peers: [
    {
      publicKey: peer.publicKey,
      presharedKey: psk,
      endpoint: '[2001:DB8::0:2]:51821',
      allowedIps: ['198.51.100.2/24', '2001:DB8::1/64'],
      persistentKeepalive: 25,
    },
  ],
};

const wgScript: [string, (d: { net: HostNet; device: WireGuardDevice }) => Promise<unknown>][] = [
  ['create', (d) => d.net.wg.createInterface('wg0')],
  ['syncconf everything', (d) => d.net.wg.syncconf('wg0', FULL)],
  ['shown', async (d) => shown(await d.net.wg.show('wg0'))],
  [
    'syncconf without port, preshared key and keepalive',
    (d) =>
      d.net.wg.syncconf('wg0', {
        privateKey: me.privateKey,
        peers: [{ publicKey: peer.publicKey, allowedIps: ['198.51.100.2/32'] }],
      }),
  ],
  ['shown again', async (d) => shown(await d.net.wg.show('wg0'))],
  [
    'keepalive off',
    (d) => d.net.wg.set('wg0', { peers: [{ publicKey: peer.publicKey, persistentKeepalive: 0 }] }),
  ],
  ['shown once more', async (d) => shown(await d.net.wg.show('wg0'))],
  ['set on a missing device', (d) => d.net.wg.set('wg7', { listenPort: 1 })],
  ['show a missing device', (d) => d.net.wg.show('wg7')],
  ['device: set', (d) => lines(d.device.set({ ...FULL, mtu: 1400 }))],
  ['device: again', (d) => lines(d.device.set({ ...FULL, mtu: 1400 }))],
  [
    'device: keepalive off, preshared key gone, IPv4 only',
    (d) =>
      lines(
        d.device.set({
          ...FULL,
          mtu: 1400,
          peers: [
            {
              ...FULL.peers[0]!,
              presharedKey: undefined,
              persistentKeepalive: 0,
              allowedIps: ['198.51.100.2/32'],
            },
          ],
        }),
      ),
  ],
  ['device: drift', (d) => lines(d.device.drift())],
  ['device: shown', async (d) => shown(await d.net.wg.show('wg1'))],
  ['device: link', async (d) => [(await d.net.ip.getLink('wg1')).mtu, (await d.net.ip.getLink('wg1')).up]],
  ['device: cleanup', (d) => lines(d.device.cleanup())],
  ['device: gone', async (d) => (await d.net.ip.findLink('wg1')) === undefined],
  ['delete wg0', (d) => d.net.wg.deleteInterface('wg0')],
];

it('the WireGuard fake and WireGuardDevice behave the same on wg (kernel or wireguard-go) and on the fakes', async () => {
  lab ??= await NetLab.create();
  const host = await lab.addHost('wg', { privateMounts: true });
  const net = hostNetFor(host).net;
  const real = await play({ net, device: new WireGuardDevice(net, { name: 'wg1' }) }, wgScript);
  const impl = real[0]?.[1];
  const fakeNet = createFakeHostNet({
    kernelWireGuard: impl !== undefined && 'value' in impl && impl.value === 'kernel',
  });
  const fake = await play({ net: fakeNet, device: new WireGuardDevice(fakeNet, { name: 'wg1' }) }, wgScript);
  expect(fake).toEqual(real);
  // What wg does, on the real one: masked allowed IPs, and syncconf keeps a kept peer's preshared
  // key, endpoint and keepalive, but sets a new port without ListenPort and clears the fwmark.
  expect(real.find(([n]) => n === 'shown')?.[1]).toMatchObject({
    value: { peers: [[true, true, '[2001:db8::2]:51821', ['198.51.100.0/24', '2001:db8::/64'], 25]] },
  });
  expect(real.find(([n]) => n === 'shown again')?.[1]).toEqual({
    ok: true,
    value: {
      mine: true,
      listenPort: 'another',
      fwmark: null,
      peers: [[true, true, '[2001:db8::2]:51821', ['198.51.100.2/32'], 25]],
    },
  });
  expect(real.find(([n]) => n === 'device: again')?.[1]).toEqual({ ok: true, value: [] });
  expect(real.find(([n]) => n === 'device: drift')?.[1]).toEqual({ ok: true, value: [] });
});
