import { Watch, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { kubeRequest, statusError, wrapApiError } from '@knet/k8s';
import {
  PEER_GROUP,
  PEER_PLURAL,
  PEER_VERSION,
  translateNode,
  translatePeer,
  type ClusterView,
  type KiloPeer,
  type NodeInput,
  type PeerResource,
} from '@knet/kilo';
import type { Logger } from '@knet/runtime';

/** `/apis/kilo.squat.ai/v1alpha1/peers` (cluster-scoped). */
export const PEERS_PATH = `/apis/${PEER_GROUP}/${PEER_VERSION}/${PEER_PLURAL}`;
export const NODES_PATH = '/api/v1/nodes';

/**
 * What kgctl reads and writes on the API server, and nothing more (Kilo's `Backend` as kgctl uses
 * it). Failures are the API server's (`KubeApiError`: 404 NotFound, 409 AlreadyExists), in the
 * real port and in the fake.
 */
export interface KiloApi {
  /** Every Node, as Kilo reads it, sorted by name (the API server's list order). */
  listNodes(): Promise<NodeInput[]>;
  /** Every Peer, sorted by name. */
  listPeers(): Promise<PeerResource[]>;
  /** The Peer, or undefined when there is none. */
  getPeer(name: string): Promise<PeerResource | undefined>;
  /** Creates a Peer; 409 when one of that name exists. */
  createPeer(peer: PeerResource): Promise<void>;
  /** Deletes a Peer; 404 when there is none. */
  deletePeer(name: string, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` on every change of a Node or a Peer until the returned stop function runs. */
  watch(fn: () => void): () => void;
}

/**
 * The cluster as kgctl's planner reads it: Nodes through Kilo's `translateNode` (with the topology
 * label), Peers through `translatePeer` (invalid ones dropped, as Kilo's backend does).
 */
export function clusterView(
  nodes: readonly NodeInput[],
  peers: readonly PeerResource[],
  topologyLabel: string,
  now: number,
): ClusterView {
  return {
    nodes: nodes.map((n) => translateNode(n, topologyLabel).node),
    peers: peers.map((p) => translatePeer(p).peer).filter((p): p is KiloPeer => p !== undefined),
    now,
  };
}

function byName<T>(name: (t: T) => string): (a: T, b: T) => number {
  return (a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0);
}

/** The real port, over `kubeRequest` and client-node's `Watch`. */
export class KubeKiloApi implements KiloApi {
  constructor(
    private readonly kc: KubeConfig,
    private readonly logger?: Logger,
  ) {}

  async listNodes(): Promise<NodeInput[]> {
    const list = await this.get<{ items: V1Node[] }>('list nodes', NODES_PATH);
    return list.items
      .map((n) => ({
        name: n.metadata?.name ?? '',
        ...(n.spec?.podCIDR ? { podCIDR: n.spec.podCIDR } : {}),
        ...(n.metadata?.labels ? { labels: n.metadata.labels } : {}),
        ...(n.metadata?.annotations ? { annotations: n.metadata.annotations } : {}),
      }))
      .sort(byName((n) => n.name));
  }

  async listPeers(): Promise<PeerResource[]> {
    const list = await this.get<{ items: PeerResource[] }>('list peers', PEERS_PATH);
    return list.items.sort(byName((p) => p.metadata.name));
  }

  async getPeer(name: string): Promise<PeerResource | undefined> {
    try {
      return await kubeRequest<PeerResource>(this.kc, { method: 'GET', path: `${PEERS_PATH}/${name}` });
    } catch (e) {
      const err = wrapApiError(`get peer ${name}`, e);
      if (err.decoded.code === 404) return undefined;
      throw err;
    }
  }

  async createPeer(peer: PeerResource): Promise<void> {
    try {
      await kubeRequest(this.kc, { method: 'POST', path: PEERS_PATH, body: peer });
    } catch (e) {
      throw wrapApiError(`create peer ${peer.metadata.name}`, e);
    }
  }

  async deletePeer(name: string, signal?: AbortSignal): Promise<void> {
    try {
      await kubeRequest(this.kc, {
        method: 'DELETE',
        path: `${PEERS_PATH}/${name}`,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      throw wrapApiError(`delete peer ${name}`, e);
    }
  }

  watch(fn: () => void): () => void {
    const watch = new Watch(this.kc);
    const aborts: AbortController[] = [];
    let stopped = false;
    const follow = (path: string): void => {
      if (stopped) return;
      const restart = (err: unknown) => {
        if (stopped) return;
        if (err) this.logger?.debug({ path, err: String(err) }, 'watch ended; restarting');
        setTimeout(() => follow(path), 1000).unref();
      };
      watch
        .watch(path, {}, () => fn(), restart)
        .then((ac) => {
          if (stopped) ac.abort();
          else aborts.push(ac);
        })
        .catch(restart);
    };
    follow(NODES_PATH);
    follow(PEERS_PATH);
    return () => {
      stopped = true;
      for (const ac of aborts) ac.abort();
    };
  }

  private async get<T>(what: string, path: string): Promise<T> {
    try {
      return await kubeRequest<T>(this.kc, { method: 'GET', path });
    } catch (e) {
      throw wrapApiError(what, e);
    }
  }
}

/** In-memory `KiloApi` that fails like the API server (404, 409) and reports every change. */
export class FakeKiloApi implements KiloApi {
  readonly nodes = new Map<string, NodeInput>();
  readonly peers = new Map<string, PeerResource>();
  private readonly listeners = new Set<() => void>();
  /** Requests seen, e.g. `create peer x`. */
  readonly calls: string[] = [];

  setNode(node: NodeInput): void {
    this.nodes.set(node.name, node);
    this.changed();
  }

  setPeer(peer: PeerResource): void {
    this.peers.set(peer.metadata.name, peer);
    this.changed();
  }

  async listNodes(): Promise<NodeInput[]> {
    return [...this.nodes.values()].sort(byName((n) => n.name));
  }

  async listPeers(): Promise<PeerResource[]> {
    return [...this.peers.values()].sort(byName((p) => p.metadata.name));
  }

  async getPeer(name: string): Promise<PeerResource | undefined> {
    return this.peers.get(name);
  }

  async createPeer(peer: PeerResource): Promise<void> {
    this.calls.push(`create peer ${peer.metadata.name}`);
    if (this.peers.has(peer.metadata.name)) {
      throw wrapApiError(
        `create peer ${peer.metadata.name}`,
        statusError(409, 'AlreadyExists', `peers "${peer.metadata.name}" already exists`),
      );
    }
    this.setPeer(peer);
  }

  async deletePeer(name: string): Promise<void> {
    this.calls.push(`delete peer ${name}`);
    if (!this.peers.delete(name)) {
      throw wrapApiError(`delete peer ${name}`, statusError(404, 'NotFound', `peers "${name}" not found`));
    }
    this.changed();
  }

  watch(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }
}
