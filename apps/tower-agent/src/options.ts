import { z } from 'zod';
import {
  createProgram,
  daemonOptions,
  formatDuration,
  kubeconfigOption,
  schemas,
  UsageError,
} from '@knet/runtime';
import { MIN_TOKEN_LENGTH, normalizeFingerprint, tunnelUrl } from '@knet/tunnel';
import { VERSION } from './version';

/** The default --liveness-timeout: this many backoff caps, and never less than MIN_LIVENESS_DEFAULT_MS. */
const LIVENESS_FACTOR = 5;
const MIN_LIVENESS_DEFAULT_MS = 10 * 60_000;

export const program = createProgram({
  name: 'tower-agent',
  version: VERSION,
  description:
    'Connects this member cluster to a tower-proxy on the KubeSphere host cluster: dials out (WebSocket + SSH), ' +
    "then serves the host's requests to this cluster's kube-apiserver (with this agent's own credentials) and ks-apiserver.",
  options: {
    name: {
      flag: '--name <cluster>',
      env: 'TOWER_CLUSTER_NAME',
      description: 'name of this cluster: the Cluster object on the host cluster',
      schema: z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be the name of a Cluster object (a DNS subdomain)'),
    },
    token: {
      flag: '--token <token>',
      env: 'TOWER_TOKEN',
      description: "the Cluster's spec.connection.token (prefer the env var, from a Secret, over the flag)",
      schema: z
        .string()
        .min(
          MIN_TOKEN_LENGTH,
          `must be at least ${MIN_TOKEN_LENGTH} characters (the proxy refuses shorter tokens)`,
        )
        .max(1024),
      secret: true,
    },
    proxyServer: {
      flag: '--proxy-server <url>',
      env: 'TOWER_PROXY_SERVER',
      description: 'address of tower-proxy (http, https, ws or wss; the tunnel is at /v1/tunnel)',
      schema: schemas.url({ protocols: ['http', 'https', 'ws', 'wss'] }),
      default: 'http://127.0.0.1:8080',
    },
    fingerprint: {
      flag: '--fingerprint <sha256...>',
      env: 'TOWER_FINGERPRINT',
      description:
        "SHA-256 fingerprint of the proxy's SSH host key (the proxy logs it and publishes it in its ConfigMap); any other key is refused. " +
        'Several (repeat the flag, or comma-separated) while the key is rotated: a key with any of them is accepted',
      schema: schemas.list(
        z
          .string()
          .regex(
            /^(SHA256:)?[A-Za-z0-9+/]{43}=?$/i,
            'must be a SHA-256 fingerprint like SHA256:<43 base64 characters>',
          ),
        { min: 1 },
      ),
    },
    proxyCa: {
      flag: '--proxy-ca <file>',
      env: 'TOWER_PROXY_CA',
      description:
        'CA bundle (PEM) to verify a wss:// / https:// proxy whose certificate is not publicly trusted',
      schema: schemas.existingFile().optional(),
    },
    kubeconfig: {
      ...kubeconfigOption,
      description: "credentials for this cluster's kube-apiserver (default: the pod's service account)",
    },
    serviceAccountDir: {
      flag: '--service-account-dir <dir>',
      env: 'TOWER_SERVICE_ACCOUNT_DIR',
      description:
        'in-cluster credentials: directory with token and ca.crt (the token is re-read when it rotates)',
      schema: z.string().min(1),
      default: '/var/run/secrets/kubernetes.io/serviceaccount',
    },
    kubernetesService: {
      flag: '--kubernetes-service <host:port>',
      env: 'TOWER_KUBERNETES_SERVICE',
      description:
        'in-cluster kube-apiserver address (default: $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)',
      schema: schemas.hostPort({ defaultPort: 443 }).optional(),
    },
    kubesphereService: {
      flag: '--kubesphere-service <host:port>',
      env: 'TOWER_KUBESPHERE_SERVICE',
      description:
        'ks-apiserver address served as the kubesphere target; "none" serves only the kube-apiserver',
      schema: z.union([z.literal('none'), schemas.hostPort({ defaultPort: 80 })]),
      default: 'ks-apiserver.kubesphere-system.svc:80',
    },
    keepalive: {
      flag: '--keepalive <duration>',
      env: 'TOWER_KEEPALIVE',
      description:
        'SSH keepalive; a proxy that misses a reply is considered dead within 2x this and the agent reconnects',
      schema: schemas.duration({ min: 1000 }),
      default: '30s',
    },
    maxRetry: {
      flag: '--max-retry <n>',
      env: 'TOWER_MAX_RETRY',
      description: 'consecutive failed connection attempts before exiting 1 (0 = retry forever)',
      schema: schemas.integer({ min: 0 }),
      default: 0,
    },
    maxRetryInterval: {
      flag: '--max-retry-interval <duration>',
      env: 'TOWER_MAX_RETRY_INTERVAL',
      description: 'cap of the exponential backoff (with jitter) between attempts; SIGHUP retries at once',
      schema: schemas.duration({ min: 1000 }),
      default: '2m',
    },
    livenessTimeout: {
      flag: '--liveness-timeout <duration>',
      env: 'TOWER_LIVENESS_TIMEOUT',
      description:
        '/healthz fails (so the kubelet restarts the agent) after this long without an accepted connection to the proxy; ' +
        `0: never (default: ${LIVENESS_FACTOR}x --max-retry-interval, at least ${formatDuration(MIN_LIVENESS_DEFAULT_MS)})`,
      schema: schemas.duration().optional(),
    },
    agentId: {
      flag: '--agent-id <name>',
      env: 'POD_NAME',
      description: "this agent in the proxy's logs and metrics (default: the host name)",
      schema: z.string().min(1).optional(),
    },
    // --log-level, --shutdown-timeout, --metrics-host, --metrics-port (TOWER_METRICS_HOST, TOWER_METRICS_PORT)
    ...daemonOptions({
      envPrefix: 'TOWER',
      defaultPort: 8081,
      zero: 'any',
      readiness: 'ready while connected',
    }),
  },
  /**
   * After this, `proxyServer` is the ws(s):// URL of the tunnel and `fingerprint` a list of
   * `SHA256:…` (no duplicates).
   */
  validate: (opts, ctx) => {
    const livenessTimeout = livenessTimeoutOf(opts);
    if (livenessTimeout !== 0 && livenessTimeout < 2 * opts.maxRetryInterval) {
      throw new UsageError(
        `${ctx.name('livenessTimeout')} must be 0 or at least twice ${ctx.name('maxRetryInterval')} ` +
          `(${formatDuration(2 * opts.maxRetryInterval)}), or the agent is restarted while it waits to retry`,
      );
    }
    return {
      ...opts,
      proxyServer: tunnelUrl(opts.proxyServer),
      fingerprint: Array.from(new Set(opts.fingerprint.map(normalizeFingerprint))),
    };
  },
});

/** The --liveness-timeout in effect (ms; 0: never): as given, else from --max-retry-interval. */
export function livenessTimeoutOf(opts: {
  livenessTimeout?: number | undefined;
  maxRetryInterval: number;
}): number {
  return opts.livenessTimeout ?? Math.max(LIVENESS_FACTOR * opts.maxRetryInterval, MIN_LIVENESS_DEFAULT_MS);
}
