import { DhcpServer, FakeDhcpNetwork, type FakeHost } from '@knet/dhcp';
import { createFakeHostNet, type FakeHostNet } from '@knet/host-net';
import { silentLogger, type Logger } from '@knet/runtime';
import { clientIdFor, type ClientContext } from './client-connect';
import { matchNatEntry, parseNatConf } from './natconf';
import { loadSettings, overlay } from './settings';

/**
 * Pods on @knet/host-net's in-memory fakes, for unit tests of the apply and connect steps and of
 * the apps built on them: the network a kubelet leaves a pod with (eth0 on 192.0.2.0/24 and
 * 2001:db8::/64, default routes via `.1`), and for a client the whole {@link ClientContext}.
 */
async function podNetwork(links: readonly (readonly [string, ...string[]])[]): Promise<FakeHostNet> {
  const net = createFakeHostNet();
  for (const [dev, ...cidrs] of links) {
    await net.ip.addVeth(dev, `${dev}-peer`, { peerNamespace: 'outside' });
    for (const cidr of cidrs) await net.ip.addAddress(dev, cidr);
    await net.ip.setLink(dev, { up: true });
  }
  await net.ip.replaceRoute({ dst: 'default', via: '192.0.2.1' });
  return net;
}

/** A gateway pod: eth0 192.0.2.10/24 with the default route via 192.0.2.1, and a VPN client's tun0. */
export function createFakeGatewayPod(): Promise<FakeHostNet> {
  return podNetwork([
    ['eth0', '192.0.2.10/24'],
    ['tun0', '198.51.100.2/24'],
  ]);
}

/** The settings of a fake client pod unless overridden: the gateway pod at 192.0.2.10, no DNS lookup. */
export const FAKE_CLIENT_ENV: Readonly<Record<string, string>> = {
  GATEWAY_NAME: '192.0.2.10',
  K8S_DNS_IPS: '198.51.100.10',
  NOT_ROUTED_TO_GATEWAY_CIDRS: '198.51.100.0/28',
};

export interface FakeClientPodOptions {
  /** Settings (as environment variables) over {@link FAKE_CLIENT_ENV}. */
  env?: Record<string, string>;
  natConf?: string;
  /** Default `client-0`. */
  hostname?: string;
  /** Its namespace (POD_NAMESPACE), part of its DHCP client id; default none. */
  namespace?: string;
  /**
   * Whether the gateway's overlay address answers ping (default true); later, `net.ping.silence()`
   * and `net.ping.answer()` it.
   */
  gatewayAnswers?: boolean;
  /**
   * The overlay's DHCP network: the client's DHCP sockets join it as a host named after the pod.
   * Default: a network of its own, where nobody answers (never the machine's real sockets).
   */
  dhcp?: FakeDhcpNetwork;
  logger?: Logger;
  dhcpTimeoutMs?: number;
}

export interface FakeClientPod {
  ctx: ClientContext;
  net: FakeHostNet;
  /** The pod on the DHCP network. Its addresses decide which unicasts reach it: add the leased one for renewals. */
  dhcpHost: FakeHost;
}

/** A client pod: eth0 192.0.2.21/24 and 2001:db8::21/64, default routes via 192.0.2.1 and 2001:db8::1. */
export async function createFakeClientPod(options: FakeClientPodOptions = {}): Promise<FakeClientPod> {
  const net = await podNetwork([['eth0', '192.0.2.21/24', '2001:db8::21/64']]);
  await net.ip.replaceRoute({ dst: 'default', via: '2001:db8::1' });
  const { settings } = loadSettings({ env: { ...FAKE_CLIENT_ENV, ...options.env } });
  const hostname = options.hostname ?? 'client-0';
  const nat = parseNatConf(options.natConf ?? '', 'nat.conf', { firstDynamicIp: settings.firstDynamicIp });
  if (options.gatewayAnswers ?? true) net.ping.answer(overlay(settings).gateway);
  const dhcpHost = (options.dhcp ?? new FakeDhcpNetwork()).host(hostname);
  const ctx: ClientContext = {
    net,
    settings,
    nat: matchNatEntry(nat, hostname),
    hostname,
    clientId: clientIdFor(hostname, options.namespace),
    podInterface: 'eth0',
    logger: options.logger ?? silentLogger,
    dhcpTimeoutMs: options.dhcpTimeoutMs ?? 2000,
    dhcpTimeouts: { initialRetransmitMs: 20, maxRetransmitMs: 50 },
    dhcpSocketFactory: dhcpHost.socketFactory,
  };
  return { ctx, net, dhcpHost };
}

/**
 * The gateway's DHCP service for fake client pods: a real DhcpServer at 172.16.0.1 (the pool of
 * 172.16.0.0/24) on its own in-memory network; give `network` to `createFakeClientPod`. Stop it.
 */
export async function startFakeGatewayDhcp(
  options: { leaseTimeSec?: number; mtu?: number } = {},
): Promise<{ network: FakeDhcpNetwork; server: DhcpServer }> {
  const network = new FakeDhcpNetwork();
  const server = new DhcpServer({
    serverAddress: '172.16.0.1',
    pool: { network: '172.16.0.0/24', leaseTimeSec: options.leaseTimeSec ?? 3600 },
    ...(options.mtu !== undefined ? { mtu: options.mtu } : {}),
    logger: silentLogger,
    socketFactory: network.host('gateway', '172.16.0.1').socketFactory,
  });
  await server.start();
  return { network, server };
}
