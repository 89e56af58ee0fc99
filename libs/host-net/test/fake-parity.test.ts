import { NetLab } from '@knet/testing';
import { CommandError, createFakeHostNet, ZERO_MAC, type HostNet } from '../src';
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
  ['delete veth', (n) => n.ip.deleteLink('v1')],
  ['peer is gone too', async (n) => (await n.ip.findLink('v0')) === undefined],
];

async function play(net: HostNet): Promise<[string, Outcome][]> {
  const out: [string, Outcome][] = [];
  for (const [name, step] of script) {
    try {
      const value = await step(net);
      out.push([name, value === undefined ? { ok: true } : { ok: true, value }]);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      out.push([
        name,
        // The real command line has the `ip netns exec NAME` prefix; compare the command itself.
        {
          exitCode: err.exitCode,
          stderr: err.stderr,
          kind: err.kind,
          command: err.commandLine.replace(/^ip netns exec \S+ /, ''),
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
  lab = await NetLab.create();
  const host = await lab.addHost('parity');
  const real = await play(hostNetFor(host).net);
  const fake = await play(createFakeHostNet());
  expect(fake).toEqual(real);
  // Sanity: the script exercised both outcomes.
  expect(real.filter(([, o]) => 'kind' in o).length).toBeGreaterThan(20);
});
