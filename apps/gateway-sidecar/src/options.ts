import { z } from 'zod';
import { gatewayOptions, SETTINGS_HELP } from '@knet/podgw';
import { createProgram, daemonOptions, schemas } from '@knet/runtime';
import { VERSION } from './version';

export const program = createProgram({
  name: 'gateway-sidecar',
  version: VERSION,
  description:
    "Serves the pod-gateway clients from the gateway pod: DHCP on vxlan0 (dynamic range, nat.conf's static " +
    'addresses reserved, leases kept in a file across restarts) and DNS on the gateway address (forwarding to the ' +
    'nameservers of /etc/resolv.conf as the VPN client changes it, DNS_LOCAL_CIDRS domains to the cluster DNS, ' +
    'names of the clients, a TTL-respecting cache). Run gateway-init first. SIGTERM stops both cleanly.',
  options: {
    ...gatewayOptions,
    dnsPort: {
      flag: '--dns-port <port>',
      env: 'PODGW_DNS_PORT',
      description: 'DNS port on the gateway address (UDP and TCP)',
      schema: schemas.port(),
      default: 53,
    },
    leaseTime: {
      flag: '--lease-time <duration>',
      env: 'PODGW_LEASE_TIME',
      description: 'DHCP lease time (clients renew at half of it)',
      schema: schemas.duration({ min: 10_000 }),
      default: '12h',
    },
    localDomain: {
      flag: '--local-domain <domain>',
      env: 'PODGW_LOCAL_DOMAIN',
      description: 'also answer client names under this domain (name.domain), and use it in PTR answers',
      schema: z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/i, 'must be a DNS domain')
        .optional(),
    },
    ...daemonOptions({
      envPrefix: 'PODGW',
      defaultPort: 8080,
      zero: 'any',
      readiness: 'DHCP and DNS serving',
      formerName: 'health',
    }),
  },
});
program.command.addHelpText('after', SETTINGS_HELP);
