import { decodeApiError } from '@knet/k8s';
import { KEY_ANNOTATION, LOCATION_ANNOTATION } from '@knet/kilo';
import { FakeKiloApi, clusterView } from './cluster';

const KEY = Buffer.alloc(32, 1).toString('base64');

describe('clusterView', () => {
  it('translates Nodes with the topology label and drops invalid Peers, as Kilo’s backend', () => {
    const view = clusterView(
      [
        { name: 'a', podCIDR: '10.2.1.0/24', labels: { zone: 'z1' }, annotations: { [KEY_ANNOTATION]: KEY } },
        { name: 'b', labels: { zone: 'z1' }, annotations: { [LOCATION_ANNOTATION]: 'mine' } },
      ],
      [
        { metadata: { name: 'good' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: KEY } },
        { metadata: { name: 'bad' }, spec: { allowedIPs: ['nope'], publicKey: KEY } },
      ],
      'zone',
      42,
    );
    expect(view.now).toBe(42);
    expect(view.nodes.map((n) => [n.name, n.location, n.subnet, n.key])).toEqual([
      ['a', 'z1', '10.2.1.0/24', KEY],
      ['b', 'mine', undefined, undefined],
    ]);
    expect(view.peers.map((p) => p.name)).toEqual(['good']);
  });
});

async function codeOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return decodeApiError(e).code;
  }
}

describe('FakeKiloApi', () => {
  it('fails like the API server: 409 on a second create, 404 on deleting a missing Peer', async () => {
    const api = new FakeKiloApi();
    const peer = { metadata: { name: 'p' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: KEY } };
    await api.createPeer(peer);
    expect(await codeOf(api.createPeer(peer))).toBe(409);
    await api.deletePeer('p');
    expect(await codeOf(api.deletePeer('p'))).toBe(404);
    expect(await api.getPeer('p')).toBeUndefined();
  });

  it('lists by name and reports changes until the watch stops', async () => {
    const api = new FakeKiloApi();
    let changes = 0;
    const stop = api.watch(() => changes++);
    api.setNode({ name: 'b' });
    api.setNode({ name: 'a' });
    stop();
    api.setNode({ name: 'c' });
    expect(changes).toBe(2);
    expect((await api.listNodes()).map((n) => n.name)).toEqual(['a', 'b', 'c']);
  });
});
