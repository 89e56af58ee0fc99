import { z } from 'zod';
import { clientOptions, SETTINGS_HELP } from '@knet/podgw';
import { UsageError, createProgram, daemonOptions, kubeconfigOption, schemas } from '@knet/runtime';
import { VERSION } from './version';

export const program = createProgram({
  name: 'client-sidecar',
  version: VERSION,
  description:
    'Keeps a pod-gateway client pod routed: checks the gateway over vxlan0, and when it stops answering (the gateway ' +
    'pod was recreated with a new IP) resolves it again and rebuilds the tunnel and the lease; renews the DHCP lease; ' +
    "exits 0 once the pod's other containers have finished, so Jobs complete.",
  options: {
    ...clientOptions,
    ...daemonOptions({
      envPrefix: 'PODGW',
      defaultPort: 0,
      zero: 'off',
      readiness: 'ready while routed through the gateway',
      formerName: 'health',
    }),
    checkInterval: {
      flag: '--check-interval <duration>',
      env: 'PODGW_CHECK_INTERVAL',
      description:
        'time between gateway checks (ICMP over vxlan0, 1 s timeout); CONNECTION_RETRY_COUNT failures in a row trigger a rebuild',
      schema: schemas.duration({ min: 100 }),
      default: '1s',
    },
    retryInterval: {
      flag: '--retry-interval <duration>',
      env: 'PODGW_RETRY_INTERVAL',
      description: 'time between rebuild attempts while the gateway is away',
      schema: schemas.duration({ min: 100 }),
      default: '500ms',
    },
    podName: {
      flag: '--pod-name <name>',
      env: 'POD_NAME',
      description:
        "this pod's name (downward API, metadata.name); with --pod-namespace it enables exiting when the other containers finished",
      schema: z.string().min(1).optional(),
    },
    containerName: {
      flag: '--container-name <name>',
      env: 'PODGW_CONTAINER_NAME',
      description: "this sidecar's container name in the pod spec (it does not wait for itself)",
      schema: z.string().min(1),
      default: 'gateway-sidecar',
    },
    podPollInterval: {
      flag: '--pod-poll-interval <duration>',
      env: 'PODGW_POD_POLL_INTERVAL',
      description: 'time between reads of this pod (needs only "get" on pods)',
      schema: schemas.duration({ min: 500 }),
      default: '5s',
    },
    kubeconfig: {
      ...kubeconfigOption,
      description: "credentials to read this pod (default: the pod's service account)",
    },
  },
  validate(opts, { name }) {
    // --pod-namespace alone is the DHCP client id's (clientOptions); the pod is watched with both.
    if (opts.podName && !opts.podNamespace) {
      throw new UsageError(`${name('podName')} needs ${name('podNamespace')}: give both or neither`);
    }
  },
});
program.command.addHelpText('after', SETTINGS_HELP);
