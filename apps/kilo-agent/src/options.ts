import { z } from 'zod';
import {
  UsageError,
  createProgram,
  logLevelOption,
  option,
  schemas,
  shutdownTimeoutOption,
  type HostPort,
  type ParsedOptions,
} from '@knet/runtime';
import {
  DEFAULT_KEY_PATH,
  DEFAULT_PORT,
  DEFAULT_SUBNET,
  DEFAULT_TOPOLOGY_LABEL,
  ENCAPSULATION_STRATEGIES,
  GRANULARITIES,
  KILO_INTERFACE,
  parsePrefix,
  type Compatibility,
  type EncapsulationStrategy,
  type Granularity,
} from '@knet/kilo';
import { VERSION } from './version';

/** Kilo's default CNI config path (pkg/mesh/cni.go). */
export const DEFAULT_CNI_PATH = '/etc/cni/net.d/10-kilo.conflist';

const oneOf = <T extends string>(values: readonly T[], what: string): z.ZodType<T, string> =>
  z
    .string()
    .trim()
    .refine((v): v is T => (values as readonly string[]).includes(v), {
      message: `must be one of ${values.map((v) => (v === '' ? '""' : v)).join(', ')} (${what})`,
    }) as unknown as z.ZodType<T, string>;

/** `:1107`, `0.0.0.0:1107`, `[::]:1107` (Go's listen address; an empty host is every address). */
const listenAddress: z.ZodType<HostPort, string> = z
  .string()
  .trim()
  .transform((s, ctx) => {
    const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
    const port = m ? Number(m[3]) : NaN;
    if (!m || !(port >= 0 && port <= 65_535)) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be [host]:port like :1107, 127.0.0.1:1107 or [::1]:1107',
      });
      return z.NEVER;
    }
    return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
  });

/** `auto` or an MTU (Kilo: the default-route interface's MTU − 80, else 1420). */
const mtu: z.ZodType<number | 'auto', string> = z
  .string()
  .trim()
  .transform((s, ctx) => {
    if (s === 'auto') return 'auto' as const;
    const n = /^\d+$/.test(s) ? Number(s) : NaN;
    if (!(n >= 576 && n <= 65_535)) {
      ctx.addIssue({ code: 'custom', message: 'must be auto or an MTU between 576 and 65535' });
      return z.NEVER;
    }
    return n;
  });

/**
 * Every flag of kilo-agent, declared once. The flags are Kilo's `kg` flags with Kilo's names and
 * defaults (docs/kg.md), so a DaemonSet written for Kilo runs unchanged; env vars are knet's
 * (`KILO_AGENT_*`). knet's own additions come last and say so in their help.
 */
export const program = createProgram({
  name: 'kilo-agent',
  version: VERSION,
  description:
    'Kilo-compatible WireGuard mesh agent, one per node: meshes locations (or every node) with WireGuard, ' +
    'routes pod CIDRs through location leaders, publishes kilo.squat.ai/* annotations and Peer status',
  options: {
    backend: option({
      flag: '--backend <name>',
      env: 'KILO_AGENT_BACKEND',
      description: 'the backend for the mesh (only kubernetes)',
      schema: oneOf(['kubernetes'] as const, 'Kilo has no other backend'),
      default: 'kubernetes',
    }),
    cleanUp: option({
      flag: '--clean-up [bool]',
      env: 'KILO_AGENT_CLEAN_UP',
      description: 'on shutdown remove every route, rule, chain and annotation this agent made',
      schema: schemas.bool(),
      default: true,
    }),
    cleanUpInterface: option({
      flag: '--clean-up-interface [bool]',
      env: 'KILO_AGENT_CLEAN_UP_INTERFACE',
      description: 'on shutdown also delete the WireGuard interface',
      schema: schemas.bool(),
      default: false,
    }),
    createInterface: option({
      flag: '--create-interface [bool]',
      env: 'KILO_AGENT_CREATE_INTERFACE',
      description: 'create the WireGuard interface when missing (false: a wireguard-go sidecar creates it)',
      schema: schemas.bool(),
      default: true,
    }),
    cni: option({
      flag: '--cni [bool]',
      env: 'KILO_AGENT_CNI',
      description: "manage the node's CNI configuration (write the pod CIDR into --cni-path)",
      schema: schemas.bool(),
      default: true,
    }),
    cniPath: option({
      flag: '--cni-path <path>',
      env: 'KILO_AGENT_CNI_PATH',
      description: 'path of the CNI config list',
      schema: z.string().trim().min(1),
      default: DEFAULT_CNI_PATH,
    }),
    compatibility: option({
      flag: '--compatibility <cni>',
      env: 'KILO_AGENT_COMPATIBILITY',
      description: 'run beside another CNI instead of IPIP: flannel or cilium ("" = IPIP)',
      schema: oneOf<Compatibility>(['', 'flannel', 'cilium'], 'compatibility modes'),
      default: '',
    }),
    encapsulate: option({
      flag: '--encapsulate <when>',
      env: 'KILO_AGENT_ENCAPSULATE',
      description: 'when to encapsulate (IPIP) packets within a location: always, crosssubnet or never',
      schema: oneOf<EncapsulationStrategy>(ENCAPSULATION_STRATEGIES, 'encapsulation strategies'),
      default: 'always',
    }),
    meshGranularity: option({
      flag: '--mesh-granularity <granularity>',
      env: 'KILO_AGENT_MESH_GRANULARITY',
      description:
        'location: one tunnel per location (its leader); full: one per node; cross: one per node pair across locations',
      schema: oneOf<Granularity>(GRANULARITIES, 'granularities'),
      default: 'location',
    }),
    kubeconfig: option({
      flag: '--kubeconfig <path>',
      env: 'KUBECONFIG',
      description: "kubeconfig of the Kubernetes API (default: the pod's service account)",
      schema: z.string().optional(),
    }),
    master: option({
      flag: '--master <url>',
      env: 'KILO_AGENT_MASTER',
      description: 'address of the Kubernetes API server (overrides the kubeconfig)',
      schema: schemas.url().optional(),
    }),
    hostname: option({
      flag: '--hostname <name>',
      env: 'NODE_NAME',
      description: 'name of the Node this agent runs on (default: the host name)',
      schema: z
        .string()
        .trim()
        .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Node name (lowercase DNS subdomain)')
        .optional(),
    }),
    interface: option({
      flag: '--interface <name>',
      env: 'KILO_AGENT_INTERFACE',
      description: 'the WireGuard interface (created if missing)',
      schema: z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be an interface name of 1-15 letters, digits, _ . -'),
      default: KILO_INTERFACE,
    }),
    listen: option({
      flag: '--listen <address>',
      env: 'KILO_AGENT_LISTEN',
      description: 'address of /health, /metrics and /graph (and /healthz, /readyz)',
      schema: listenAddress,
      default: ':1107',
    }),
    local: option({
      flag: '--local [bool]',
      env: 'KILO_AGENT_LOCAL',
      description: 'manage routes within a location',
      schema: schemas.bool(),
      default: true,
    }),
    mtu: option({
      flag: '--mtu <mtu>',
      env: 'KILO_AGENT_MTU',
      description: "the WireGuard interface's MTU; auto = the default-route interface's MTU - 80 (else 1420)",
      schema: mtu,
      default: 'auto',
    }),
    topologyLabel: option({
      flag: '--topology-label <label>',
      env: 'KILO_AGENT_TOPOLOGY_LABEL',
      description: 'Node label that groups nodes into locations (the location annotation wins)',
      schema: z.string().trim().min(1),
      default: DEFAULT_TOPOLOGY_LABEL,
    }),
    port: option({
      flag: '--port <port>',
      env: 'KILO_AGENT_PORT',
      description: 'WireGuard listen port (a force-endpoint annotation with a port overrides it)',
      schema: schemas.port(),
      default: DEFAULT_PORT,
    }),
    serviceCidr: option({
      flag: '--service-cidr <cidr>',
      env: 'KILO_AGENT_SERVICE_CIDR',
      description: 'service CIDR(s), not masqueraded; may be repeated or comma-separated',
      schema: schemas.list(schemas.cidr()),
      default: [],
      repeatable: true,
    }),
    internalCidr: option({
      flag: '--internal-cidr <cidr>',
      env: 'KILO_AGENT_INTERNAL_CIDR',
      description: 'only detect the internal IP inside these CIDRs; may be repeated or comma-separated',
      schema: schemas.list(schemas.cidr()),
      default: [],
      repeatable: true,
    }),
    subnet: option({
      flag: '--subnet <cidr>',
      env: 'KILO_AGENT_SUBNET',
      description: 'CIDR from which the WireGuard interfaces get their addresses',
      schema: schemas.cidr(),
      default: DEFAULT_SUBNET,
    }),
    resyncPeriod: option({
      flag: '--resync-period <duration>',
      env: 'KILO_AGENT_RESYNC_PERIOD',
      description: 'how often the whole datapath is compared with the plan and repaired',
      schema: schemas.duration({ min: 1000 }),
      default: '30s',
    }),
    iptablesForwardRules: option({
      flag: '--iptables-forward-rules [bool]',
      env: 'KILO_AGENT_IPTABLES_FORWARD_RULES',
      description: 'add ACCEPT rules to FORWARD for the location (may weaken a deny-all firewall)',
      schema: schemas.bool(),
      default: false,
    }),
    prioritisePrivateAddresses: option({
      flag: '--prioritise-private-addresses [bool]',
      env: 'KILO_AGENT_PRIORITISE_PRIVATE_ADDRESSES',
      description: "use the node's private IP as its endpoint",
      schema: schemas.bool(),
      default: false,
    }),
    logLevel: { ...logLevelOption, env: 'KILO_AGENT_LOG_LEVEL' },
    shutdownTimeout: { ...shutdownTimeoutOption, env: 'KILO_AGENT_SHUTDOWN_TIMEOUT' },
    // knet's additions (Kilo has none of these).
    keyFile: option({
      flag: '--key-file <path>',
      env: 'KILO_AGENT_KEY_FILE',
      description:
        'knet: the WireGuard private key (0600, created when missing or invalid; Kilo fixes this path)',
      schema: z.string().trim().min(1),
      default: DEFAULT_KEY_PATH,
    }),
    stableWireguardIps: option({
      flag: '--stable-wireguard-ips [bool]',
      env: 'KILO_AGENT_STABLE_WIREGUARD_IPS',
      description:
        "knet: keep each location's published WireGuard IP when locations come and go (false: Kilo's sort order)",
      schema: schemas.bool(),
      default: true,
    }),
    leaderProbeInterval: option({
      flag: '--leader-probe-interval <duration>',
      env: 'KILO_AGENT_LEADER_PROBE_INTERVAL',
      description:
        "knet: how often members probe their leader's datapath (0 = never demote a leader, as Kilo)",
      schema: schemas.duration({ min: 0 }),
      default: '1s',
    }),
    leaderProbeFailures: option({
      flag: '--leader-probe-failures <n>',
      env: 'KILO_AGENT_LEADER_PROBE_FAILURES',
      description: 'knet: failed probes in a row that make a member report its leader unhealthy',
      schema: schemas.integer({ min: 1, max: 100 }),
      default: 3,
    }),
  },
  validate(opts, { name }) {
    const subnet = parsePrefix(opts.subnet);
    if (subnet && subnet.length > (subnet.v6 ? 126 : 30)) {
      throw new UsageError(
        `${name('subnet')}: ${opts.subnet} has no room for the locations' WireGuard IPs; give a larger CIDR such as ${DEFAULT_SUBNET}`,
      );
    }
    if (opts.cleanUpInterface && !opts.cleanUp) {
      throw new UsageError(`${name('cleanUpInterface')} needs ${name('cleanUp')}; drop one of them`);
    }
  },
});

/** The parsed options. */
export type AgentOptions = ParsedOptions<typeof program.specs>;
