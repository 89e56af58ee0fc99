/**
 * Scene `kilo`: a Kilo mesh on the host cluster — four nodes in two locations (east, west), each a
 * network namespace with wireguard-go whose kilo-agent runs from its shipped bundle against the
 * host's kube-apiserver (`KiloMesh`), plus an external Peer `lab-peer` made by `kgctl connect` on a
 * host of the router's peers LAN: kgctl creates the Peer, brings up its own WireGuard interface
 * with the mesh's config and routes, and keeps it in sync.
 *
 * Rows, live: each location's leader (the node publishing `kilo.squat.ai/wireguard-ip`), its
 * WireGuard IP on kilo0 and the handshake ages on its device with the other location and the Peer
 * (after a ping through each); the Peer's latest handshake as kilo-agent writes it in the Peer's
 * status; the ping matrix (every node's pod address from every node, and from the Peer); and
 * `kgctl graph` rendered with Graphviz to `.lab/kilo-graph.svg` and `.png`. The teardown stops
 * kgctl (which deletes its Peer and interface), then the mesh; the Node and Peer objects go with
 * the host cluster.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  KILO_MESH,
  KiloMesh,
  appBundle,
  kiloLocations,
  kiloMeshNodes,
  kiloNodeViews,
  kiloPeerViews,
  oneLine,
  podAddress,
  run,
  startKgctlConnect,
  until,
  type KiloLocationView,
  type KiloNodeView,
} from '@knet/testing';
import { formatAge } from '../display';
import { registerScene, type Row } from '../scene';

/** The Peer `kgctl connect` creates. */
const PEER = 'lab-peer';
const PEER_IP = `${KILO_MESH.peerAddress}/32`;
/**
 * WireGuard's REJECT_AFTER_TIME: no session older than this carries traffic. A handshake older
 * than this right after a ping through the tunnel means the tunnel did not carry it.
 */
const SESSION_MAX_S = 180;
const NODES = kiloMeshNodes(4);
const locations = [...new Set(NODES.map((n) => n.location))].sort();

registerScene({
  name: 'kilo',
  title: `a Kilo mesh on the host: ${NODES.length} nodes in ${locations.length} locations (kilo-agent, wireguard-go), a Peer made by kgctl connect`,
  needs: ['clusters'],
  bundles: ['kilo-agent', 'kgctl'],
  async up(ctx) {
    const { host: cp } = ctx.clusters();
    const kubectl = `kubectl --kubeconfig ${ctx.shownDir}/host.kubeconfig`;
    const kgctlBundle = await appBundle('kgctl');
    // `.lab/kgctl`: the bundle kgctl runs from, for the commands in the rows.
    const kgctlScript = join(ctx.dir, 'kgctl');
    writeFileSync(kgctlScript, `#!/bin/sh\nexec '${process.execPath}' '${kgctlBundle}' "$@"\n`, {
      mode: 0o755,
    });

    ctx.progress('applying the Peer CRD of charts/kilo-agent to the host');
    await KiloMesh.applyCrds(cp);

    ctx.progress(`creating ${NODES.length} node namespaces in locations east and west, a router between`);
    const mesh = await KiloMesh.create({ cp, nodes: NODES, agentArgs: ['--resync-period=10s'] });
    ctx.defer('the Kilo mesh (agents, wireguard-go, namespaces)', () => keepingAlive(mesh.dispose()));
    ctx.progress(`starting kilo-agent on ${NODES.map((n) => n.name).join(', ')}`);
    for (const n of NODES) await mesh.startAgent(n.name);

    ctx.progress('waiting for every pod CIDR to answer from every node');
    await mesh.waitForMatrix(90_000);

    ctx.progress(`starting kgctl connect ${PEER} on the peer host`);
    await mesh.addPeerHost();
    const peer = await startKgctlConnect({ mesh, cp, peerName: PEER, args: ['--resync-period=5s'] });
    ctx.defer(`kgctl connect ${PEER} (deletes its Peer and interface)`, () => peer.stop());
    const peerPrefix = peer.host.commandPrefix.join(' ');

    /** Why kgctl connect is not running, or undefined. */
    const kgctlDown = () =>
      peer.proc.running ? undefined : `kgctl connect exited: ${oneLine(peer.proc.output()).slice(-300)}`;

    /** The pod addresses the Peer cannot ping (`peer→east-1`). */
    const peerUnreachable = async (): Promise<string[]> => {
      const failed: string[] = [];
      for (const n of NODES) {
        if (!(await mesh.ping('peer', podAddress(n.podCIDR), 2))) failed.push(`peer→${n.name}`);
      }
      return failed;
    };

    ctx.progress(`waiting for ${PEER} to reach every pod`);
    const joined = await until(
      () => `${PEER} to reach every pod; kgctl: ${oneLine(peer.proc.output()).slice(-300)}`,
      async () => kgctlDown() ?? ((await peerUnreachable()).length === 0 && 'joined'),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    if (joined !== 'joined') throw new Error(joined);

    ctx.progress(`waiting for kilo-agent to write ${PEER}'s latest handshake into its status`);
    await until(
      `status.latestHandshake of Peer ${PEER}`,
      async () => (await kiloPeerViews(cp)).find((p) => p.name === PEER)?.latestHandshake,
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    const dot = join(ctx.dir, 'kilo.dot');
    const images = { svg: join(ctx.dir, 'kilo-graph.svg'), png: join(ctx.dir, 'kilo-graph.png') };
    /** `kgctl graph` to kilo.dot, rendered by dot when it changed; the DOT text. */
    const renderGraph = async (): Promise<string> => {
      const g = await run(
        process.execPath,
        [kgctlBundle, 'graph', `--kubeconfig=${cp.kubeconfigPath}`, `--subnet=${KILO_MESH.subnet}`],
        { timeoutMs: 30_000 },
      );
      if (g.exitCode !== 0) throw new Error(`kgctl graph exited ${g.exitCode}: ${oneLine(g.stderr)}`);
      const text = `${g.stdout}\n`;
      if (readIfExists(dot) === text && existsNonEmpty(images.svg) && existsNonEmpty(images.png)) return text;
      writeFileSync(dot, text);
      for (const [format, out] of Object.entries(images)) {
        const r = await run('dot', [`-T${format}`, dot, '-o', out], { timeoutMs: 30_000 });
        if (r.exitCode !== 0) {
          throw new Error(
            `dot -T${format} exited ${r.exitCode}: ${oneLine(r.stderr)} (graphviz: npm run setup installs it)`,
          );
        }
      }
      return text;
    };
    ctx.progress(`rendering kgctl graph to ${ctx.shownDir}/kilo-graph.svg and .png`);
    await renderGraph();

    const nodeByKey = (nodes: readonly KiloNodeView[], key: string) => nodes.find((n) => n.key === key)?.name;

    const locationRow = (location: string): Row => {
      const members = NODES.filter((n) => n.location === location);
      const first = members[0];
      const shownLeader = first ? mesh.node(first.name).host.commandPrefix.join(' ') : '';
      return {
        component: `location ${location}`,
        proof: `one leader among ${members.map((n) => n.name).join(', ')} (kilo.squat.ai/wireguard-ip), its WireGuard IP on kilo0; a ping through the tunnel to every other location and to ${PEER}, and fresh handshakes with each`,
        command: `${shownLeader} wg show kilo0; ${kubectl} get nodes -o custom-columns='NAME:.metadata.name,LOCATION:.metadata.annotations.kilo\\.squat\\.ai/location,WIREGUARD-IP:.metadata.annotations.kilo\\.squat\\.ai/wireguard-ip'`,
        async check() {
          const nodes = await kiloNodeViews(cp);
          const locations = kiloLocations(nodes.filter((n) => NODES.some((m) => m.name === n.name)));
          const here = locations.find((l) => l.location === location);
          if (!here) throw new Error(`no node of location ${location} in the cluster`);
          const leader = here.leader;
          const host = mesh.node(leader.name).host;
          const address = (await host.ip('-o', 'addr', 'show', 'dev', 'kilo0')).includes(
            ` ${leader.wireGuardIP} `,
          );
          if (!address)
            throw new Error(`${leader.name}'s kilo0 does not hold its WireGuard IP ${leader.wireGuardIP}`);

          // Traffic through each tunnel first, so a handshake is due if the session had expired.
          const others = locations.filter((l) => l.location !== location);
          const targets: { name: string; key: string; address: string }[] = [
            ...others.map((l) => ({ name: l.leader.name, key: l.leader.key, address: leaderPod(l) })),
          ];
          const thePeer = (await kiloPeerViews(cp)).find((p) => p.name === PEER);
          if (!thePeer) throw new Error(`no Peer ${PEER} in the cluster`);
          targets.push({ name: PEER, key: thePeer.publicKey, address: KILO_MESH.peerAddress });
          for (const t of targets) {
            if (!(await mesh.ping(leader.name, t.address, 2))) {
              throw new Error(`${leader.name} (leader of ${location}) cannot ping ${t.name} at ${t.address}`);
            }
          }
          if ((await mesh.wgDump(leader.name)) === '') throw new Error(`${leader.name} has no kilo0 device`);
          const handshakes = await mesh.handshakes(leader.name);
          const now = Date.now();
          const ages = targets.map((t) => {
            const at = handshakes.get(t.key);
            if (at === undefined)
              throw new Error(`${leader.name}'s kilo0 has no WireGuard peer for ${t.name}`);
            if (at === 0) throw new Error(`${leader.name}'s kilo0 never had a handshake with ${t.name}`);
            const age = now - at * 1000;
            if (age > SESSION_MAX_S * 1000) {
              throw new Error(
                `${leader.name}'s last handshake with ${t.name} was ${formatAge(age)}: no session`,
              );
            }
            return `${t.name} ${formatAge(age)}`;
          });
          // Peers nobody expects on the device (a removed node, a stale peer) are shown, not hidden.
          const unknown = [...handshakes.keys()]
            .filter((key) => !targets.some((t) => t.key === key))
            .map((key) => nodeByKey(nodes, key) ?? key.slice(0, 8));
          if (unknown.length > 0)
            throw new Error(`${leader.name}'s kilo0 has unexpected peers: ${unknown.join(', ')}`);
          const rest = here.members.filter((n) => n.name !== leader.name).map((n) => n.name);
          return `leader ${leader.name} ${leader.wireGuardIP}${rest.length ? ` (+${rest.join(', ')})` : ''}; handshakes: ${ages.join(', ')}`;
        },
      };
    };

    /** The pod address of a location's leader. */
    const leaderPod = (l: KiloLocationView) => {
      const spec = NODES.find((n) => n.name === l.leader.name);
      if (!spec) throw new Error(`node ${l.leader.name} is not a node of the mesh`);
      return podAddress(spec.podCIDR);
    };

    const rows: Row[] = [
      ...locations.map(locationRow),
      {
        component: `peer ${PEER}`,
        proof: `kgctl connect made Peer ${PEER} (${PEER_IP}) and keeps its interface; its latest handshake, as kilo-agent writes it into the Peer's status`,
        command: `${peerPrefix} wg show kilo0; ${kubectl} get peers -o wide`,
        async check() {
          const down = kgctlDown();
          if (down) throw new Error(down);
          const p = (await kiloPeerViews(cp)).find((x) => x.name === PEER);
          if (!p) throw new Error(`no Peer ${PEER} in the cluster`);
          if (p.allowedIPs.join(',') !== PEER_IP) {
            throw new Error(`Peer ${PEER} allows ${p.allowedIPs.join(', ')}, not ${PEER_IP}`);
          }
          const own = await peer.publicKey();
          if (!own) throw new Error(`the peer host has no kilo0 (kgctl connect's interface)`);
          if (own !== p.publicKey) {
            throw new Error(`Peer ${PEER}'s publicKey is not the key of kgctl connect's kilo0`);
          }
          if (!p.latestHandshake) throw new Error(`Peer ${PEER} has no status.latestHandshake`);
          const age = Date.now() - p.latestHandshake.getTime();
          if (age > SESSION_MAX_S * 1000) {
            throw new Error(
              `Peer ${PEER}'s latest handshake was ${formatAge(age)} (observed by ${p.observedBy ?? '?'})`,
            );
          }
          return `${PEER_IP}, latest handshake ${formatAge(age)} (seen by ${p.observedBy ?? '?'} from ${p.endpoint ?? '?'}); kgctl connect pid ${peer.proc.pid}`;
        },
      },
      {
        component: 'ping matrix',
        proof: `every node's pod address from every other node's, and from ${PEER}'s tunnel address (replies must cross the mesh too: the router knows no pod CIDR)`,
        command: `ip netns exec ${mesh.node('east-2').host.name} ping -c1 -I ${podAddress(mesh.node('east-2').spec.podCIDR)} ${podAddress(mesh.node('west-2').spec.podCIDR)}`,
        async check() {
          const down = kgctlDown();
          if (down) throw new Error(down);
          const [nodes, fromPeer] = await Promise.all([mesh.pingMatrix(), peerUnreachable()]);
          const failed = [...nodes, ...fromPeer];
          if (failed.length > 0) throw new Error(`no reply: ${failed.join(', ')}`);
          const pairs = NODES.length * (NODES.length - 1);
          return `${pairs}/${pairs} node→pod pings, ${PEER} → ${NODES.length}/${NODES.length} pods`;
        },
      },
      {
        component: 'kgctl graph',
        proof: `kgctl graph (DOT) names every node, location and ${PEER}; rendered by Graphviz's dot`,
        command: `${ctx.shownDir}/kgctl graph --kubeconfig ${ctx.shownDir}/host.kubeconfig | dot -Tsvg -o ${ctx.shownDir}/kilo-graph.svg`,
        async check() {
          const text = await renderGraph();
          const leaders = kiloLocations(await kiloNodeViews(cp)).map((l) => l.leader.name);
          const missing = [
            ...NODES.filter((n) => !text.includes(`"${n.name}" [`)).map((n) => `node ${n.name}`),
            ...locations
              .filter((l) => !new RegExp(`subgraph "cluster_location_(location:)?${l}"`).test(text))
              .map((l) => `location ${l}`),
            ...(text.includes(`"${PEER}" [`) ? [] : [`peer ${PEER}`]),
            ...leaders.filter((l) => !text.includes(`"${l}"->"${PEER}"`)).map((l) => `edge ${l}→${PEER}`),
          ];
          if (missing.length > 0) throw new Error(`kgctl graph lacks ${missing.join(', ')}`);
          if (!readFileSync(images.svg, 'utf8').includes('<svg')) throw new Error(`${images.svg} is no SVG`);
          const png = readFileSync(images.png);
          if (png.subarray(1, 4).toString('latin1') !== 'PNG') throw new Error(`${images.png} is no PNG`);
          return `${NODES.length} nodes, ${locations.length} locations, ${leaders.length} leaders↔${PEER} → ${ctx.shownDir}/kilo-graph.svg, ${ctx.shownDir}/kilo-graph.png (${Math.ceil(png.length / 1024)} KiB)`;
        },
      },
    ];
    return rows;
  },
});

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function existsNonEmpty(path: string): boolean {
  try {
    return statSync(path).size > 0;
  } catch {
    return false;
  }
}

/**
 * Awaits `p` with the event loop held open. NetLab.dispose waits for the hosts' mount-namespace
 * anchors, whose child handles and kill timers are unref'd: in the lab's own process (no jest
 * around it) the loop could drain there and node would exit 0 half-way through the teardown.
 */
async function keepingAlive<T>(p: Promise<T>): Promise<T> {
  const hold = setInterval(() => undefined, 1_000);
  try {
    return await p;
  } finally {
    clearInterval(hold);
  }
}
