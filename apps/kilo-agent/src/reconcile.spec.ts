import { createFakeHostNet, type FakeHostNet } from '@knet/host-net';
import { generateWireGuardKeyPair } from '@knet/crypto';
import { KG_CLEANUP_ANNOTATIONS, LEADER_PROBE_ANNOTATION } from '@knet/kilo';
import { RecordingLogger, createMetricsRegistry } from '@knet/runtime';
import { FakeCluster } from './cluster';
import { Datapath, ROUTE_PROTOCOL } from './datapath';
import { createAgentMetrics, type AgentMetrics } from './metrics';
import { Agent, type AgentOptions } from './reconcile';

const NOW = 1_700_000_000;
const self = generateWireGuardKeyPair();
const west = generateWireGuardKeyPair();
const peerKey = generateWireGuardKeyPair();

const options: AgentOptions = {
  plan: {
    granularity: 'location',
    subnet: '198.51.100.192/27',
    serviceCIDRs: [],
    stableWireGuardIPs: true,
    strategy: 'never',
    compatibility: '',
    local: true,
    cni: false,
    iptablesForwardRules: false,
    iface: 'kilo0',
    mtu: 1420,
  },
  topologyLabel: 'topology.kubernetes.io/region',
  resyncMs: 30_000,
  checkInMs: 30_000,
  debounceMs: 1,
  probeIntervalMs: 0,
  probe: { failures: 3, holdSeconds: 60, graceSeconds: 10 },
};

/** west-1 as a running Kilo kg publishes it. */
function kiloNode(now: number) {
  return {
    name: 'west-1',
    podCIDR: '203.0.113.32/28',
    labels: {},
    annotations: {
      'kilo.squat.ai/location': 'west',
      'kilo.squat.ai/endpoint': '192.0.2.71:51820',
      'kilo.squat.ai/internal-ip': '192.0.2.71/26',
      'kilo.squat.ai/key': west.publicKey,
      'kilo.squat.ai/last-seen': String(now),
      'kilo.squat.ai/wireguard-ip': '198.51.100.194/27',
      'kilo.squat.ai/granularity': 'location',
      'kilo.squat.ai/discovered-endpoints': '{}',
    },
  };
}

async function setup(o: { now?: number; shutdownGraceMs?: number } = {}) {
  const net: FakeHostNet = createFakeHostNet({ kernelWireGuard: false });
  await net.ip.addVeth('eth0', 'peer0');
  await net.ip.addAddress('eth0', '192.0.2.11/26');
  await net.ip.setLink('eth0', { up: true });
  const cluster = new FakeCluster();
  cluster.setNode({
    name: 'east-1',
    podCIDR: '203.0.113.0/28',
    labels: {},
    annotations: { 'kilo.squat.ai/location': 'east', 'kilo.squat.ai/force-internal-ip': '192.0.2.11/26' },
  });
  cluster.setNode(kiloNode(o.now ?? NOW));
  const logger = new RecordingLogger();
  const metrics = createAgentMetrics(createMetricsRegistry({ defaultMetrics: false }));
  const datapath = new Datapath(net, { iface: 'kilo0', createInterface: true });
  const agent = new Agent({
    cluster,
    datapath,
    facts: {
      hostname: 'east-1',
      publicKey: self.publicKey,
      privateKey: self.privateKey,
      externalIP: '192.0.2.11/26',
      internalIP: '192.0.2.11/26',
      privateInterface: 'eth0',
      port: 51820,
      granularity: 'location',
    },
    options,
    resolve: async (name) => {
      throw new Error(`cannot resolve ${name}`);
    },
    ping: async () => true,
    now: () => o.now ?? NOW,
    logger,
    metrics,
    shutdownGraceMs: o.shutdownGraceMs,
  });
  return { net, cluster, agent, logger, metrics, datapath };
}

describe('Agent.pass', () => {
  it('publishes the local node as kg does, then meshes with a real Kilo node', async () => {
    const { cluster, agent, net } = await setup();
    const first = await agent.pass();
    expect(first?.ready).toBe(true);
    const a = cluster.nodeMap.get('east-1')?.annotations ?? {};
    expect(a).toMatchObject({
      'kilo.squat.ai/endpoint': '192.0.2.11:51820',
      'kilo.squat.ai/internal-ip': '192.0.2.11/26',
      'kilo.squat.ai/key': self.publicKey,
      'kilo.squat.ai/last-seen': String(NOW),
      'kilo.squat.ai/granularity': 'location',
    });
    // The WireGuard IP is published by the pass after the first plan (as Kilo's next check-in).
    await agent.pass();
    expect(cluster.nodeMap.get('east-1')?.annotations?.['kilo.squat.ai/wireguard-ip']).toBe(
      '198.51.100.193/27',
    );

    const dev = await net.wg.show('kilo0');
    expect(dev.listenPort).toBe(51820);
    expect(dev.peers.map((p) => [p.publicKey, p.endpoint, [...p.allowedIps].sort()])).toEqual([
      [west.publicKey, '192.0.2.71:51820', ['192.0.2.71/32', '198.51.100.194/32', '203.0.113.32/28']],
    ]);
    const routes = await net.ip.listRoutes({ table: 'main' });
    expect(
      routes
        .filter((r) => String(r.protocol) === String(ROUTE_PROTOCOL))
        .map((r) => `${r.dst} via ${r.gateway ?? '-'} dev ${r.dev}`),
    ).toEqual(expect.arrayContaining(['203.0.113.32/28 via 198.51.100.194 dev kilo0']));
    expect((await net.ip.getLink('kilo0')).up).toBe(true);
  });

  it('does not run wg syncconf again when nothing changed (every peer compared)', async () => {
    const { agent, net } = await setup();
    await agent.pass();
    await agent.pass();
    const spy = jest.spyOn(net.wg, 'syncconf');
    const third = await agent.pass();
    expect(third?.ready).toBe(true);
    expect(spy).not.toHaveBeenCalled();
  });

  it('ignores a stale Kilo node (last-seen over 60 s ago) and applies without it', async () => {
    const { agent, net, cluster } = await setup();
    // west-1 checked in 61 s before NOW.
    cluster.setNode(kiloNode(NOW - 61));
    await agent.pass();
    const dev = await net.wg.show('kilo0');
    expect(dev.peers).toEqual([]);
  });

  it('turns invalid annotations and Peers into one Event per distinct problem, never a crash', async () => {
    const { cluster, agent, logger } = await setup();
    cluster.setNode({
      ...kiloNode(NOW),
      annotations: { ...kiloNode(NOW).annotations, 'kilo.squat.ai/persistent-keepalive': 'often' },
    });
    cluster.setPeer({
      apiVersion: 'kilo.squat.ai/v1alpha1',
      kind: 'Peer',
      metadata: { name: 'broken' },
      spec: { allowedIPs: ['not-a-cidr'], publicKey: 'nope', persistentKeepalive: 0 },
    });
    expect((await agent.pass())?.ready).toBe(true);
    await agent.pass();
    // One Event per distinct problem (the Peer has two), not one per pass.
    const seen = cluster.events.map((e) => `${e.kind}/${e.name} ${e.type} ${e.reason}`);
    expect([...new Set(seen)].sort()).toEqual([
      'Node/west-1 Warning InvalidAnnotation',
      'Peer/broken Warning InvalidPeer',
    ]);
    expect(cluster.events.filter((e) => e.kind === 'Peer')).toHaveLength(2);
    expect(cluster.events.find((e) => e.kind === 'Node')?.message).toMatch(/persistent-keepalive/);
    expect(logger.lines.filter((l) => l.msg === 'kilo-agent: ignoring an invalid value')).toHaveLength(3);
  });

  it('writes Peer status from the device (knet: Kilo has none)', async () => {
    const { cluster, agent, net } = await setup();
    cluster.setPeer({
      apiVersion: 'kilo.squat.ai/v1alpha1',
      kind: 'Peer',
      metadata: { name: 'laptop' },
      spec: { allowedIPs: ['198.51.100.10/32'], publicKey: peerKey.publicKey, persistentKeepalive: 10 },
    });
    await agent.pass();
    net.wg.recordHandshake('kilo0', peerKey.publicKey, {
      at: new Date((NOW - 5) * 1000),
      rx: 1000,
      tx: 2000,
    });
    await agent.pass();
    const last = cluster.statusWrites.at(-1);
    expect(last).toEqual({
      name: 'laptop',
      status: {
        latestHandshake: new Date((NOW - 5) * 1000).toISOString(),
        receiveBytes: 1000,
        transmitBytes: 2000,
        observedBy: 'east-1',
      },
    });
    // Unchanged counters: no second write.
    const writes = cluster.statusWrites.length;
    await agent.pass();
    expect(cluster.statusWrites.length).toBe(writes);
  });

  it('says once, at info, why it applies nothing while its Node has no pod CIDR (Kilo only logs it at debug)', async () => {
    const { cluster, agent, logger, net } = await setup();
    const node = cluster.nodeMap.get('east-1');
    cluster.setNode({ ...node!, podCIDR: undefined });
    expect((await agent.pass())?.ready).toBe(false);
    expect((await agent.pass())?.ready).toBe(false);
    const said = logger.lines.filter((l) => l.msg === 'kilo-agent: nothing to apply yet');
    expect(said.map((l) => l.level)).toEqual(['info', 'debug']);
    expect(said[0]?.fields['reason']).toBe(
      "local node east-1 is not ready yet: no pod CIDR (the Node's spec.podCIDR: the controller manager's --allocate-node-cidrs sets it)",
    );
    expect(await net.ip.findLink('kilo0')).toBeUndefined();
    // Once it has one, the next pass applies.
    cluster.setNode({ ...cluster.nodeMap.get('east-1')!, podCIDR: '203.0.113.0/28' });
    expect((await agent.pass())?.ready).toBe(true);
  });

  it('keeps going through an API server outage: the failed publish is counted and retried', async () => {
    const { cluster, agent, metrics } = await setup();
    cluster.failAnnotate = 1;
    // The datapath is planned from what the agent knows of itself (Kilo: the computed local node).
    expect((await agent.pass())?.ready).toBe(true);
    expect((await metrics.errors.get()).values.find((v) => v.labels['event'] === 'checkin')?.value).toBe(1);
    expect(cluster.nodeMap.get('east-1')?.annotations?.['kilo.squat.ai/key']).toBeUndefined();
    await agent.pass();
    expect(cluster.nodeMap.get('east-1')?.annotations?.['kilo.squat.ai/key']).toBe(self.publicKey);
  });
});

describe('Agent.run', () => {
  const applyErrors = async (metrics: AgentMetrics) =>
    (await metrics.errors.get()).values.find((v) => v.labels['event'] === 'apply')?.value ?? 0;

  it('a pass that fails just before the shutdown signal (its commands got the same SIGTERM) is no error', async () => {
    const { agent, datapath, logger, metrics } = await setup({ shutdownGraceMs: 50 });
    const stop = new AbortController();
    datapath.apply = async () => {
      setTimeout(() => stop.abort(), 20); // within the grace
      throw new Error('ip -j -4 route show table main failed (killed by SIGTERM)');
    };
    await agent.run(stop.signal);
    expect(logger.messages('error')).toEqual([]);
    expect(logger.messages('debug')).toContain('kilo-agent: pass interrupted by shutdown');
    expect(await applyErrors(metrics)).toBe(0);
  });

  it('a pass that fails with no shutdown following is an error, counted, and the loop goes on', async () => {
    const { agent, datapath, logger, metrics } = await setup({ shutdownGraceMs: 50 });
    const stop = new AbortController();
    datapath.apply = async () => {
      throw new Error('ip link add kilo0 type wireguard failed (exit 2): Unknown device type');
    };
    const running = agent.run(stop.signal);
    try {
      await until(() => logger.messages('error').length > 0, 5000);
      const errors = logger.messages('error');
      expect(new Set(errors)).toEqual(
        new Set(['kilo-agent: apply failed; retrying at the next change or resync']),
      );
      expect(await applyErrors(metrics)).toBeGreaterThanOrEqual(errors.length);
      expect(agent.lastError).toContain('Unknown device type');
    } finally {
      stop.abort();
      await running;
    }
  });

  it('a shutdown that comes during a pass ends the loop at once, not at the next resync (30 s here)', async () => {
    const { cluster, agent, datapath } = await setup();
    const stop = new AbortController();
    const running = agent.run(stop.signal);
    // Settled: its own WireGuard IP published and applied, nothing left to do until the resync.
    await until(
      () =>
        agent.last?.ready === true &&
        cluster.nodeMap.get('east-1')?.annotations?.['kilo.squat.ai/wireguard-ip'] === '198.51.100.193/27',
      5000,
    );
    await new Promise((r) => setTimeout(r, 50));
    const apply = datapath.apply.bind(datapath);
    datapath.apply = async (d) => {
      stop.abort(); // SIGTERM while the pass runs
      return apply(d);
    };
    const passes = agent.passes;
    cluster.setNode({
      ...kiloNode(NOW),
      annotations: { ...kiloNode(NOW).annotations, 'kilo.squat.ai/endpoint': '192.0.2.79:51820' },
    });
    // Before the fix the wait after the pass listened for an abort that had already happened,
    // and run() ended only at the next resync (past this test's 5 s).
    await running;
    expect(agent.passes).toBe(passes + 1);
  });

  it('does not spin while its Node is missing (check-in is periodic, not retried at once)', async () => {
    const { cluster, agent } = await setup();
    cluster.nodeMap.delete('east-1');
    const stop = new AbortController();
    const running = agent.run(stop.signal);
    await new Promise((r) => setTimeout(r, 500));
    stop.abort();
    await running;
    // One pass at start (check-in and resync due), none after: the next is 30 s away.
    expect(agent.passes).toBeLessThanOrEqual(2);
  });

  it('applies a change after the debounce, and publishes its own new WireGuard IP without waiting for a timer', async () => {
    const { cluster, agent } = await setup();
    const stop = new AbortController();
    const running = agent.run(stop.signal);
    try {
      await until(
        () =>
          cluster.nodeMap.get('east-1')?.annotations?.['kilo.squat.ai/wireguard-ip'] === '198.51.100.193/27',
        5000,
      );
      cluster.setNode({
        ...kiloNode(NOW),
        annotations: { ...kiloNode(NOW).annotations, 'kilo.squat.ai/endpoint': '192.0.2.79:51820' },
      });
      await until(
        async () =>
          agent.last?.ready === true &&
          JSON.stringify(agent.last.datapath.wireguard.peers).includes('192.0.2.79:51820'),
        5000,
      );
    } finally {
      stop.abort();
      await running;
    }
  });
});

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Agent.cleanup', () => {
  it('removes routes, rules, chains and the annotations kg owns, and keeps the device by default', async () => {
    const { cluster, agent, net } = await setup();
    await agent.pass();
    await agent.pass();
    expect(await net.iptables.listRules('nat')).toContain('KILO-NAT');
    const errors = await agent.cleanup(false, KG_CLEANUP_ANNOTATIONS);
    expect(errors).toEqual([]);
    expect(await net.iptables.listRules('nat')).not.toContain('KILO-');
    const routes = await net.ip.listRoutes({ table: 'main' });
    expect(routes.filter((r) => String(r.protocol) === String(ROUTE_PROTOCOL))).toEqual([]);
    const a = cluster.nodeMap.get('east-1')?.annotations ?? {};
    for (const k of [...KG_CLEANUP_ANNOTATIONS, LEADER_PROBE_ANNOTATION]) expect(a[k]).toBeUndefined();
    expect(a['kilo.squat.ai/location']).toBe('east');
    expect(await net.ip.findLink('kilo0')).toBeDefined();
    expect(await agent.cleanup(true, KG_CLEANUP_ANNOTATIONS)).toEqual([]);
    expect(await net.ip.findLink('kilo0')).toBeUndefined();
  });
});
