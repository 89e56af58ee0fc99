import { z } from 'zod';
import { FLAVORS, TEMPLATE_VARIABLES } from '@knet/capi';
import {
  DEFAULT_EXIT_CODES,
  UsageError,
  createCommandSet,
  createProgram,
  kubeconfigOption,
  option,
  schemas,
  type OptionsProgram,
  type OptionSpecs,
} from '@knet/runtime';
import { cidrsOverlap } from './generate';
import { publicKeyProblem } from './ssh-key';
import { VERSION } from './version';

/** A schema from a regular expression and what it must be. */
const matching = (re: RegExp, what: string) => z.string().trim().regex(re, `must be ${what}`);

const dnsLabel = matching(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a lowercase DNS label such as test1-ab12c');
const slug = (example: string) => matching(/^[a-z0-9][a-z0-9._-]{0,63}$/, `a slug such as ${example}`);

/**
 * `generate`: the seed's generate-yaml.sh. Env names are the seed's (PACKET_PROJECT_ID,
 * PACKET_API_KEY, CLUSTER_NAME, FACILITY, SSH_KEY) and CAPEM's clusterctl variables for the rest,
 * so the same environment serves `clusterctl generate cluster` and this command; defaults are the
 * clusterctl templates' (TEMPLATE_VARIABLES).
 */
export const generateProgram = createProgram({
  name: 'capi-packet generate',
  description:
    "write a workload cluster's manifests into --out: cluster.yaml, machines.yaml, components.yaml (the provider, with the token; 0600), addons.yaml (CPEM's configuration, with the token; 0600), and an ed25519 key pair unless SSH_KEY is given",
  options: {
    out: option({
      flag: '--out <dir>',
      env: 'CAPI_PACKET_OUT',
      description: 'directory of the files (created if missing)',
      schema: z.string().trim().min(1, 'is empty'),
      default: 'out/packet',
    }),
    force: option({
      flag: '-f, --force',
      description: 'overwrite files already there (an existing id_ed25519 is kept and used)',
      schema: schemas.bool(),
      default: false,
    }),
    flavor: option({
      flag: '--flavor <name>',
      env: 'CAPI_PACKET_FLAVOR',
      description: `cluster template: ${FLAVORS.join(' (KubeadmControlPlane + CABPK) or ')} (this provider's PacketKubeadmConfig)`,
      schema: z.enum(FLAVORS, { error: `must be one of ${FLAVORS.join(', ')}` }),
      default: 'default',
    }),
    projectId: option({
      flag: '--project-id <uuid>',
      env: 'PACKET_PROJECT_ID',
      aliases: { env: ['PROJECT_ID'] },
      description: 'Equinix Metal project UUID',
      schema: matching(
        /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
        'a UUID',
      ),
    }),
    apiKey: option({
      flag: '--api-key <token>',
      env: 'PACKET_API_KEY',
      description:
        'Equinix Metal API token, for components.yaml and addons.yaml; give it through the env, not as a flag',
      schema: z.string().trim().min(1, 'is empty'),
      secret: true,
    }),
    apiUrl: option({
      flag: '--api-url <url>',
      env: 'METAL_API_URL',
      description: "Metal API of the manager in components.yaml (default: the components' own default)",
      schema: schemas.url().optional(),
    }),
    clusterName: option({
      flag: '--cluster-name <name>',
      env: 'CLUSTER_NAME',
      description: 'name of the Cluster (default: test1-<5 random [a-z0-9]>, as the seed)',
      schema: dnsLabel.optional(),
    }),
    metro: option({
      flag: '--metro <code>',
      env: 'METRO',
      description: `metro of the devices (default ${TEMPLATE_VARIABLES.location.default}, which holds the seed's facility ewr1)`,
      schema: matching(/^[a-z]{2}$/, 'a metro code such as ny or da').optional(),
    }),
    facility: option({
      flag: '--facility <code>',
      env: 'FACILITY',
      description: 'facility instead of a metro (deprecated by Equinix), e.g. ewr1',
      schema: matching(/^[a-z]{2,3}[0-9]{1,2}$/, 'a facility code such as ewr1').optional(),
    }),
    sshKey: option({
      flag: '--ssh-key <line>',
      env: 'SSH_KEY',
      description: 'public key line installed on every device (default: a new ed25519 pair in --out)',
      schema: z
        .string()
        .trim()
        .superRefine((s, ctx) => {
          const problem = publicKeyProblem(s);
          if (problem) ctx.addIssue(problem);
        })
        .optional(),
      // Never echoed: a private key given by mistake must not end up in a terminal.
      secret: true,
    }),
    kubernetesVersion: option({
      flag: '--kubernetes-version <version>',
      env: TEMPLATE_VARIABLES.kubernetesVersion.name,
      description: 'Kubernetes version of the nodes',
      schema: matching(/^v\d+\.\d+\.\d+$/, 'a version such as v1.34.4'),
      default: TEMPLATE_VARIABLES.kubernetesVersion.default,
    }),
    controlPlaneCount: option({
      flag: '--control-plane-count <n>',
      env: TEMPLATE_VARIABLES.controlPlaneMachineCount.name,
      description: 'control-plane machines (default flavor: odd, for the stacked etcd)',
      schema: schemas.integer({ min: 1, max: 15 }),
      default: TEMPLATE_VARIABLES.controlPlaneMachineCount.default,
    }),
    workerCount: option({
      flag: '--worker-count <n>',
      env: TEMPLATE_VARIABLES.workerMachineCount.name,
      description: 'worker machines',
      schema: schemas.integer({ min: 0, max: 1000 }),
      default: TEMPLATE_VARIABLES.workerMachineCount.default,
    }),
    controlPlaneType: option({
      flag: '--control-plane-type <plan>',
      env: TEMPLATE_VARIABLES.controlPlaneNodeType.name,
      description: 'plan of the control-plane devices',
      schema: slug('c3.small.x86'),
      default: TEMPLATE_VARIABLES.controlPlaneNodeType.default,
    }),
    workerType: option({
      flag: '--worker-type <plan>',
      env: TEMPLATE_VARIABLES.workerNodeType.name,
      description: 'plan of the worker devices',
      schema: slug('m3.small.x86'),
      default: TEMPLATE_VARIABLES.workerNodeType.default,
    }),
    nodeOs: option({
      flag: '--node-os <slug>',
      env: TEMPLATE_VARIABLES.nodeOS.name,
      description: 'operating system of the devices (Ubuntu or Debian: the node script uses apt)',
      schema: slug('ubuntu_24_04'),
      default: TEMPLATE_VARIABLES.nodeOS.default,
    }),
    podCidr: option({
      flag: '--pod-cidr <cidr>',
      env: TEMPLATE_VARIABLES.podCIDR.name,
      description: 'pod network',
      schema: schemas.cidr(),
      default: TEMPLATE_VARIABLES.podCIDR.default,
    }),
    serviceCidr: option({
      flag: '--service-cidr <cidr>',
      env: TEMPLATE_VARIABLES.serviceCIDR.name,
      description: 'service network',
      schema: schemas.cidr(),
      default: TEMPLATE_VARIABLES.serviceCIDR.default,
    }),
    components: option({
      flag: '--components <file>',
      env: 'CAPI_PACKET_COMPONENTS',
      description:
        "the clusterctl bundle's infrastructure-components.yaml (default: the one shipped next to capi-packet)",
      schema: schemas.existingFile().optional(),
    }),
  },
  validate(opts, { name }) {
    if (opts.metro && opts.facility) {
      throw new UsageError(`give ${name('metro')} or ${name('facility')}, not both: devices go to one place`);
    }
    if (opts.flavor === 'default' && opts.controlPlaneCount % 2 === 0) {
      throw new UsageError(
        `${name('controlPlaneCount')} is ${opts.controlPlaneCount}: KubeadmControlPlane refuses an even number of control planes (stacked etcd); give 1, 3 or 5`,
      );
    }
    if (cidrsOverlap(opts.podCidr, opts.serviceCidr)) {
      throw new UsageError(
        `${name('podCidr')} and ${name('serviceCidr')} overlap: give two separate networks`,
      );
    }
  },
});

/** `kubeconfig <cluster>`: what `clusterctl get kubeconfig` prints. */
export const kubeconfigProgram = createProgram({
  name: 'capi-packet kubeconfig',
  description:
    "print a workload cluster's admin kubeconfig, read from the management cluster: Secret <cluster>-kubeconfig, key value (as clusterctl get kubeconfig)",
  options: {
    namespace: option({
      flag: '-n, --namespace <name>',
      description: "the Cluster's namespace (default: the kubeconfig context's, else default)",
      schema: dnsLabel.optional(),
    }),
    kubeconfig: { ...kubeconfigOption, description: 'kubeconfig of the management cluster' },
  },
});
kubeconfigProgram.command.argument('<cluster>', 'the Cluster name');

export const cli = createCommandSet({
  name: 'capi-packet',
  description:
    "Cluster manifests and kubeconfigs for Cluster API on Packet / Equinix Metal (the seed's generate-yaml.sh and clusterctl get kubeconfig).",
  version: VERSION,
  commands: { generate: generateProgram, kubeconfig: kubeconfigProgram },
  exitCodes: {
    ...DEFAULT_EXIT_CODES,
    1: 'runtime error: the API server refused or failed, no kubeconfig Secret (yet), a file not writable',
    2: 'invalid flag, argument or environment variable; files already there without -f',
  },
});

/** The `<cluster>` of `kubeconfig` (after `parseCommand`): a Cluster name. */
export function kubeconfigCluster(
  args: readonly string[] = (kubeconfigProgram as OptionsProgram<OptionSpecs>).command.args,
): string {
  const [cluster, ...extra] = args;
  if (!cluster || extra.length > 0 || dnsLabel.safeParse(cluster).success === false) {
    throw new UsageError(
      `kubeconfig: want 'kubeconfig CLUSTER' with a Cluster name such as test1-ab12c, got ${JSON.stringify(args.join(' '))}`,
    );
  }
  return cluster;
}
