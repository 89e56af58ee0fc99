import { z } from 'zod';
import { parseUpstream } from '@knet/dns';
import { gatewayOptions, podInterfaceOption, SETTINGS_HELP } from '@knet/podgw';
import { createProgram, daemonOptions, schemas } from '@knet/runtime';
import { VERSION } from './version';

export const program = createProgram({
  name: 'gateway-sidecar',
  version: VERSION,
  description:
    "Serves the pod-gateway clients from the gateway pod: DHCP on vxlan0 (dynamic range, nat.conf's static " +
    'addresses reserved, leases kept in a file across restarts) and DNS on the gateway address (forwarding to the ' +
    'nameservers of /etc/resolv.conf as the VPN client changes it, or to --dns-upstream; DNS_LOCAL_CIDRS domains ' +
    'to the cluster DNS; names of the clients; a TTL-respecting cache). With the kill switch on ' +
    '(VPN_BLOCK_OTHER_TRAFFIC), other names are only forwarded to upstreams routed through VPN_INTERFACE (else ' +
    "SERVFAIL). Keeps gateway-init's iptables rules in place (re-checked every --resync-interval; not ready while " +
    'they cannot be restored). Run gateway-init first. SIGTERM stops both cleanly.',
  options: {
    ...gatewayOptions,
    podInterface: podInterfaceOption,
    dnsPort: {
      flag: '--dns-port <port>',
      env: 'PODGW_DNS_PORT',
      description: 'DNS port on the gateway address (UDP and TCP)',
      schema: schemas.port(),
      default: 53,
    },
    dnsUpstream: {
      flag: '--dns-upstream <servers>',
      env: 'PODGW_DNS_UPSTREAM',
      description:
        'comma-separated nameservers (addr or addr#port) for names outside DNS_LOCAL_CIDRS, instead of following ' +
        "resolv.conf's (e.g. the VPN provider's DNS); with the kill switch on they too are asked only while routed through VPN_INTERFACE",
      schema: z
        .string()
        .transform((s) =>
          s
            .split(',')
            .map((p) => p.trim())
            .filter(Boolean),
        )
        .superRefine((list, ctx) => {
          if (list.length === 0)
            ctx.addIssue({ code: 'custom', message: 'must name at least one nameserver' });
          for (const server of list) {
            try {
              parseUpstream(server);
            } catch {
              ctx.addIssue({ code: 'custom', message: `${JSON.stringify(server)} is not addr or addr#port` });
            }
          }
        })
        .optional(),
    },
    resyncInterval: {
      flag: '--resync-interval <duration>',
      env: 'PODGW_RESYNC_INTERVAL',
      description:
        "how often the kill switch is checked: the DNS upstreams' routes, and the gateway's iptables rules (re-applied when a VPN container flushed or reordered them)",
      schema: schemas.duration({ min: 100 }),
      default: '2s',
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
      readiness: 'DHCP and DNS serving, iptables rules in place',
      formerName: 'health',
    }),
  },
});
program.command.addHelpText('after', SETTINGS_HELP);
