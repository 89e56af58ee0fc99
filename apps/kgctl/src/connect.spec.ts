import { AddressSet, RouteTable, WireGuardDevice, createFakeHostNet, type FakeHostNet } from '@knet/host-net';
import {
  ENDPOINT_ANNOTATION,
  GRANULARITY_ANNOTATION,
  INTERNAL_IP_ANNOTATION,
  KEY_ANNOTATION,
  LAST_SEEN_ANNOTATION,
  LOCATION_ANNOTATION,
  WIREGUARD_IP_ANNOTATION,
  type NodeInput,
} from '@knet/kilo';
import { RecordingLogger, sleep } from '@knet/runtime';
import { generateWireGuardKeyPair } from '@knet/crypto';
import { FakeKiloApi } from './cluster';
import { runConnect, type ConnectOptions } from './connect';
import { CONNECT_ROUTE_PROTOCOL } from './connect-plan';

const NOW = 1_700_000_000;
const pub = () => generateWireGuardKeyPair().publicKey;

function node(name: string, loc: string, n: number, wg = ''): NodeInput {
  return {
    name,
    podCIDR: `10.2.${n}.0/24`,
    annotations: {
      [KEY_ANNOTATION]: pub(),
      [ENDPOINT_ANNOTATION]: `203.0.113.${n}:51820`,
      [INTERNAL_IP_ANNOTATION]: `192.168.0.${n}/24`,
      [LAST_SEEN_ANNOTATION]: String(NOW),
      [LOCATION_ANNOTATION]: loc,
      [GRANULARITY_ANNOTATION]: 'location',
      [WIREGUARD_IP_ANNOTATION]: wg,
    },
  };
}

interface Bed {
  net: FakeHostNet;
  api: FakeKiloApi;
  abort: AbortController;
  syncs: { ok: boolean; error?: string }[];
  logger: RecordingLogger;
  run: Promise<void>;
}

function start(over: Partial<ConnectOptions> = {}, setup: (api: FakeKiloApi) => void = () => undefined): Bed {
  const net = createFakeHostNet();
  const api = new FakeKiloApi();
  api.setNode(node('a', 'one', 1, '10.4.0.1/16'));
  api.setNode(node('b', 'two', 2, '10.4.0.2/16'));
  setup(api);
  const abort = new AbortController();
  const syncs: Bed['syncs'] = [];
  const logger = new RecordingLogger();
  const keys = generateWireGuardKeyPair();
  const run = runConnect(
    {
      peerName: 'laptop',
      granularity: 'auto',
      port: 51820,
      privateKey: keys.privateKey,
      publicKey: keys.publicKey,
      allowedIP: '10.10.10.10/32',
      allowedIPs: [],
      interface: 'kilo0',
      mtu: 1420,
      persistentKeepalive: 10,
      topologyLabel: 'topology.kubernetes.io/region',
      resyncPeriodMs: 60_000,
      cleanUp: true,
      ...over,
    },
    {
      api,
      drivers: {
        device: new WireGuardDevice(net, { name: 'kilo0' }),
        addresses: new AddressSet(net.ip, { dev: 'kilo0' }),
        routes: new RouteTable(net.ip, { table: 'main', protocol: CONNECT_ROUTE_PROTOCOL }),
      },
      signal: abort.signal,
      logger,
      now: () => NOW,
      onSync: (r) => syncs.push(r),
      shutdownGraceMs: 50,
    },
  );
  const bed = { net, api, abort, syncs, logger, run };
  beds.push(bed);
  return bed;
}

async function until(what: string, fn: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await fn()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The destinations of the routes kgctl owns (its protocol), sorted. */
const routeDsts = async (net: FakeHostNet) =>
  (await net.ip.listRoutes({ table: 'main', family: 'inet' }))
    .filter((r) => String(r.protocol) === String(CONNECT_ROUTE_PROTOCOL))
    .map((r) => r.dst)
    .sort();

const beds: Bed[] = [];
afterEach(async () => {
  for (const bed of beds.splice(0)) {
    bed.abort.abort();
    await bed.run.catch(() => undefined);
  }
});

describe('runConnect (kgctl connect) on host-net fakes', () => {
  it('creates the Peer, syncs interface and routes, resyncs on a change, and removes everything on exit', async () => {
    const bed = start();
    await until('first sync', () => bed.syncs.length > 0);
    expect(bed.syncs[0]).toEqual({ ok: true });
    expect(bed.api.peers.get('laptop')?.spec).toMatchObject({
      allowedIPs: ['10.10.10.10/32'],
      persistentKeepalive: 10,
    });
    const wg = await bed.net.wg.show('kilo0');
    expect(wg.listenPort).toBe(51820);
    expect(wg.peers).toHaveLength(2);
    expect(
      (await bed.net.ip.listAddresses({ dev: 'kilo0' })).map((a) => `${a.local}/${a.prefixLength}`),
    ).toEqual(['10.10.10.10/32']);
    expect(await routeDsts(bed.net)).toEqual(
      ['10.2.1.0/24', '10.2.2.0/24', '10.4.0.1', '10.4.0.2', '192.168.0.1', '192.168.0.2'].sort(),
    );

    bed.api.setNode(node('c', 'three', 3, '10.4.0.3/16'));
    await until('a resync after the change', () => bed.syncs.length > 1);
    await until('the new location routed', async () => (await routeDsts(bed.net)).includes('10.2.3.0/24'));
    expect((await bed.net.wg.show('kilo0')).peers).toHaveLength(3);

    bed.abort.abort();
    await bed.run;
    expect(await routeDsts(bed.net)).toEqual([]);
    expect(await bed.net.ip.findLink('kilo0')).toBeUndefined();
    expect(bed.api.peers.has('laptop')).toBe(false);
    expect(bed.api.calls).toEqual(['create peer laptop', 'delete peer laptop']);
  });

  it('uses an existing Peer as it is and leaves it on exit', async () => {
    const bed = start({}, (api) =>
      api.setPeer({
        metadata: { name: 'laptop' },
        spec: { allowedIPs: ['10.10.10.11/32'], publicKey: pub() },
      }),
    );
    await until('first sync', () => bed.syncs.length > 0);
    bed.abort.abort();
    await bed.run;
    expect(bed.api.calls).toEqual([]);
    expect(bed.api.peers.get('laptop')?.spec.allowedIPs).toEqual(['10.10.10.11/32']);
  });

  it('--clean-up=false leaves the routes, the interface and the Peer', async () => {
    const bed = start({ cleanUp: false });
    await until('first sync', () => bed.syncs.length > 0);
    bed.abort.abort();
    await bed.run;
    expect(await bed.net.ip.findLink('kilo0')).toBeDefined();
    expect((await routeDsts(bed.net)).length).toBeGreaterThan(0);
    expect(bed.api.peers.has('laptop')).toBe(true);
  });

  it.each([
    [
      'once the signal came (wireguard-go stopped by the same Ctrl-C)',
      'ip -4 addr add 10.10.10.10/32 dev kilo0 failed (exit 1): Cannot find device "kilo0"',
      (abort: AbortController) => abort.abort(),
    ],
    [
      'just before the signal arrives (its `ip` killed by the same SIGTERM)',
      'ip -j -4 route show table main failed (killed by SIGTERM)',
      // The signal lands 20 ms after the failure, within the grace (50 ms here).
      (abort: AbortController) => void setTimeout(() => abort.abort(), 20),
    ],
  ])('a sync that fails %s is no error', async (_when, failure, shutDown) => {
    let onSync = () => undefined as void;
    const bed = start({}, (api) => {
      api.listNodes = async () => {
        onSync();
        throw new Error(failure);
      };
    });
    onSync = () => shutDown(bed.abort);
    await bed.run;
    expect(bed.logger.messages('error')).toEqual([]);
    expect(bed.logger.messages('debug')).toContain('sync interrupted by shutdown');
    expect(bed.syncs).toEqual([]);
    expect(bed.api.peers.has('laptop')).toBe(false);
  });

  it('a failed sync is logged and retried; the interface stays up meanwhile', async () => {
    const bed = start({}, (api) => api.nodes.clear());
    await until('first sync', () => bed.syncs.length > 0);
    expect(bed.syncs[0]).toEqual({
      ok: false,
      error: 'could not get any nodes to read the mesh granularity from',
    });
    expect(bed.logger.messages('error')).toContain('failed to sync');
    expect(await bed.net.ip.findLink('kilo0')).toBeDefined();
    bed.api.setNode(node('a', 'one', 1, '10.4.0.1/16'));
    await until('a good sync', () => bed.syncs.some((s) => s.ok));
    bed.abort.abort();
    await bed.run;
  });
});
