import { gatewayOptions, podInterfaceOption, SETTINGS_HELP } from '@knet/podgw';
import { createProgram, schemas } from '@knet/runtime';
import { VERSION } from './version';

export const program = createProgram({
  name: 'gateway-init',
  version: VERSION,
  description:
    "Sets up the pod-gateway gateway pod's network, once, as an init container: the vxlan0 overlay with the gateway " +
    'address, IP forwarding, a policy rule that lets the main table beat a VPN client, NAT of client traffic, ' +
    'port forwards from nat.conf and the kill switch. Idempotent: running it again changes nothing.',
  options: {
    ...gatewayOptions,
    podInterface: podInterfaceOption,
    dryRun: {
      flag: '--dry-run',
      description: 'print the desired state as JSON and change nothing',
      schema: schemas.bool(),
      default: false,
    },
  },
});
program.command.addHelpText('after', SETTINGS_HELP);
