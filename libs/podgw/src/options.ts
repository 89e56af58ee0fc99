import { hostname } from 'node:os';
import { z } from 'zod';
import { UsageError, formatDuration, logLevelOption, option, schemas } from '@knet/runtime';
import { DEFAULT_RESOLV_CONF, DEFAULT_STATE_DIR } from './state';
import { loadNatConf, type NatEntry, type NatProblem } from './natconf';
import { SETTING_NAMES, loadSettings, type LoadedSettings } from './settings';
import { SettingsError } from './shell-env';

/**
 * What the shared option groups below give when nothing is set, as the apps receive them (parsed).
 * Declared once: the options take their defaults from here, and each app's option test spreads
 * the group it uses and spells out only its own options.
 */
export const configDefaults = {
  settings: ['/default_config/settings.sh', '/config/settings.sh'],
  natConfig: '/config/nat.conf',
  logLevel: 'info', // runtime's logLevelOption
} as const;

/** `gatewayOptions` unset. */
export const gatewayDefaults = {
  ...configDefaults,
  stateDir: DEFAULT_STATE_DIR,
  resolvConf: DEFAULT_RESOLV_CONF,
} as const;

/** `--pod-interface` unset (gateway-init and the clients). */
export const DEFAULT_POD_INTERFACE = 'eth0';

/** `clientOptions` unset. */
export const clientDefaults = {
  ...configDefaults,
  podInterface: DEFAULT_POD_INTERFACE,
  hostname: undefined,
  dhcpTimeout: 30_000,
} as const;

/** Options every pod-gateway app has: where the settings and nat.conf are, the log level. */
export const configOptions = {
  settings: option({
    flag: '--settings <files>',
    env: 'PODGW_SETTINGS',
    description:
      'comma-separated settings.sh files (KEY=value, read in order, missing ones skipped); environment variables of the same names override them',
    schema: z.string().transform((s) =>
      s
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean),
    ),
    default: configDefaults.settings,
  }),
  natConfig: option({
    flag: '--nat-config <file>',
    env: 'PODGW_NAT_CONF',
    description:
      'static clients and port forwards, lines of "hostname octet tcp:port[:clientport],…" (missing = none)',
    schema: z.string().min(1),
    default: configDefaults.natConfig,
  }),
  logLevel: logLevelOption,
};

/** The pod's interface (gateway and clients). */
export const podInterfaceOption = option({
  flag: '--pod-interface <name>',
  env: 'POD_INTERFACE',
  description: "the pod's network interface, underlay of the overlay",
  schema: z.string().regex(/^[A-Za-z0-9_.:-]{1,15}$/, 'must be an interface name (1-15 characters)'),
  default: DEFAULT_POD_INTERFACE,
});

/** Options shared by client-init and client-sidecar (the sidecar adds its own). */
export const clientOptions = {
  ...configOptions,
  podInterface: podInterfaceOption,
  hostname: {
    flag: '--hostname <name>',
    env: 'PODGW_HOSTNAME',
    description:
      "this pod's name as nat.conf and DHCP know it (default: the host name, which is the pod name)",
    schema: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/i, 'must be a host name (letters, digits, dashes)')
      .optional(),
  },
  podNamespace: {
    flag: '--pod-namespace <name>',
    env: 'POD_NAMESPACE',
    description:
      "this pod's namespace (downward API: fieldRef metadata.namespace), part of its DHCP client id: pods of the same name in two namespaces get leases of their own",
    schema: z
      .string()
      .regex(
        /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
        'must be a namespace name (lower-case letters, digits, dashes)',
      )
      .optional(),
  },
  dhcpTimeout: {
    flag: '--dhcp-timeout <duration>',
    env: 'PODGW_DHCP_TIMEOUT',
    description: 'how long to wait for a DHCP lease from the gateway',
    schema: schemas.duration({ min: 1000 }),
    default: formatDuration(clientDefaults.dhcpTimeout),
  },
} as const;
/** Where the gateway keeps state (gateway-init and gateway-sidecar). */
export const stateDirOption = option({
  flag: '--state-dir <dir>',
  env: 'PODGW_STATE_DIR',
  description:
    "the gateway's state: the DHCP lease file and the pod's original resolv.conf (an emptyDir survives container restarts)",
  schema: z.string().min(1),
  default: DEFAULT_STATE_DIR,
});

/** The pod's resolv.conf (gateway-init saves the original; gateway-sidecar forwards to and follows it). */
export const resolvConfOption = option({
  flag: '--resolv-conf <file>',
  env: 'PODGW_RESOLV_CONF',
  description: "the pod's resolv.conf (a VPN client rewrites it)",
  schema: z.string().min(1),
  default: DEFAULT_RESOLV_CONF,
});

/** Options shared by gateway-init and gateway-sidecar (each adds its own). */
export const gatewayOptions = {
  ...configOptions,
  stateDir: stateDirOption,
  resolvConf: resolvConfOption,
} as const;

/** The settings help section: every setting the apps read, listed under --help. */
export const SETTINGS_HELP = `
Settings (settings.sh or environment; pod-gateway's names):
${wrap(SETTING_NAMES.join(', '), 78, '  ')}
  See the README of @knet/podgw for their meaning and defaults. Differences from
  pod-gateway: VXLAN_PORT unset or 0 means 4789 (not the kernel's 8472).`;

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(indent + line);
  return lines.join('\n');
}

export interface PodgwConfig extends LoadedSettings {
  nat: NatEntry[];
  /** nat.conf lines skipped as bad (each also in `warnings`); a client they name refuses to start. */
  natProblems: NatProblem[];
}

/**
 * Loads settings and nat.conf. A settings problem, or a nat.conf that cannot be read, is a
 * `UsageError` (one line, exit 2); a bad nat.conf line is skipped with a warning and recorded in
 * `natProblems`, so that it stops only the pod it names (see natProblemFor).
 */
export function loadConfig(
  opts: { settings: readonly string[]; natConfig: string },
  env: NodeJS.ProcessEnv = process.env,
): PodgwConfig {
  try {
    const loaded = loadSettings({ files: opts.settings.map((path) => ({ path })), env });
    const natProblems: NatProblem[] = [];
    const nat = loadNatConf(opts.natConfig, { firstDynamicIp: loaded.settings.firstDynamicIp }, natProblems);
    const skipped = natProblems.map((p) => `${p.message} (line skipped: pod ${p.hostname} will not start)`);
    return { ...loaded, warnings: [...loaded.warnings, ...skipped], nat, natProblems };
  } catch (e) {
    if (e instanceof SettingsError) throw new UsageError(e.message);
    throw e;
  }
}

/** This pod's name for nat.conf and DHCP: `--hostname`, else the host name (the pod name). */
export function podHostname(opts: { hostname?: string | undefined }): string {
  return (opts.hostname ?? hostname()).toLowerCase();
}
