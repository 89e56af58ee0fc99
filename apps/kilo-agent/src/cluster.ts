import type { KubeConfig, KubernetesListObject, KubernetesObject, V1Node } from '@kubernetes/client-node';
import { CoreV1Api } from '@kubernetes/client-node';
import {
  EventRecorder,
  ResilientInformer,
  isNotFound,
  kubeRequest,
  patchObject,
  type EventType,
} from '@knet/k8s';
import {
  PEER_GROUP,
  PEER_PLURAL,
  PEER_VERSION,
  type NodeInput,
  type PeerResource,
  type PeerStatus,
} from '@knet/kilo';
import type { Logger } from '@knet/runtime';

/**
 * The narrow port between the agent's loops and the Kubernetes API: the Nodes and Peers it
 * watches, the annotations of its own Node, Peer status and Events. `KubeCluster` is the real one
 * (informers, merge patches); `FakeCluster` (tests) behaves the same in memory.
 */
export interface MeshCluster {
  /** Every Node as the informer has it. */
  nodes(): NodeInput[];
  peers(): PeerResource[];
  /** Called after any Node or Peer change. */
  onChange(fn: () => void): void;
  /** Merge-patches annotations of a Node (`null` removes a key). */
  annotateNode(name: string, annotations: Readonly<Record<string, string | null>>): Promise<void>;
  /** Merge-patches a Peer's status sub-resource (knet: Kilo's Peers have no status). */
  setPeerStatus(name: string, status: PeerStatus): Promise<void>;
  /** Records an Event about a Node or a Peer; never throws. */
  event(
    about: { kind: 'Node' | 'Peer'; name: string },
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void>;
}

export const PEERS_PATH = `/apis/${PEER_GROUP}/${PEER_VERSION}/${PEER_PLURAL}`;
const PEER_API_VERSION = `${PEER_GROUP}/${PEER_VERSION}`;

export function nodeInput(n: V1Node): NodeInput {
  return {
    name: n.metadata?.name ?? '',
    ...(n.spec?.podCIDR ? { podCIDR: n.spec.podCIDR } : {}),
    labels: n.metadata?.labels ?? {},
    annotations: n.metadata?.annotations ?? {},
  };
}

/**
 * Kilo refuses to start without its Peer CRD (pkg/k8s/backend.go `peerBackend.Init`); so do we,
 * in one line, instead of a watch that retries a 404 forever.
 */
export async function checkPeerApi(kc: KubeConfig): Promise<void> {
  try {
    await kubeRequest(kc, { method: 'GET', path: `/apis/${PEER_GROUP}/${PEER_VERSION}` });
  } catch (e) {
    if (!isNotFound(e)) throw e;
    throw new Error(
      `the Peer CRD (${PEER_PLURAL}.${PEER_GROUP}) is not installed in this cluster: install charts/kilo-agent (its crds/) or apply Kilo's manifests/crds.yaml`,
    );
  }
}

export class KubeCluster implements MeshCluster {
  private readonly nodeInformer: ResilientInformer<V1Node>;
  private readonly peerInformer: ResilientInformer<PeerResource & KubernetesObject>;
  private readonly listeners: (() => void)[] = [];
  private readonly recorder: EventRecorder;

  constructor(
    private readonly kc: KubeConfig,
    o: { hostname: string; logger: Logger },
  ) {
    const changed = () => {
      for (const fn of this.listeners) fn();
    };
    const core = kc.makeApiClient(CoreV1Api);
    this.recorder = new EventRecorder(kc, 'kilo-agent', { host: o.hostname, logger: o.logger });
    this.nodeInformer = new ResilientInformer<V1Node>({
      kc,
      path: '/api/v1/nodes',
      list: () => core.listNode(),
      onAdd: changed,
      onUpdate: changed,
      onDelete: changed,
      logger: o.logger,
    });
    this.peerInformer = new ResilientInformer<PeerResource & KubernetesObject>({
      kc,
      path: PEERS_PATH,
      list: () =>
        kubeRequest<KubernetesListObject<PeerResource & KubernetesObject>>(kc, {
          method: 'GET',
          path: PEERS_PATH,
        }),
      onAdd: changed,
      onUpdate: changed,
      onDelete: changed,
      logger: o.logger,
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.nodeInformer.start(), this.peerInformer.start()]);
    await Promise.all([this.nodeInformer.synced, this.peerInformer.synced]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.nodeInformer.stop(), this.peerInformer.stop()]);
  }

  /** Both watches are established. */
  get watching(): boolean {
    return this.nodeInformer.watching && this.peerInformer.watching;
  }

  nodes(): NodeInput[] {
    return this.nodeInformer.list().map(nodeInput);
  }

  peers(): PeerResource[] {
    return [...this.peerInformer.list()];
  }

  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  async annotateNode(name: string, annotations: Readonly<Record<string, string | null>>): Promise<void> {
    await patchObject(
      this.kc,
      { apiVersion: 'v1', kind: 'Node', name },
      { metadata: { annotations } },
      'merge',
    );
  }

  async setPeerStatus(name: string, status: PeerStatus): Promise<void> {
    try {
      await patchObject(
        this.kc,
        { apiVersion: PEER_API_VERSION, kind: 'Peer', name, subresource: 'status' },
        { status },
        'merge',
      );
    } catch (e) {
      if (!isNotFound(e)) throw e; // deleted meanwhile
    }
  }

  async event(
    about: { kind: 'Node' | 'Peer'; name: string },
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    const obj =
      about.kind === 'Node'
        ? this.nodeInformer.get(about.name)
        : (this.peerInformer.get(about.name) as KubernetesObject | undefined);
    const ref: KubernetesObject = obj
      ? { ...obj, apiVersion: about.kind === 'Node' ? 'v1' : PEER_API_VERSION, kind: about.kind }
      : {
          apiVersion: about.kind === 'Node' ? 'v1' : PEER_API_VERSION,
          kind: about.kind,
          metadata: { name: about.name },
        };
    await this.recorder.event(ref, type, reason, message);
  }
}

/** In-memory MeshCluster for the loops' unit tests: patches land in the same objects `nodes()` returns. */
export class FakeCluster implements MeshCluster {
  readonly nodeMap = new Map<string, NodeInput>();
  readonly peerMap = new Map<string, PeerResource>();
  readonly events: { kind: string; name: string; type: EventType; reason: string; message: string }[] = [];
  readonly statusWrites: { name: string; status: PeerStatus }[] = [];
  annotateCalls = 0;
  /** Make the next n annotateNode calls fail (an API server outage). */
  failAnnotate = 0;
  private readonly listeners: (() => void)[] = [];

  nodes(): NodeInput[] {
    return [...this.nodeMap.values()].map((n) => ({ ...n, annotations: { ...n.annotations } }));
  }

  peers(): PeerResource[] {
    return [...this.peerMap.values()];
  }

  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  changed(): void {
    for (const fn of this.listeners) fn();
  }

  setNode(node: NodeInput): void {
    this.nodeMap.set(node.name, node);
    this.changed();
  }

  setPeer(peer: PeerResource): void {
    this.peerMap.set(peer.metadata?.name ?? '', peer);
    this.changed();
  }

  async annotateNode(name: string, annotations: Readonly<Record<string, string | null>>): Promise<void> {
    this.annotateCalls++;
    if (this.failAnnotate > 0) {
      this.failAnnotate--;
      throw new Error(`merge patch Node ${name}: connect ECONNREFUSED (fake outage)`);
    }
    const node = this.nodeMap.get(name);
    if (!node) throw Object.assign(new Error(`Node ${name} not found`), { statusCode: 404 });
    const next = { ...node.annotations };
    for (const [k, v] of Object.entries(annotations)) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
    this.nodeMap.set(name, { ...node, annotations: next });
    this.changed();
  }

  async setPeerStatus(name: string, status: PeerStatus): Promise<void> {
    const peer = this.peerMap.get(name);
    if (!peer) return;
    this.statusWrites.push({ name, status });
    this.peerMap.set(name, { ...peer, status: { ...peer.status, ...status } });
  }

  async event(
    about: { kind: 'Node' | 'Peer'; name: string },
    type: EventType,
    reason: string,
    message: string,
  ) {
    this.events.push({ kind: about.kind, name: about.name, type, reason, message });
  }
}
