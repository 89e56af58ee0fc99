import { z } from 'zod';
import {
  UsageError,
  createProgram,
  kubeconfigOption,
  logLevelOption,
  schemas,
  shutdownTimeoutOption,
} from '@knet/runtime';
import { VERSION } from './version';
import { DEFAULT_LISTENER_OPTIONS } from './listeners';

const labelSelector = z.string().transform((s, ctx) => {
  const out: Record<string, string> = {};
  for (const part of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9./_-]+)=([A-Za-z0-9._-]*)$/.exec(part);
    if (!m?.[1] || m[2] === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be key=value[,key=value], got "${part}"` });
      return z.NEVER;
    }
    out[m[1]] = m[2];
  }
  if (Object.keys(out).length === 0) {
    ctx.addIssue({ code: 'custom', message: 'must not be empty' });
    return z.NEVER;
  }
  return out;
});

const portRange = z.string().transform((s, ctx) => {
  const m = /^(\d+)-(\d+)$/.exec(s.trim());
  const min = Number(m?.[1]);
  const max = Number(m?.[2]);
  if (!m || min < 1024 || max > 55_535 || min >= max) {
    ctx.addIssue({
      code: 'custom',
      message: `must be MIN-MAX within 1024-55535 (MAX+10000 holds the ks ports), got "${s}"`,
    });
    return z.NEVER;
  }
  return { min, max, kubesphereOffset: 10_000 };
});

export const program = createProgram({
  name: 'tower-proxy',
  version: VERSION,
  description:
    'Serves member clusters of a KubeSphere host cluster through reverse tunnels: agents in the members dial in ' +
    '(WebSocket + SSH), and each proxy-type Cluster gets a Service mc-<name>, a kubeconfig and per-cluster listeners.',
  options: {
    kubeconfig: {
      ...kubeconfigOption,
      description: 'kubeconfig of the host cluster (default: in-cluster credentials, then ~/.kube/config)',
    },
    host: {
      flag: '--host <address>',
      env: 'TOWER_HOST',
      description: 'address of the agent endpoint and of /healthz, /readyz, /metrics, /version',
      schema: schemas.ipAddress(),
      default: '0.0.0.0',
    },
    port: {
      flag: '--port <port>',
      env: 'TOWER_PORT',
      description: 'port of the agent endpoint (WebSocket upgrade on /v1/tunnel) and the HTTP endpoints',
      schema: schemas.port({ allowZero: true }),
      default: 8080,
    },
    metricsPort: {
      flag: '--metrics-port <port>',
      env: 'TOWER_METRICS_PORT',
      description:
        'serve /metrics on this port (on --host) instead of --port, to keep it off the public agent port (its labels name Clusters); 0 picks a free port',
      schema: schemas.port({ allowZero: true }).optional(),
    },
    listenAddress: {
      flag: '--listen-address <address>',
      env: 'TOWER_LISTEN_ADDRESS',
      description: 'address of the per-cluster listeners (ports from --port-range)',
      schema: schemas.ipAddress(),
      default: '0.0.0.0',
    },
    portRange: {
      flag: '--port-range <min-max>',
      env: 'TOWER_PORT_RANGE',
      description:
        "per-cluster kube-apiserver listener ports; each cluster's ks-apiserver port is that port + 10000",
      schema: portRange,
      default: '6000-7000',
    },
    publishServiceAddress: {
      flag: '--publish-service-address <address>',
      env: 'TOWER_PUBLISH_SERVICE_ADDRESS',
      description:
        "address written into the Clusters' endpoints and kubeconfigs instead of the mc-<name> Service's ClusterIP " +
        '(then with the listener ports); empty = the Service',
      schema: z.string().optional(),
    },
    caCert: {
      flag: '--ca-cert <file>',
      env: 'TOWER_CA_CERT',
      description:
        'CA certificate (PEM) that signs listener and kubeconfig certificates; with --ca-key. Default: a CA kept in --ca-secret',
      schema: schemas.existingFile().optional(),
    },
    caKey: {
      flag: '--ca-key <file>',
      env: 'TOWER_CA_KEY',
      description: 'private key (PEM: RSA or ECDSA) of --ca-cert',
      schema: schemas.existingFile().optional(),
    },
    namespace: {
      flag: '--namespace <name>',
      env: 'POD_NAMESPACE',
      description: "namespace of the proxy's own Secrets, ConfigMap and Lease",
      schema: z.string().min(1),
      default: 'kubesphere-system',
    },
    serviceNamespace: {
      flag: '--service-namespace <name>',
      env: 'TOWER_SERVICE_NAMESPACE',
      description: 'namespace of the mc-<cluster> Services (default: --namespace)',
      schema: z.string().min(1).optional(),
    },
    serviceSelector: {
      flag: '--service-selector <labels>',
      env: 'TOWER_SERVICE_SELECTOR',
      description: 'pod labels the mc-<cluster> Services select (the proxy pods)',
      schema: labelSelector,
      default: 'app.kubernetes.io/name=tower-proxy',
    },
    hostKeySecret: {
      flag: '--host-key-secret <name>',
      env: 'TOWER_HOST_KEY_SECRET',
      description:
        'Secret that keeps the SSH host key (created on first start) so the fingerprint agents pin never changes',
      schema: z.string().min(1),
      default: 'tower-proxy-host-key',
    },
    caSecret: {
      flag: '--ca-secret <name>',
      env: 'TOWER_CA_SECRET',
      description: 'Secret that keeps the generated CA when --ca-cert/--ca-key are not given',
      schema: z.string().min(1),
      default: 'tower-proxy-ca',
    },
    infoConfigMap: {
      flag: '--info-configmap <name>',
      env: 'TOWER_INFO_CONFIGMAP',
      description: 'ConfigMap where the proxy publishes its SSH host key fingerprint for agent installers',
      schema: z.string().min(1),
      default: 'tower-proxy',
    },
    keepalive: {
      flag: '--keepalive <duration>',
      env: 'TOWER_KEEPALIVE',
      description: 'SSH keepalive towards agents; an agent silent for 2x this is dropped',
      schema: schemas.duration({ min: 1000 }),
      default: '30s',
    },
    handshakeTimeout: {
      flag: '--handshake-timeout <duration>',
      env: 'TOWER_HANDSHAKE_TIMEOUT',
      description:
        'an agent connection must have its hello accepted this long after its TCP accept (WebSocket upgrade, SSH handshake and hello), else it is closed',
      schema: schemas.duration({ min: 1000, max: 120_000 }),
      default: '10s',
    },
    maxHandshakes: {
      flag: '--max-handshakes <n>',
      env: 'TOWER_MAX_HANDSHAKES',
      description:
        'connections on --port without an accepted hello (yet), in all; when full, a new one closes the one quiet longest',
      schema: schemas.integer({ min: 1 }),
      default: 512,
    },
    maxHandshakesPerSource: {
      flag: '--max-handshakes-per-source <n>',
      env: 'TOWER_MAX_HANDSHAKES_PER_SOURCE',
      description:
        'the same per source address (IPv6: per /64); when full, a new one from that address closes its quietest',
      schema: schemas.integer({ min: 1 }),
      default: 128,
    },
    listenerMaxConnections: {
      flag: '--listener-max-connections <n>',
      env: 'TOWER_LISTENER_MAX_CONNECTIONS',
      description:
        'connections each cluster listener holds at once; when full, a new one closes the oldest that has not sent its first bytes (or passed TLS), else it is refused',
      schema: schemas.integer({ min: 1 }),
      default: DEFAULT_LISTENER_OPTIONS.maxConnections,
    },
    listenerMaxConnectionsPerSource: {
      flag: '--listener-max-connections-per-source <n>',
      env: 'TOWER_LISTENER_MAX_CONNECTIONS_PER_SOURCE',
      description: 'the same per source address (IPv6: per /64)',
      schema: schemas.integer({ min: 1 }),
      default: DEFAULT_LISTENER_OPTIONS.maxConnectionsPerSource,
    },
    listenerIdleTimeout: {
      flag: '--listener-idle-timeout <duration>',
      env: 'TOWER_LISTENER_IDLE_TIMEOUT',
      description:
        'a cluster listener connection with no bytes either way for this long is closed (longer than a quiet kubectl watch)',
      schema: schemas.duration({ min: 1000 }),
      default: '30m',
    },
    listenerHandshakeTimeout: {
      flag: '--listener-handshake-timeout <duration>',
      env: 'TOWER_LISTENER_HANDSHAKE_TIMEOUT',
      description:
        'a cluster listener connection must finish TLS (kubernetes) and send its first bytes (both) within this',
      schema: schemas.duration({ min: 1000, max: 120_000 }),
      default: '10s',
    },
    agentGracePeriod: {
      flag: '--agent-grace-period <duration>',
      env: 'TOWER_AGENT_GRACE_PERIOD',
      description:
        'after this replica starts leading, a Cluster without an agent keeps its AgentAvailable this long (its agents redial after a restart or failover); 0s: none',
      schema: schemas.duration({ min: 0, max: 600_000 }),
      default: '30s',
    },
    leaderElect: {
      flag: '--leader-elect [bool]',
      env: 'TOWER_LEADER_ELECT',
      description:
        'with several replicas: only the Lease holder serves (agents, listeners, writes); the others are not ready',
      schema: schemas.bool(),
      default: false,
    },
    leaseName: {
      flag: '--lease-name <name>',
      env: 'TOWER_LEASE_NAME',
      description: 'Lease used by --leader-elect (in --namespace)',
      schema: z.string().min(1),
      default: 'tower-proxy',
    },
    identity: {
      flag: '--identity <name>',
      env: 'POD_NAME',
      description: 'this replica in leader election and logs (default: the host name)',
      schema: z.string().min(1).optional(),
    },
    logLevel: logLevelOption,
    shutdownTimeout: shutdownTimeoutOption,
  },
  validate(opts) {
    if (opts.maxHandshakesPerSource > opts.maxHandshakes) {
      throw new UsageError(
        `--max-handshakes-per-source (${opts.maxHandshakesPerSource}) cannot exceed --max-handshakes (${opts.maxHandshakes})`,
      );
    }
    if (opts.listenerMaxConnectionsPerSource > opts.listenerMaxConnections) {
      throw new UsageError(
        `--listener-max-connections-per-source (${opts.listenerMaxConnectionsPerSource}) cannot exceed --listener-max-connections (${opts.listenerMaxConnections})`,
      );
    }
    if (Boolean(opts.caCert) !== Boolean(opts.caKey)) {
      throw new UsageError(
        '--ca-cert and --ca-key go together: give both, or neither to use a CA kept in --ca-secret',
      );
    }
  },
});
