import { z } from 'zod';
import {
  DEFAULT_EXIT_CODES,
  UsageError,
  createCommandSet,
  createProgram,
  kubeconfigOption,
  logLevelOption,
  option,
  schemas,
  shutdownTimeoutOption,
  type OptionsProgram,
  type OptionSpecs,
} from '@knet/runtime';
import {
  DEFAULT_PORT,
  DEFAULT_SUBNET,
  DEFAULT_TOPOLOGY_LABEL,
  KILO_INTERFACE,
  SHOWCONF_FORMATS,
  parseAllowedIP,
} from '@knet/kilo';
import { VERSION } from './version';

/** A CIDR as Kilo's flags parse it (`net.ParseCIDR`: the network is kept). */
const kiloCidr = z.string().transform((s, ctx) => {
  const cidr = parseAllowedIP(s.trim());
  if (cidr === undefined) {
    ctx.addIssue(`${JSON.stringify(s)} is not a CIDR such as 10.4.0.0/16`);
    return z.NEVER;
  }
  return cidr;
});

/**
 * Kilo's persistent flags (cmd/kgctl/main.go), on every command. `--backend` has one value, as in
 * Kilo; `--subnet` and `--stable-wireguard-ips` are knet's.
 */
const globalOptions = {
  backend: option({
    flag: '--backend <backend>',
    env: 'KGCTL_BACKEND',
    description: 'the backend for the mesh: kubernetes',
    schema: z.enum(['kubernetes']),
    default: 'kubernetes',
  }),
  kubeconfig: {
    ...kubeconfigOption,
    description: 'path to kubeconfig (default: ~/.kube/config, in a pod its service account)',
  },
  meshGranularity: option({
    flag: '--mesh-granularity <granularity>',
    env: 'KGCTL_MESH_GRANULARITY',
    description:
      "granularity of the mesh: location, full, cross, or auto (the first node's kilo.squat.ai/granularity annotation)",
    schema: z.enum(['auto', 'location', 'full', 'cross']),
    default: 'auto',
  }),
  port: option({
    flag: '--port <port>',
    env: 'KGCTL_PORT',
    description: 'the WireGuard port over which the nodes communicate',
    schema: schemas.port(),
    default: DEFAULT_PORT,
  }),
  subnet: option({
    flag: '--subnet <cidr>',
    env: 'KGCTL_SUBNET',
    description: "knet: the Kilo subnet when no node publishes a kilo.squat.ai/wireguard-ip (Kilo's default)",
    schema: kiloCidr,
    default: DEFAULT_SUBNET,
  }),
  topologyLabel: option({
    flag: '--topology-label <label>',
    env: 'KGCTL_TOPOLOGY_LABEL',
    description: 'Kubernetes node label used to group nodes into logical locations',
    schema: z.string().trim().min(1, 'is empty'),
    default: DEFAULT_TOPOLOGY_LABEL,
  }),
  stableWireguardIps: option({
    flag: '--stable-wireguard-ips [bool]',
    env: 'KGCTL_STABLE_WIREGUARD_IPS',
    description:
      "knet: compute WireGuard IPs as kilo-agent does by default, keeping the published ones (false: Kilo's sort order)",
    schema: schemas.bool(),
    default: true,
  }),
  logLevel: { ...logLevelOption, env: 'KGCTL_LOG_LEVEL', default: 'warn' },
};

const allowedIPsOption = (description: string) =>
  option({
    flag: '--allowed-ips <cidrs>',
    env: 'KGCTL_ALLOWED_IPS',
    description,
    schema: schemas.list(kiloCidr),
    default: [],
    repeatable: true,
  });

export const graphProgram = createProgram({
  name: 'kgctl graph',
  description: 'print the Kilo network as a Graphviz graph (DOT) of its ready nodes and peers',
  options: globalOptions,
});

export const showconfProgram = createProgram({
  name: 'kgctl showconf',
  description: 'print the WireGuard configuration of a node or peer: showconf node NAME | showconf peer NAME',
  options: {
    ...globalOptions,
    asPeer: option({
      flag: '--as-peer [bool]',
      env: 'KGCTL_AS_PEER',
      description: 'show the resource as a peer, to configure it as a peer of another WireGuard interface',
      schema: schemas.bool(),
      default: false,
    }),
    output: option({
      flag: '-o, --output <format>',
      env: 'KGCTL_OUTPUT',
      description: `output format with --as-peer: ${SHOWCONF_FORMATS.join(', ')}`,
      schema: z.enum(['wireguard', 'yaml', 'json'], {
        error: `must be one of ${SHOWCONF_FORMATS.join(', ')}`,
      }),
      default: 'wireguard',
    }),
    allowedIPs: allowedIPsOption('comma-separated CIDRs added to the allowed IPs (with --as-peer)'),
  },
});
showconfProgram.command.argument('<node|peer>', 'what to show').argument('<name>', 'the Node or Peer name');

export const connectProgram = createProgram({
  name: 'kgctl connect',
  description:
    'connect this host to the Kilo cluster as the Peer PEER_NAME over WireGuard (Linux, root): kept in sync until SIGINT/SIGTERM, then removed',
  options: {
    ...globalOptions,
    allowedIP: option({
      flag: '-a, --allowed-ip <cidr>',
      env: 'KGCTL_ALLOWED_IP',
      description: "this peer's allowed IP: the Peer's spec.allowedIPs and the interface's address",
      schema: kiloCidr,
      default: '10.10.10.10/32',
    }),
    allowedIPs: allowedIPsOption(
      'additional allowed IPs of the cluster (e.g. the service CIDR), routed via the first segment',
    ),
    privateKey: option({
      flag: '--private-key <path>',
      env: 'KGCTL_PRIVATE_KEY',
      description: 'an existing WireGuard private key file (default: generate one)',
      schema: schemas.existingFile().optional(),
    }),
    cleanUp: option({
      flag: '--clean-up [bool]',
      env: 'KGCTL_CLEAN_UP',
      description: 'on exit, remove the routes, the interface and the Peer this command created',
      schema: schemas.bool(),
      default: true,
    }),
    mtu: option({
      flag: '--mtu <bytes>',
      env: 'KGCTL_MTU',
      description: 'the MTU of the WireGuard interface',
      schema: schemas.integer({ min: 576, max: 65535 }),
      default: 1420,
    }),
    resyncPeriod: option({
      flag: '--resync-period <duration>',
      env: 'KGCTL_RESYNC_PERIOD',
      description: 'how often to reconcile (also on every Node or Peer change)',
      schema: schemas.duration({ min: 100 }),
      default: '30s',
    }),
    interface: option({
      flag: '-i, --interface <name>',
      env: 'KGCTL_INTERFACE',
      description: 'the WireGuard interface; created if missing',
      schema: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be an interface name of 1–15 characters'),
      default: KILO_INTERFACE,
    }),
    persistentKeepalive: option({
      flag: '--persistent-keepalive <seconds>',
      env: 'KGCTL_PERSISTENT_KEEPALIVE',
      description: 'keepalive of the Peer this command creates; 0 = off',
      schema: schemas.integer({ min: 0, max: 65535 }),
      default: 10,
    }),
    wireguard: option({
      flag: '--wireguard <implementation>',
      env: 'KGCTL_WIREGUARD',
      description:
        "knet: how a missing interface is created: auto (the kernel's, else wireguard-go), kernel, userspace",
      schema: z.enum(['auto', 'kernel', 'userspace']),
      default: 'auto',
    }),
    shutdownTimeout: { ...shutdownTimeoutOption, env: 'KGCTL_SHUTDOWN_TIMEOUT' },
    // connect logs what it does (JSON lines on stdout, as Kilo's); graph and showconf only warn.
    logLevel: { ...logLevelOption, env: 'KGCTL_LOG_LEVEL', default: 'info' },
  },
});
connectProgram.command.argument('<peer-name>', 'the name of the Peer to create or use');

export const cli = createCommandSet({
  name: 'kgctl',
  description: 'Manage a Kilo network: graph, showconf, connect (a re-build of Kilo’s kgctl on @knet/kilo).',
  version: VERSION,
  commands: { graph: graphProgram, showconf: showconfProgram, connect: connectProgram },
  exitCodes: {
    ...DEFAULT_EXIT_CODES,
    2: 'invalid flag or argument; unknown node or peer; a node that is not a leader',
  },
});

/** The positional arguments commander saw for `program` (after `parseCommand`). */
function operands(program: OptionsProgram<OptionSpecs>): readonly string[] {
  return program.command.args;
}

export interface ShowconfTarget {
  kind: 'node' | 'peer';
  name: string;
}

/** `showconf node NAME` / `showconf peer NAME`: anything else is a one-line UsageError. */
export function showconfTarget(args: readonly string[] = operands(showconfProgram)): ShowconfTarget {
  const [kind, name, ...extra] = args;
  if ((kind !== 'node' && kind !== 'peer') || !name || extra.length > 0) {
    throw new UsageError(
      `showconf: want 'showconf node NAME' or 'showconf peer NAME', got ${JSON.stringify(args.join(' '))}`,
    );
  }
  return { kind, name };
}

/** `connect PEER_NAME`: a Kubernetes object name. */
export function connectPeerName(args: readonly string[] = operands(connectProgram)): string {
  const [name, ...extra] = args;
  if (!name || extra.length > 0 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
    throw new UsageError(
      `connect: want 'connect PEER_NAME' with a lowercase RFC 1123 name, got ${JSON.stringify(args.join(' '))}`,
    );
  }
  return name;
}
