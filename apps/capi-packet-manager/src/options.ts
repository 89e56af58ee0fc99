import { z } from 'zod';
import { UsageError, createProgram, daemonOptions, kubeconfigOption, schemas } from '@knet/runtime';
import { metalApiUrl } from '@knet/metal';
import { VERSION } from './version';

/**
 * Every flag of capi-packet-manager, declared once. CAPEM's names where it has them
 * (`--leader-elect`, `--sync-period`, `--watch-filter`, `--namespace`, `PACKET_API_KEY`), so its
 * manifests keep working; cross-field checks in `validate` (one line, exit 2).
 */
export const program = createProgram({
  name: 'capi-packet-manager',
  version: VERSION,
  description:
    'Cluster API infrastructure provider for Packet / Equinix Metal: PacketCluster (control-plane elastic IP), ' +
    'PacketMachine (devices), and the PacketKubeadmConfig bootstrap provider',
  options: {
    ...daemonOptions({
      envPrefix: 'CAPI_PACKET_MANAGER',
      defaultPort: 8080,
      zero: 'any',
      readiness:
        'ready once the watches have listed; with --leader-elect also while standing by as a follower',
    }),
    kubeconfig: {
      ...kubeconfigOption,
      description: "kubeconfig of the management cluster (default: the pod's service account)",
    },
    apiKey: {
      flag: '--api-key <token>',
      env: 'PACKET_API_KEY',
      description:
        'Equinix Metal API token (X-Auth-Token); give it through the env from a Secret, not as a flag',
      schema: z.string().min(1, 'is empty'),
      secret: true,
    },
    apiUrl: {
      flag: '--api-url <url>',
      env: 'METAL_API_URL',
      description: 'Metal API base URL: any endpoint that serves the metal/v1 API',
      schema: z.string().transform((s, ctx) => {
        try {
          return metalApiUrl(s);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: e instanceof Error ? e.message : String(e) });
          return z.NEVER;
        }
      }),
      default: 'https://api.equinix.com/metal/v1',
    },
    namespace: {
      flag: '--namespace <name>',
      env: 'CAPI_PACKET_MANAGER_NAMESPACE',
      description: 'watch only this namespace (default: all; a namespaced install needs only a Role)',
      schema: z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name')
        .optional(),
    },
    watchFilter: {
      flag: '--watch-filter <value>',
      env: 'CAPI_PACKET_MANAGER_WATCH_FILTER',
      description:
        'reconcile only objects labelled cluster.x-k8s.io/watch-filter=<value> (as CAPI providers do)',
      schema: z
        .string()
        .regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, 'must be a label value')
        .optional(),
    },
    syncPeriod: {
      flag: '--sync-period <duration>',
      env: 'CAPI_PACKET_MANAGER_SYNC_PERIOD',
      description:
        'how often every object is reconciled again without a change (a ready object costs no Metal API call)',
      schema: schemas.duration({ min: 10_000 }),
      default: '10m',
    },
    devicePollInterval: {
      flag: '--device-poll-interval <duration>',
      env: 'CAPI_PACKET_MANAGER_DEVICE_POLL_INTERVAL',
      description:
        "how often provisioning devices are looked at (one listing per cluster serves all of the cluster's machines)",
      schema: schemas.duration({ min: 100 }),
      default: '15s',
    },
    clusterConcurrency: {
      flag: '--packetcluster-concurrency <n>',
      env: 'CAPI_PACKET_MANAGER_PACKETCLUSTER_CONCURRENCY',
      description: 'PacketClusters reconciled at once',
      schema: schemas.integer({ min: 1, max: 100 }),
      default: '10',
    },
    machineConcurrency: {
      flag: '--packetmachine-concurrency <n>',
      env: 'CAPI_PACKET_MANAGER_PACKETMACHINE_CONCURRENCY',
      description: 'PacketMachines reconciled at once',
      schema: schemas.integer({ min: 1, max: 100 }),
      default: '10',
    },
    bootstrapConcurrency: {
      flag: '--packetkubeadmconfig-concurrency <n>',
      env: 'CAPI_PACKET_MANAGER_PACKETKUBEADMCONFIG_CONCURRENCY',
      description: 'PacketKubeadmConfigs (bootstrap data) rendered at once',
      schema: schemas.integer({ min: 1, max: 100 }),
      default: '4',
    },
    leaderElect: {
      flag: '--leader-elect [bool]',
      env: 'CAPI_PACKET_MANAGER_LEADER_ELECT',
      description: 'with several replicas: only the Lease holder reconciles; the others stand by (ready)',
      schema: schemas.bool(),
      default: false,
    },
    leaderElectionNamespace: {
      flag: '--leader-election-namespace <name>',
      env: 'POD_NAMESPACE',
      description: 'namespace of the Lease (default: the pod namespace)',
      schema: z.string().min(1).optional(),
    },
    leaseName: {
      flag: '--lease-name <name>',
      env: 'CAPI_PACKET_MANAGER_LEASE_NAME',
      description: 'Lease used by --leader-elect',
      schema: z.string().min(1),
      default: 'capi-packet-manager',
    },
    identity: {
      flag: '--identity <name>',
      env: 'POD_NAME',
      description: 'this replica in leader election and logs (default: the host name)',
      schema: z.string().min(1).optional(),
    },
  },
  validate(opts, { name }) {
    if (opts.leaderElect && !opts.leaderElectionNamespace) {
      throw new UsageError(
        `${name('leaderElect')} needs ${name('leaderElectionNamespace')}: set the flag, or POD_NAMESPACE from the downward API`,
      );
    }
    if (opts.devicePollInterval > opts.syncPeriod) {
      throw new UsageError(`${name('devicePollInterval')} cannot be longer than ${name('syncPeriod')}`);
    }
  },
});
