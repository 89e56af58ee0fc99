import type { NetHost } from '@knet/testing';
import { createHostNet, ExecaRunner, type HostNet, type Logger } from '../src';

/**
 * The real wrappers, running inside a lab host: through the runner's `namespace` option
 * (`ip netns exec`), or for hosts with private mounts through the host's nsenter prefix.
 */
export function hostNetFor(host: NetHost, logger?: Logger): { runner: ExecaRunner; net: HostNet } {
  const runner = new ExecaRunner({
    ...(host.privateMounts ? { prefix: host.commandPrefix } : { namespace: host.name }),
    ...(logger ? { logger } : {}),
  });
  return { runner, net: createHostNet(runner, logger ? { logger } : {}) };
}
