/**
 * The narrow port the reconcilers need to the Kubernetes API: read the provider's and CAPI's
 * objects, patch them, record Events. `KubeStore` is the real driver (@knet/k8s); `FakeStore` an
 * in-memory one for the loops' unit tests, failing like the API server (404 on a missing object,
 * finalizers holding a deleted object until removed).
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import {
  BOOTSTRAP_API_VERSION,
  CAPI_GROUP,
  CAPI_VERSION,
  INFRA_API_VERSION,
  type CapiCluster,
  type CapiMachine,
  type OwnerReference,
  type PacketCluster,
  type PacketKubeadmConfig,
  type PacketMachine,
  type SecretData,
} from '@knet/capi';
import {
  EventRecorder,
  addFinalizer,
  isAlreadyExists,
  isNotFound,
  kubeRequest,
  patchObject,
  removeFinalizer,
  wrapApiError,
  type EventType,
} from '@knet/k8s';

export type ProviderObject = PacketCluster | PacketMachine | PacketKubeadmConfig;

/** A Secret or ConfigMap the provider creates (data base64 for a Secret, plain for a ConfigMap). */
export interface NewObject {
  kind: 'Secret' | 'ConfigMap';
  name: string;
  namespace: string;
  labels?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  type?: string;
  data: Record<string, string>;
}

export interface ProviderStore {
  getPacketCluster(namespace: string, name: string): Promise<PacketCluster | undefined>;
  getPacketMachine(namespace: string, name: string): Promise<PacketMachine | undefined>;
  getCluster(namespace: string, name: string): Promise<CapiCluster | undefined>;
  getMachine(namespace: string, name: string): Promise<CapiMachine | undefined>;
  getPacketKubeadmConfig(namespace: string, name: string): Promise<PacketKubeadmConfig | undefined>;
  /** One key of a Secret, decoded; undefined when the Secret or the key is missing. */
  getSecretValue(namespace: string, name: string, key: string): Promise<string | undefined>;
  /** A Secret's data (base64 values), undefined when missing. */
  getSecret(namespace: string, name: string): Promise<SecretData | undefined>;
  /** A ConfigMap's data, undefined when missing. */
  getConfigMap(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** Creates it; false when it already exists (nothing is overwritten). */
  create(obj: NewObject): Promise<boolean>;
  addFinalizer<T extends ProviderObject>(obj: T, finalizer: string): Promise<T>;
  /** Undefined when the object is gone afterwards. */
  removeFinalizer<T extends ProviderObject>(obj: T, finalizer: string): Promise<T | undefined>;
  /** Merge patch of spec fields and annotations (null deletes an annotation). */
  patch<T extends ProviderObject>(
    obj: T,
    patch: { spec?: Record<string, unknown>; annotations?: Record<string, string | null> },
  ): Promise<T>;
  /** Merge patch of status through the status sub-resource. */
  patchStatus<T extends ProviderObject>(obj: T, status: Record<string, unknown>): Promise<T>;
  event(obj: ProviderObject, type: EventType, reason: string, message: string): Promise<void>;
}

const PLURAL: Record<string, string> = {
  PacketCluster: 'packetclusters',
  PacketMachine: 'packetmachines',
  PacketKubeadmConfig: 'packetkubeadmconfigs',
};
const API_VERSION: Record<string, string> = {
  PacketCluster: INFRA_API_VERSION,
  PacketMachine: INFRA_API_VERSION,
  PacketKubeadmConfig: BOOTSTRAP_API_VERSION,
};

const infraPath = (kind: string, namespace: string, name: string) =>
  `/apis/${API_VERSION[kind]}/namespaces/${encodeURIComponent(namespace)}/${PLURAL[kind]}/${encodeURIComponent(name)}`;
const corePath = (plural: string, namespace: string, name?: string) =>
  `/api/v1/namespaces/${encodeURIComponent(namespace)}/${plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
const capiPath = (plural: string, namespace: string, name: string) =>
  `/apis/${CAPI_GROUP}/${CAPI_VERSION}/namespaces/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(name)}`;

/** The real driver: direct reads (quorum, never a stale cache: a stale read could create a device twice). */
export class KubeStore implements ProviderStore {
  private readonly events: EventRecorder;

  constructor(
    private readonly kc: KubeConfig,
    component = 'capi-packet-manager',
  ) {
    this.events = new EventRecorder(kc, component);
  }

  private async get<T>(path: string, what: string): Promise<T | undefined> {
    try {
      return await kubeRequest<T>(this.kc, { method: 'GET', path });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw wrapApiError(`get ${what}`, e);
    }
  }

  getPacketCluster(namespace: string, name: string) {
    return this.get<PacketCluster>(
      infraPath('PacketCluster', namespace, name),
      `PacketCluster ${namespace}/${name}`,
    );
  }
  getPacketMachine(namespace: string, name: string) {
    return this.get<PacketMachine>(
      infraPath('PacketMachine', namespace, name),
      `PacketMachine ${namespace}/${name}`,
    );
  }
  getCluster(namespace: string, name: string) {
    return this.get<CapiCluster>(capiPath('clusters', namespace, name), `Cluster ${namespace}/${name}`);
  }
  getMachine(namespace: string, name: string) {
    return this.get<CapiMachine>(capiPath('machines', namespace, name), `Machine ${namespace}/${name}`);
  }
  getPacketKubeadmConfig(namespace: string, name: string) {
    return this.get<PacketKubeadmConfig>(
      infraPath('PacketKubeadmConfig', namespace, name),
      `PacketKubeadmConfig ${namespace}/${name}`,
    );
  }
  async getSecretValue(namespace: string, name: string, key: string) {
    const v = (await this.getSecret(namespace, name))?.data?.[key];
    return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
  }
  async getSecret(namespace: string, name: string): Promise<SecretData | undefined> {
    const s = await this.get<{ data?: Record<string, string> }>(
      corePath('secrets', namespace, name),
      `Secret ${namespace}/${name}`,
    );
    return s ? { data: s.data ?? {} } : undefined;
  }
  async getConfigMap(namespace: string, name: string) {
    const c = await this.get<{ data?: Record<string, string> }>(
      corePath('configmaps', namespace, name),
      `ConfigMap ${namespace}/${name}`,
    );
    return c ? (c.data ?? {}) : undefined;
  }
  async create(obj: NewObject): Promise<boolean> {
    const body = {
      apiVersion: 'v1',
      kind: obj.kind,
      metadata: {
        name: obj.name,
        namespace: obj.namespace,
        labels: obj.labels,
        ownerReferences: obj.ownerReferences,
      },
      ...(obj.type ? { type: obj.type } : {}),
      data: obj.data,
    };
    try {
      await kubeRequest(this.kc, {
        method: 'POST',
        path: corePath(obj.kind === 'Secret' ? 'secrets' : 'configmaps', obj.namespace),
        body,
      });
      return true;
    } catch (e) {
      if (isAlreadyExists(e)) return false;
      throw wrapApiError(`create ${obj.kind} ${obj.namespace}/${obj.name}`, e);
    }
  }
  addFinalizer<T extends ProviderObject>(obj: T, finalizer: string): Promise<T> {
    return addFinalizer(this.kc, obj as KubernetesObject, finalizer) as Promise<T>;
  }
  removeFinalizer<T extends ProviderObject>(obj: T, finalizer: string): Promise<T | undefined> {
    return removeFinalizer(this.kc, obj as KubernetesObject, finalizer) as Promise<T | undefined>;
  }
  patch<T extends ProviderObject>(
    obj: T,
    patch: { spec?: Record<string, unknown>; annotations?: Record<string, string | null> },
  ): Promise<T> {
    const body: Record<string, unknown> = {};
    if (patch.spec) body['spec'] = patch.spec;
    if (patch.annotations) body['metadata'] = { annotations: patch.annotations };
    return patchObject<KubernetesObject>(this.kc, refOf(obj), body, 'merge') as Promise<T>;
  }
  patchStatus<T extends ProviderObject>(obj: T, status: Record<string, unknown>): Promise<T> {
    return patchObject<KubernetesObject>(
      this.kc,
      { ...refOf(obj), subresource: 'status' },
      { status },
      'merge',
    ) as Promise<T>;
  }
  event(obj: ProviderObject, type: EventType, reason: string, message: string): Promise<void> {
    return this.events.event(obj as KubernetesObject, type, reason, message);
  }
}

const refOf = (obj: ProviderObject) => ({
  apiVersion: API_VERSION[obj.kind] ?? INFRA_API_VERSION,
  kind: obj.kind,
  namespace: obj.metadata.namespace ?? 'default',
  name: obj.metadata.name,
});

// ---------------------------------------------------------------------------------------------------

export interface RecordedEvent {
  kind: string;
  name: string;
  type: EventType;
  reason: string;
  message: string;
}

/**
 * In memory, for the loops' unit tests. Objects are deep-copied in and out (a reconciler never
 * holds a live reference); a deleted object with finalizers keeps a deletionTimestamp until the
 * last one goes. `failNext` makes the next call of an operation throw (an API outage).
 */
export class FakeStore implements ProviderStore {
  readonly objects = new Map<string, unknown>();
  /** `namespace/name` → decoded values (what a test puts in; `getSecret` answers base64 like the API). */
  readonly secrets = new Map<string, Record<string, string>>();
  readonly configMaps = new Map<string, Record<string, string>>();
  /** What `create` made, in order. */
  readonly created: NewObject[] = [];
  readonly events: RecordedEvent[] = [];
  readonly writes: string[] = [];
  private failures = new Map<string, Error>();
  private rv = 1;

  private key = (kind: string, namespace: string, name: string) => `${kind}/${namespace}/${name}`;
  private copy = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

  put<T extends { kind: string; metadata: { name: string; namespace?: string } }>(obj: T): T {
    const o = this.copy(obj) as T & { metadata: { resourceVersion?: string; uid?: string } };
    o.metadata.resourceVersion = String(this.rv++);
    o.metadata.uid ??= `uid-${o.kind}-${o.metadata.name}`;
    this.objects.set(this.key(o.kind, o.metadata.namespace ?? 'default', o.metadata.name), o);
    return this.copy(o);
  }
  /** Marks an object deleted (as the API server does when it has finalizers), or removes it. */
  delete(kind: string, namespace: string, name: string): void {
    const k = this.key(kind, namespace, name);
    const o = this.objects.get(k) as
      { metadata: { finalizers?: string[]; deletionTimestamp?: unknown } } | undefined;
    if (!o) return;
    if (o.metadata.finalizers?.length) o.metadata.deletionTimestamp ??= new Date(0).toISOString();
    else this.objects.delete(k);
  }
  failNext(op: keyof ProviderStore, err: Error = new Error(`fake API server: ${op} failed`)): void {
    this.failures.set(op, err);
  }
  private check(op: keyof ProviderStore): void {
    const e = this.failures.get(op);
    if (e) {
      this.failures.delete(op);
      throw e;
    }
  }
  private read<T>(kind: string, namespace: string, name: string): T | undefined {
    return this.copy(this.objects.get(this.key(kind, namespace, name)) as T | undefined);
  }
  private mustExist<T extends ProviderObject>(obj: T): T & Record<string, unknown> {
    const cur = this.objects.get(this.key(obj.kind, obj.metadata.namespace ?? 'default', obj.metadata.name));
    if (!cur) throw Object.assign(new Error(`${obj.kind} ${obj.metadata.name} not found`), { code: 404 });
    return cur as T & Record<string, unknown>;
  }

  async getPacketCluster(namespace: string, name: string) {
    this.check('getPacketCluster');
    return this.read<PacketCluster>('PacketCluster', namespace, name);
  }
  async getPacketMachine(namespace: string, name: string) {
    this.check('getPacketMachine');
    return this.read<PacketMachine>('PacketMachine', namespace, name);
  }
  async getCluster(namespace: string, name: string) {
    this.check('getCluster');
    return this.read<CapiCluster>('Cluster', namespace, name);
  }
  async getMachine(namespace: string, name: string) {
    this.check('getMachine');
    return this.read<CapiMachine>('Machine', namespace, name);
  }
  async getPacketKubeadmConfig(namespace: string, name: string) {
    this.check('getPacketKubeadmConfig');
    return this.read<PacketKubeadmConfig>('PacketKubeadmConfig', namespace, name);
  }
  async getSecretValue(namespace: string, name: string, key: string) {
    this.check('getSecretValue');
    return this.secrets.get(`${namespace}/${name}`)?.[key];
  }
  async getSecret(namespace: string, name: string): Promise<SecretData | undefined> {
    this.check('getSecret');
    const s = this.secrets.get(`${namespace}/${name}`);
    if (!s) return undefined;
    return {
      data: Object.fromEntries(Object.entries(s).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    };
  }
  async getConfigMap(namespace: string, name: string) {
    this.check('getConfigMap');
    const c = this.configMaps.get(`${namespace}/${name}`);
    return c ? { ...c } : undefined;
  }
  async create(obj: NewObject): Promise<boolean> {
    this.check('create');
    const k = `${obj.namespace}/${obj.name}`;
    const map = obj.kind === 'Secret' ? this.secrets : this.configMaps;
    if (map.has(k)) return false;
    const data =
      obj.kind === 'Secret'
        ? Object.fromEntries(
            Object.entries(obj.data).map(([n, v]) => [n, Buffer.from(v, 'base64').toString('utf8')]),
          )
        : { ...obj.data };
    map.set(k, data);
    this.created.push(JSON.parse(JSON.stringify(obj)) as NewObject);
    this.writes.push(`create ${obj.kind}/${obj.name}`);
    return true;
  }
  async addFinalizer<T extends ProviderObject>(obj: T, finalizer: string): Promise<T> {
    this.check('addFinalizer');
    const cur = this.mustExist(obj);
    const list = (cur.metadata.finalizers ??= []);
    if (!list.includes(finalizer)) list.push(finalizer);
    this.writes.push(`finalizer+ ${obj.kind}/${obj.metadata.name}`);
    return this.bump(cur);
  }
  async removeFinalizer<T extends ProviderObject>(obj: T, finalizer: string): Promise<T | undefined> {
    this.check('removeFinalizer');
    const k = this.key(obj.kind, obj.metadata.namespace ?? 'default', obj.metadata.name);
    const cur = this.objects.get(k) as T | undefined;
    if (!cur) return undefined;
    cur.metadata.finalizers = (cur.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    this.writes.push(`finalizer- ${obj.kind}/${obj.metadata.name}`);
    if (cur.metadata.deletionTimestamp && cur.metadata.finalizers.length === 0) {
      this.objects.delete(k);
      return undefined;
    }
    return this.bump(cur);
  }
  async patch<T extends ProviderObject>(
    obj: T,
    patch: { spec?: Record<string, unknown>; annotations?: Record<string, string | null> },
  ): Promise<T> {
    this.check('patch');
    const cur = this.mustExist(obj);
    if (patch.spec) Object.assign(cur.spec as object, patch.spec);
    for (const [k, v] of Object.entries(patch.annotations ?? {})) {
      const a = (cur.metadata.annotations ??= {});
      if (v === null) delete a[k];
      else a[k] = v;
    }
    this.writes.push(`patch ${obj.kind}/${obj.metadata.name} ${JSON.stringify(patch)}`);
    return this.bump(cur);
  }
  async patchStatus<T extends ProviderObject>(obj: T, status: Record<string, unknown>): Promise<T> {
    this.check('patchStatus');
    const cur = this.mustExist(obj);
    cur['status'] = mergePatch((cur['status'] as Record<string, unknown>) ?? {}, status);
    this.writes.push(`status ${obj.kind}/${obj.metadata.name}`);
    return this.bump(cur);
  }
  async event(obj: ProviderObject, type: EventType, reason: string, message: string): Promise<void> {
    this.events.push({ kind: obj.kind, name: obj.metadata.name, type, reason, message });
  }
  private bump<T>(cur: T & { metadata: { resourceVersion?: string } }): T {
    cur.metadata.resourceVersion = String(this.rv++);
    return this.copy(cur);
  }
}

/** RFC 7386 merge patch (what the API server applies to a merge-patched status). */
export function mergePatch(
  target: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (
      typeof v === 'object' &&
      !Array.isArray(v) &&
      typeof out[k] === 'object' &&
      out[k] !== null &&
      !Array.isArray(out[k])
    )
      out[k] = mergePatch(out[k] as Record<string, unknown>, v as Record<string, unknown>);
    else out[k] = v;
  }
  return out;
}
