import { z } from 'zod';
import {
  DEFAULT_EXIT_CODES,
  UsageError,
  createCommandSet,
  errorMessage,
  createProgram,
  daemonOptions,
  kubeconfigOption,
  logLevelOption,
  option,
  schemas,
} from '@knet/runtime';
import { twingateBaseUrl } from '@knet/twingate';
import { ordinalFromPodName } from './plan';
import { VERSION } from './version';

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const name = (what: string) =>
  z
    .string()
    .trim()
    .min(1, `${what} is empty`)
    .max(52, 'must be at most 52 characters (the ConfigMap name adds -connectors)')
    .regex(NAME, 'must be lowercase letters, digits and -, starting and ending with a letter or digit');

/** The Twingate tenant and key, shared by every command. */
const tenantOptions = {
  apiKey: option({
    flag: '--api-key <key>',
    env: 'TWINGATE_API_KEY',
    description:
      'Twingate admin API key (Read, Write & Provision scope for provision; Read & Write for gc; Read for status)',
    schema: z.string().trim().min(1, 'is empty'),
    secret: true,
  }),
  account: option({
    flag: '--account <tenant>',
    env: 'TWINGATE_ACCOUNT',
    description: 'the Twingate tenant: acme, acme.twingate.com or https://acme.twingate.com',
    schema: z.string().trim().optional(),
  }),
  apiUrl: option({
    flag: '--api-url <url>',
    env: 'TWINGATE_API_URL',
    description:
      'base URL of the admin API instead of the tenant’s (a proxy, a test tenant; http only on loopback)',
    schema: z.string().trim().optional(),
  }),
  network: option({
    flag: '--network <name>',
    env: 'TWINGATE_NETWORK',
    description: 'name of the remote network the connectors belong to',
    schema: z.string().trim().min(1, 'is empty'),
  }),
  apiDeadline: option({
    flag: '--api-deadline <duration>',
    env: 'TWINGATE_API_DEADLINE',
    description: 'time one API call may take, retries and rate-limit waits included',
    schema: schemas.duration({ min: 1000 }),
    default: '5m',
  }),
};

/** The release whose connectors a command works on. */
const releaseOptions = {
  release: option({
    flag: '--release <name>',
    env: 'CONNECTOR_RELEASE',
    description: 'the release (the chart’s fullname): claims live in the ConfigMap <release>-connectors',
    schema: name('the release'),
  }),
  namePrefix: option({
    flag: '--name-prefix <prefix>',
    env: 'CONNECTOR_NAME_PREFIX',
    description: 'connectors are named <prefix>-<ordinal> (default: the release)',
    schema: z
      .string()
      .trim()
      .regex(/^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lowercase letters, digits and -'),
    default: '',
  }),
  namespace: option({
    flag: '--namespace <namespace>',
    env: 'POD_NAMESPACE',
    description: 'namespace of the release (default: the service account’s)',
    schema: z.string().trim().optional(),
  }),
  kubeconfig: {
    ...kubeconfigOption,
    description: 'kubeconfig of the Kubernetes API (default: the pod’s service account)',
  },
};

function validateTenant<
  T extends {
    account?: string | undefined;
    apiUrl?: string | undefined;
    release: string;
    namePrefix: string;
  },
>(opts: T, name: (k: 'account' | 'apiUrl') => string): T {
  if (!opts.account && !opts.apiUrl)
    throw new UsageError(`${name('account')}: required (or ${name('apiUrl')})`);
  try {
    twingateBaseUrl({ account: opts.account, apiUrl: opts.apiUrl });
  } catch (e) {
    throw new UsageError(`${opts.apiUrl ? name('apiUrl') : name('account')}: ${errorMessage(e)}`);
  }
  return { ...opts, namePrefix: opts.namePrefix || opts.release };
}

export const provisionProgram = createProgram({
  name: 'connector-init provision',
  description:
    "claim this pod's connector (reuse an offline one, or create it), generate its tokens and hand them to the connector container; then hand a fresh pair to every restart of that container",
  options: {
    ...tenantOptions,
    ...releaseOptions,
    podName: option({
      flag: '--pod-name <name>',
      env: 'POD_NAME',
      description: 'this pod’s name; the ordinal is the number after its last -',
      schema: z.string().trim().optional(),
    }),
    ordinal: option({
      flag: '--ordinal <n>',
      env: 'CONNECTOR_ORDINAL',
      description: 'this replica’s ordinal (default: from --pod-name)',
      schema: schemas.integer({ min: 0, max: 99_999 }).optional(),
    }),
    reuseOffline: option({
      flag: '--reuse-offline <bool>',
      env: 'CONNECTOR_REUSE_OFFLINE',
      description:
        'reuse an offline connector of the network before creating one (never one a sibling holds)',
      schema: schemas.bool(),
      default: true,
    }),
    reuseMinAge: option({
      flag: '--reuse-min-age <duration>',
      env: 'CONNECTOR_REUSE_MIN_AGE',
      description: 'a connector counts as offline for reuse only when silent (or created) this long ago',
      schema: schemas.duration({ min: 0 }),
      default: '10m',
    }),
    statusNotifications: option({
      flag: '--status-notifications <bool>',
      env: 'CONNECTOR_STATUS_NOTIFICATIONS',
      description: 'turn the vendor’s status notifications on for connectors this release creates',
      schema: schemas.bool(),
      default: false,
    }),
    handoffDir: option({
      flag: '--handoff-dir <dir>',
      env: 'CONNECTOR_HANDOFF_DIR',
      description:
        'memory emptyDir shared with the connector container (gets sh, launch and the tokens FIFO)',
      schema: z.string().trim().min(1),
      default: '/run/knet/connector',
    }),
    launcherShell: option({
      flag: '--launcher-shell <path>',
      env: 'CONNECTOR_LAUNCHER_SHELL',
      description: 'a static shell copied into the handoff dir as sh (the vendor image need not have one)',
      schema: schemas.existingFile(),
      default: '/bin/busybox',
    }),
    once: option({
      flag: '--once',
      env: 'CONNECTOR_ONCE',
      description:
        'exit after the first handoff (default: keep running and hand a fresh pair to every restart of the connector container)',
      schema: schemas.bool(),
      default: false,
    }),
    ...daemonOptions({
      envPrefix: 'CONNECTOR_INIT',
      defaultPort: 9090,
      zero: 'any',
      readiness: "ready once this ordinal's connector is claimed and its tokens are ready",
    }),
    logLevel: { ...logLevelOption, env: 'CONNECTOR_INIT_LOG_LEVEL', aliases: { env: ['LOG_LEVEL'] } },
  },
  validate(opts, { name }) {
    const ordinal =
      opts.ordinal ?? (opts.podName === undefined ? undefined : ordinalFromPodName(opts.podName));
    if (ordinal === undefined) {
      throw new UsageError(
        opts.podName === undefined
          ? `${name('ordinal')}: required (or ${name('podName')} ending in -<ordinal>)`
          : `${name('podName')}: ${JSON.stringify(opts.podName)} does not end in -<ordinal>; pass ${name('ordinal')}`,
      );
    }
    return { ...validateTenant(opts, name), ordinal };
  },
});

/** The ordinal `validate` settled (from --ordinal or --pod-name). */
export function ordinalOf(opts: { ordinal?: number | undefined }): number {
  if (opts.ordinal === undefined) throw new Error('internal: provision options not validated');
  return opts.ordinal;
}

export const gcProgram = createProgram({
  name: 'connector-init gc',
  description:
    'delete the connectors this release created for ordinals that no longer exist (a CronJob, and with --replicas 0 the chart’s pre-delete hook)',
  options: {
    ...tenantOptions,
    ...releaseOptions,
    replicas: option({
      flag: '--replicas <n>',
      env: 'CONNECTOR_REPLICAS',
      description:
        'the StatefulSet’s replicas: ordinals from n up are gone (0: the release is being deleted)',
      schema: schemas.integer({ min: 0, max: 99_999 }),
    }),
    deleteAdopted: option({
      flag: '--delete-adopted <bool>',
      env: 'CONNECTOR_DELETE_ADOPTED',
      description: 'also delete offline connectors the release adopted (default: release them, keep them)',
      schema: schemas.bool(),
      default: false,
    }),
    logLevel: { ...logLevelOption, env: 'CONNECTOR_INIT_LOG_LEVEL', aliases: { env: ['LOG_LEVEL'] } },
  },
  validate: (opts, { name }) => validateTenant(opts, name),
});

export const statusProgram = createProgram({
  name: 'connector-init status',
  description: "print the release's connectors: each ordinal's connector, its origin and the vendor's state",
  options: {
    ...tenantOptions,
    ...releaseOptions,
    output: option({
      flag: '-o, --output <format>',
      description: 'table or json',
      schema: z.enum(['table', 'json']),
      default: 'table',
    }),
    logLevel: {
      ...logLevelOption,
      env: 'CONNECTOR_INIT_LOG_LEVEL',
      default: 'warn',
      aliases: { env: ['LOG_LEVEL'] },
    },
  },
  validate: (opts, { name }) => validateTenant(opts, name),
});

export const cli = createCommandSet({
  name: 'connector-init',
  description:
    'One Twingate connector per StatefulSet replica: claimed race-free, tokens handed over in memory, never shared, never orphaned.',
  version: VERSION,
  commands: { provision: provisionProgram, gc: gcProgram, status: statusProgram },
  exitCodes: {
    ...DEFAULT_EXIT_CODES,
    2: 'invalid flag, environment variable or configuration; API key refused or missing a scope; unknown remote network',
  },
});
