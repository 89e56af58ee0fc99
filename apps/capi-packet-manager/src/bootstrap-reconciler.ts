/**
 * The PacketKubeadmConfig loop: the seed's bootstrap as a Cluster API bootstrap provider. For a
 * config owned by a Machine of an unpaused Cluster whose infrastructure (and so its endpoint) is
 * provisioned, it makes sure the cluster's key material exists in the management cluster
 * (`<cluster>-ca`, `-etcd`, `-proxy`, `-sa`, `-kubelet-signer`, never on any device: kubeadm runs
 * in external CA mode, see libs/capi's README), the admin kubeconfig `<cluster>-kubeconfig` (so
 * `clusterctl get kubeconfig` works) and the cluster's join token `<cluster>-bootstrap-token`,
 * decides the machine's role (the first control plane to take the `<cluster>-lock` ConfigMap runs
 * `kubeadm init`, every other machine joins, pinning the CA), renders the cloud-init user data
 * into the Secret `<config name>` and reports it in `status.dataSecretName`. Every object is
 * created, never overwritten, so concurrent passes and restarts converge on the first one written.
 */
import {
  BootstrapError,
  CLUSTER_NAME_LABEL,
  CLUSTER_SECRET_PURPOSES,
  CLUSTER_SECRET_TYPE,
  CONTROL_PLANE_LABEL,
  DEFAULT_BOOTSTRAP_TOKEN_TTL_MS,
  adminKubeconfig,
  caCertHash,
  clusterPki,
  clusterSecretName,
  controlPlaneFiles,
  infrastructureProvisioned,
  isPaused,
  newBootstrapToken,
  parseDuration,
  renderUserData,
  type CapiCluster,
  type CapiCondition,
  type CapiMachine,
  type ClusterPki,
  type ClusterSecretPurpose,
  type NodeRole,
  type OwnerReference,
  type PacketKubeadmConfig,
  type SecretData,
} from '@knet/capi';
import { setCondition } from '@knet/k8s';
import type { Logger } from '@knet/runtime';
import type { ReconcileResult } from './machine-reconciler';
import type { ConditionUpdate } from './plan';
import type { ProviderStore } from './store';

export const DATA_SECRET_AVAILABLE = 'DataSecretAvailable';
/** A join needs the token to outlive the device's provisioning and first boot. */
export const JOIN_TOKEN_MARGIN_MS = 30 * 60_000;

export interface BootstrapReconcilerDeps {
  store: ProviderStore;
  logger: Logger;
  now?: () => Date;
}

/** Something to wait for (the pass ends without an error; a watch or the requeue brings it back). */
class Wait {
  constructor(
    readonly condition: ConditionUpdate,
    readonly requeueAfterMs?: number,
  ) {}
}

export class BootstrapReconciler {
  constructor(private readonly d: BootstrapReconcilerDeps) {}

  private now(): Date {
    return this.d.now?.() ?? new Date();
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const cfg = await this.d.store.getPacketKubeadmConfig(namespace, name);
    if (!cfg || cfg.metadata.deletionTimestamp) return {};
    if (cfg.status?.ready === true && cfg.status.dataSecretName) return {};
    const ownerRef = cfg.metadata.ownerReferences?.find(
      (o) => o.kind === 'Machine' && o.apiVersion.startsWith('cluster.x-k8s.io/'),
    );
    if (!ownerRef) return {};
    const machine = await this.d.store.getMachine(namespace, ownerRef.name);
    if (!machine) return {};
    const cluster = await this.d.store.getCluster(namespace, machine.spec.clusterName);
    if (!cluster) return {};
    if (isPaused(cluster, cfg)) return {};

    let conditions = [...(cfg.status?.conditions ?? [])];
    const set = (c: ConditionUpdate) => {
      const next = { ...c, severity: c.severity ?? '' };
      conditions = setCondition<CapiCondition>(conditions, next, this.now(), { lastUpdateTime: false });
      conditions = setCondition<CapiCondition>(conditions, { ...next, type: 'Ready' }, this.now(), {
        lastUpdateTime: false,
      });
    };
    try {
      const secretName = await this.render(cfg, machine, cluster);
      set({ type: DATA_SECRET_AVAILABLE, status: 'True', reason: 'DataSecretAvailable', message: '' });
      await this.d.store.patchStatus(cfg, {
        ready: true,
        initialization: { dataSecretCreated: true },
        dataSecretName: secretName,
        observedGeneration: cfg.metadata.generation,
        conditions,
      });
      await this.d.store.event(cfg, 'Normal', 'DataSecretCreated', `bootstrap data in Secret ${secretName}`);
      return {};
    } catch (e) {
      const wait = e instanceof Wait ? e : e instanceof BootstrapError ? refused(e) : undefined;
      if (!wait) throw e;
      const before = JSON.stringify(cfg.status?.conditions ?? []);
      set(wait.condition);
      if (JSON.stringify(conditions) !== before) {
        await this.d.store.patchStatus(cfg, { conditions });
        if (wait.condition.severity === 'Error') {
          await this.d.store.event(cfg, 'Warning', wait.condition.reason, wait.condition.message);
        }
      }
      return { requeueAfterMs: wait.requeueAfterMs };
    }
  }

  /** Creates the data Secret (if missing) and returns its name. */
  private async render(
    cfg: PacketKubeadmConfig,
    machine: CapiMachine,
    cluster: CapiCluster,
  ): Promise<string> {
    const ns = cfg.metadata.namespace ?? 'default';
    const clusterName = cluster.metadata.name;
    const endpoint = cluster.spec?.controlPlaneEndpoint;
    if (!infrastructureProvisioned(cluster) || !endpoint?.host) {
      throw new Wait(
        info('WaitingForClusterInfrastructure', 'waiting for the cluster infrastructure and its endpoint'),
      );
    }
    if (!machine.spec.version) {
      throw new Wait(error('InvalidMachine', `Machine ${machine.metadata.name} has no spec.version: set it`));
    }
    const clusterOwner: OwnerReference = {
      apiVersion: cluster.apiVersion,
      kind: 'Cluster',
      name: clusterName,
      uid: cluster.metadata.uid ?? '',
    };
    const pki = await this.ensurePki(ns, clusterName, clusterOwner);
    await this.ensureKubeconfig(ns, clusterName, pki, endpoint, clusterOwner);
    const token = await this.joinToken(ns, clusterName, cfg, clusterOwner);
    const role = await this.role(ns, clusterName, machine, clusterOwner);
    if (role !== 'init' && token.remainingMs < JOIN_TOKEN_MARGIN_MS) {
      throw new Wait(
        info(
          'WaitingForJoinToken',
          `the cluster's join token expires in ${Math.max(0, Math.round(token.remainingMs / 60_000))} min: ` +
            `create a new one in the workload cluster (kubeadm token create --ttl 24h) and put it and its ` +
            `expiration into Secret ${ns}/${clusterName}-bootstrap-token (keys token, expiration)`,
        ),
        300_000,
      );
    }
    const net = cluster.spec?.clusterNetwork;
    const serviceCIDR = net?.services?.cidrBlocks?.[0] ?? '10.96.0.0/12';
    const dnsDomain = net?.serviceDomain ?? 'cluster.local';
    const spec = cfg.spec ?? {};
    const files =
      role === 'join-worker'
        ? undefined
        : await controlPlaneFiles(pki, {
            role,
            clusterName,
            machineName: machine.metadata.name,
            controlPlaneEndpoint: endpoint,
            serviceCIDR,
            dnsDomain,
          });
    const userdata = renderUserData({
      role,
      clusterName,
      machineName: machine.metadata.name,
      kubernetesVersion: machine.spec.version,
      controlPlaneEndpoint: endpoint,
      podCIDR: net?.pods?.cidrBlocks?.[0],
      serviceCIDR,
      dnsDomain,
      token: token.value,
      tokenTtlMs: role === 'init' ? Math.max(token.remainingMs, 60_000) : undefined,
      caCertPem: pki.ca.certPem,
      caCertHash: caCertHash(pki.ca.certPem),
      files,
      cloudProvider: spec.cloudProvider,
      kubeletExtraArgs: spec.kubeletExtraArgs,
      extra: {
        preKubeadmCommands: spec.preKubeadmCommands,
        postKubeadmCommands: spec.postKubeadmCommands,
        sshAuthorizedKeys: spec.sshAuthorizedKeys,
      },
    });
    const name = cfg.metadata.name;
    await this.d.store.create({
      kind: 'Secret',
      name,
      namespace: ns,
      type: CLUSTER_SECRET_TYPE,
      labels: { [CLUSTER_NAME_LABEL]: clusterName },
      ownerReferences: [
        {
          apiVersion: cfg.apiVersion,
          kind: 'PacketKubeadmConfig',
          name,
          uid: cfg.metadata.uid ?? '',
          controller: true,
        },
      ],
      data: { value: b64(userdata), format: b64('cloud-config') },
    });
    return name;
  }

  /** The cluster's key material: existing Secrets as they are, missing ones generated and created. */
  private async ensurePki(ns: string, clusterName: string, owner: OwnerReference): Promise<ClusterPki> {
    const existing: Partial<Record<ClusterSecretPurpose, SecretData>> = {};
    for (const p of CLUSTER_SECRET_PURPOSES) {
      const s = await this.d.store.getSecret(ns, clusterSecretName(clusterName, p));
      if (s) existing[p] = s;
    }
    const pki = await clusterPki(clusterName, existing);
    for (const secret of pki.secrets) {
      const purpose = secret.metadata.name.slice(clusterName.length + 1) as ClusterSecretPurpose;
      if (!pki.generated.includes(purpose)) continue;
      const made = await this.d.store.create({
        kind: 'Secret',
        name: secret.metadata.name,
        namespace: ns,
        type: secret.type,
        labels: secret.metadata.labels,
        ownerReferences: [owner],
        data: secret.data,
      });
      // Another pass created it first: start over with what is stored, never with this copy.
      if (!made)
        throw new Error(`Secret ${ns}/${secret.metadata.name} appeared meanwhile; reconciling again`);
      this.d.logger.info(
        { cluster: `${ns}/${clusterName}`, secret: secret.metadata.name },
        'created cluster key material',
      );
    }
    return pki;
  }

  private async ensureKubeconfig(
    ns: string,
    clusterName: string,
    pki: ClusterPki,
    endpoint: { host: string; port: number },
    owner: OwnerReference,
  ): Promise<void> {
    const name = clusterSecretName(clusterName, 'kubeconfig');
    if (await this.d.store.getSecret(ns, name)) return;
    const { secret } = await adminKubeconfig(clusterName, pki.ca, endpoint);
    await this.d.store.create({
      kind: 'Secret',
      name,
      namespace: ns,
      type: secret.type,
      labels: secret.metadata.labels,
      ownerReferences: [owner],
      data: secret.data,
    });
  }

  /** The cluster's join token: `<cluster>-bootstrap-token` (created with the config's TTL when missing). */
  private async joinToken(
    ns: string,
    clusterName: string,
    cfg: PacketKubeadmConfig,
    owner: OwnerReference,
  ): Promise<{ value: string; remainingMs: number }> {
    const name = `${clusterName}-bootstrap-token`;
    let stored = await this.d.store.getSecret(ns, name);
    if (!stored) {
      const ttl = cfg.spec?.tokenTTL ? parseDuration(cfg.spec.tokenTTL) : DEFAULT_BOOTSTRAP_TOKEN_TTL_MS;
      const value = newBootstrapToken();
      const expiration = new Date(this.now().getTime() + ttl).toISOString().replace(/\.\d{3}Z$/, 'Z');
      await this.d.store.create({
        kind: 'Secret',
        name,
        namespace: ns,
        type: CLUSTER_SECRET_TYPE,
        labels: { [CLUSTER_NAME_LABEL]: clusterName },
        ownerReferences: [owner],
        data: { token: b64(value), expiration: b64(expiration) },
      });
      stored = await this.d.store.getSecret(ns, name);
    }
    const value = text(stored?.data?.['token']);
    const expiration = Date.parse(text(stored?.data?.['expiration']));
    if (!value || Number.isNaN(expiration)) {
      throw new Wait(
        error(
          'InvalidClusterSecret',
          `Secret ${ns}/${name} needs keys token and expiration (RFC 3339): fix or delete it`,
        ),
      );
    }
    return { value, remainingMs: expiration - this.now().getTime() };
  }

  /** init for the control-plane Machine that holds `<cluster>-lock`; every other machine joins. */
  private async role(
    ns: string,
    clusterName: string,
    machine: CapiMachine,
    owner: OwnerReference,
  ): Promise<NodeRole> {
    if (machine.metadata.labels?.[CONTROL_PLANE_LABEL] === undefined) return 'join-worker';
    const lock = `${clusterName}-lock`;
    await this.d.store.create({
      kind: 'ConfigMap',
      name: lock,
      namespace: ns,
      labels: { [CLUSTER_NAME_LABEL]: clusterName },
      ownerReferences: [owner],
      data: { machine: machine.metadata.name },
    });
    const holder = (await this.d.store.getConfigMap(ns, lock))?.['machine'];
    return holder === machine.metadata.name ? 'init' : 'join-control-plane';
  }
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const text = (v: string | undefined) => (v === undefined ? '' : Buffer.from(v, 'base64').toString('utf8'));
const info = (reason: string, message: string): ConditionUpdate => ({
  type: DATA_SECRET_AVAILABLE,
  status: 'False',
  reason,
  message,
  severity: 'Info',
});
const error = (reason: string, message: string): ConditionUpdate => ({
  type: DATA_SECRET_AVAILABLE,
  status: 'False',
  reason,
  message,
  severity: 'Error',
});

/** What a renderer refusal means: a condition to fix, never a hot retry. */
function refused(e: BootstrapError): Wait {
  const reason = {
    'invalid-input': 'InvalidInput',
    'unsupported-version': 'UnsupportedKubernetesVersion',
    'node-addresses-required': 'ControlPlaneJoinUnsupported',
    'invalid-secret': 'InvalidClusterSecret',
  }[e.kind];
  const message =
    e.kind === 'node-addresses-required'
      ? `${e.message} (this provider runs one control plane per cluster, as the seed did)`
      : e.message;
  return new Wait(error(reason, message));
}
