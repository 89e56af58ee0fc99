import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Pinger } from '@knet/host-net';
import { errorMessage } from '@knet/runtime';
import { VXLAN_DEVICE } from './gateway-plan';

export class GatewayUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GatewayUnreachableError';
  }
}

/**
 * The gateway pod's IPv4 address: GATEWAY_NAME itself when it is an address, else an A lookup at
 * the cluster DNS servers (K8S_DNS_IPS) — not the pod's resolv.conf, which points at the gateway.
 * Unlike pod-gateway's `dig +short`, a timeout or an empty answer is an error, never an "IP".
 */
export async function resolveGateway(
  name: string,
  dnsServers: readonly string[],
  options: { timeoutMs?: number; tries?: number } = {},
): Promise<string> {
  if (name === '') {
    throw new GatewayUnreachableError(
      'GATEWAY_NAME is empty: set it (or the webhook\'s "gateway" env var) to the gateway pod\'s DNS name',
    );
  }
  if (isIP(name) === 4) return name;
  if (isIP(name) === 6) {
    throw new GatewayUnreachableError(
      `GATEWAY_NAME ${name}: the overlay runs over IPv4; give an IPv4 address or a name`,
    );
  }
  if (dnsServers.length === 0) {
    throw new GatewayUnreachableError(
      `cannot resolve GATEWAY_NAME ${name}: K8S_DNS_IPS is empty (set it to the cluster DNS service IP, e.g. 10.96.0.10)`,
    );
  }
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 2000, tries: options.tries ?? 2 });
  resolver.setServers([...dnsServers]);
  try {
    const addresses = await resolver.resolve4(name.endsWith('.') ? name : `${name}.`);
    const ip = addresses.find((a) => isIP(a) === 4);
    if (!ip) throw new Error('no A record');
    return ip;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? errorMessage(e);
    const hint =
      code === 'ENOTFOUND' || code === 'ENODATA'
        ? 'is the gateway pod running, and its headless Service selecting it?'
        : code === 'EREFUSED' || code === 'ESERVFAIL'
          ? 'the server does not resolve it: is K8S_DNS_IPS the cluster DNS?'
          : 'is the cluster DNS reachable from the pod network?';
    throw new GatewayUnreachableError(
      `cannot resolve GATEWAY_NAME ${name} at ${dnsServers.join(', ')}: ${code}; ${hint}`,
    );
  }
}

/**
 * Whether the gateway answers ICMP echo over the overlay (`ping -I vxlan0`, up to `tries` echo
 * requests, one second each): the client's check, with CONNECTION_RETRY_COUNT tries. A missing
 * `ping` (iputils-ping) throws rather than passing for an unreachable gateway.
 */
export async function gatewayAnswers(net: { ping: Pinger }, address: string, tries = 1): Promise<boolean> {
  return (await net.ping.ping(address, { device: VXLAN_DEVICE, count: tries })).answered;
}
