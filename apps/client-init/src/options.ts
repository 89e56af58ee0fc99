import { clientOptions, SETTINGS_HELP } from '@knet/podgw';
import { createProgram } from '@knet/runtime';
import { VERSION } from './version';

export const program = createProgram({
  name: 'client-init',
  version: VERSION,
  description:
    "Routes this pod through the pod-gateway gateway, as an init container: keeps NOT_ROUTED_TO_GATEWAY_CIDRS and the cluster DNS on the pod network, removes the default routes (IPv4 and IPv6), resolves the gateway through the cluster DNS, builds vxlan0 to it, takes a DHCP lease (or nat.conf's static address), routes by default over vxlan0 and checks that the gateway answers. Exits 1 with one line when it cannot.",
  options: clientOptions,
});
program.command.addHelpText('after', SETTINGS_HELP);
