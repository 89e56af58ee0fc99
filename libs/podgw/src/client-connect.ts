import { DhcpClient, type DhcpClientTimeouts, type DhcpLease, type DhcpSocketFactory } from '@knet/dhcp';
import { ExecaRunner, createHostNet } from '@knet/host-net';
import { UsageError, type Logger } from '@knet/runtime';
import {
  connectedRoutes,
  deleteDefaultRoutes,
  detectPodGateway,
  ensureIp6tables,
  ensureIptables,
  ourRoutes,
  setOnlyAddress,
  setOnlyFloodEntry,
  setRoutes,
  setVxlan,
  type Changes,
  type PodNet,
} from './apply';
import {
  clientInputFilter,
  gatewayPodRoute,
  overlayDefaultRoute,
  type ClientFacts,
  type ClientPlan,
} from './client-plan';
import { ROUTE_PROTOCOLS, VXLAN_DEVICE } from './gateway-plan';
import { GatewayUnreachableError, gatewayAnswers, resolveGateway } from './gateway-locate';
import { matchNatEntry, natProblemFor, type NatEntry } from './natconf';
import { podHostname, type PodgwConfig } from './options';
import { overlay, type Settings } from './settings';

/** What client-init and client-sidecar share: the pod's network and how to reach the gateway. */
export interface ClientContext {
  net: PodNet;
  settings: Settings;
  /** This pod's nat.conf entry (static address), if any. */
  nat: NatEntry | undefined;
  hostname: string;
  /** The DHCP client id (`clientIdFor`). */
  clientId: string;
  podInterface: string;
  logger: Logger;
  /** Time limit for a DHCP lease. */
  dhcpTimeoutMs: number;
  /** Retransmission of DHCP requests (the sidecar retries fast while a gateway restarts). */
  dhcpTimeouts?: DhcpClientTimeouts;
  /** The DHCP client's UDP sockets: node:dgram by default, a `FakeDhcpNetwork` host's in unit tests. */
  dhcpSocketFactory?: DhcpSocketFactory;
}

export interface GatewayConnection {
  /** The gateway pod's IP (the VTEP). */
  gatewayIp: string;
  /** Our overlay address with prefix length. */
  address: string;
  /** The DHCP lease, when not static. */
  lease: DhcpLease | undefined;
}

/**
 * The context of a client app from its parsed options and configuration: the host-net wrappers
 * over one runner, this pod's hostname and its nat.conf entry.
 */
export function createClientContext(
  opts: {
    hostname?: string | undefined;
    podNamespace?: string | undefined;
    podInterface: string;
    dhcpTimeout: number;
  },
  config: PodgwConfig,
  logger: Logger,
  dhcp: { timeoutMs?: number; timeouts?: DhcpClientTimeouts } = {},
): ClientContext {
  const hostname = podHostname(opts);
  const badLine = natProblemFor(config.natProblems, hostname);
  if (badLine) {
    throw new UsageError(
      `${badLine.message} (this pod's line: fix it and the pod starts; other pods are not affected)`,
    );
  }
  if (!opts.podNamespace)
    logger.warn(
      'POD_NAMESPACE is not set: the DHCP client id is the pod name alone, so a pod of the same name in another namespace routed through this gateway would share its address; set it from the downward API (fieldRef metadata.namespace) or --pod-namespace',
    );
  return {
    net: createHostNet(new ExecaRunner({ logger })),
    settings: config.settings,
    nat: matchNatEntry(config.nat, hostname, (warning) => logger.warn(warning)),
    hostname,
    clientId: clientIdFor(hostname, opts.podNamespace),
    podInterface: opts.podInterface,
    logger,
    dhcpTimeoutMs: dhcp.timeoutMs ?? opts.dhcpTimeout,
    ...(dhcp.timeouts ? { dhcpTimeouts: dhcp.timeouts } : {}),
  };
}

/**
 * The pod network's gateways. On a second run (client-sidecar, or a restarted init container)
 * the default route is gone, so they are read back from the routes we installed.
 */
export async function discoverFacts(
  ctx: Pick<ClientContext, 'net' | 'settings' | 'podInterface'>,
): Promise<ClientFacts> {
  const { net, settings, podInterface } = ctx;
  const fromOurs = async (family: 'inet' | 'inet6') =>
    (await ourRoutes(net, family)).find((r) => r.dev === podInterface && r.gateway)?.gateway;
  const override = settings.k8sDefaultGw;
  const v4 = override && !override.includes(':') ? override : undefined;
  const v6 = override?.includes(':') ? override : undefined;
  return {
    podInterface,
    podGateway4: v4 ?? (await detectPodGateway(net, podInterface, 'inet')) ?? (await fromOurs('inet')),
    podGateway6: v6 ?? (await detectPodGateway(net, podInterface, 'inet6')) ?? (await fromOurs('inet6')),
    connected: await connectedRoutes(net),
  };
}

/**
 * Keeps NOT_ROUTED CIDRs and the cluster DNS on the pod network, removes every other default
 * route (IPv4 and IPv6: the leak guard) and installs the IPv6 OUTPUT guard.
 */
export async function isolatePod(ctx: ClientContext, plan: ClientPlan, facts: ClientFacts): Promise<Changes> {
  if (!facts.podGateway4) {
    throw new GatewayUnreachableError(
      `cannot find the pod network's gateway: no default route on ${ctx.podInterface} and K8S_DEFAULT_GW is not set`,
    );
  }
  const changes = await setRoutes(ctx.net, ROUTE_PROTOCOLS.podNetwork, plan.podRoutes, ctx.logger);
  changes.push(...(await deleteDefaultRoutes(ctx.net, 'inet', VXLAN_DEVICE)));
  changes.push(...(await deleteDefaultRoutes(ctx.net, 'inet6', VXLAN_DEVICE)));
  changes.push(...(await ensureIp6tables(ctx.net, [plan.ip6tables], ['filter'], ctx.logger)));
  return changes;
}

/**
 * A stable DHCP client id for this pod: type 0 and `<namespace>/<hostname>` (the hostname alone
 * without a namespace). Stable, so a new vxlan0 MAC (the sidecar rebuilding it) keeps the address;
 * with the namespace, so two pods of one name in two namespaces routed through one gateway neither
 * share an address nor release each other's. (pod-gateway's clients were told apart by MAC.)
 */
export function clientIdFor(hostname: string, namespace?: string): string {
  return `00${Buffer.from(namespace ? `${namespace}/${hostname}` : hostname).toString('hex')}`;
}

/**
 * A DHCP client for vxlan0 with its MAC (read from the link unless the caller has it), this pod's
 * hostname and stable client id.
 */
export async function dhcpClientFor(ctx: ClientContext, mac?: string): Promise<DhcpClient> {
  return new DhcpClient({
    interface: VXLAN_DEVICE,
    mac: mac ?? (await ctx.net.ip.getLink(VXLAN_DEVICE)).mac ?? '',
    hostname: ctx.hostname,
    clientId: ctx.clientId,
    logger: ctx.logger,
    ...(ctx.dhcpTimeouts ? { timeouts: ctx.dhcpTimeouts } : {}),
    ...(ctx.dhcpSocketFactory ? { socketFactory: ctx.dhcpSocketFactory } : {}),
  });
}

/**
 * Finds the gateway and routes through it: resolve it, build vxlan0 with the flood entry to it,
 * route its pod IP via the pod network, take a lease (or the static address), default route over
 * the overlay, and check that the gateway answers. Idempotent; returns what it did.
 */
export async function connectToGateway(
  ctx: ClientContext,
  plan: ClientPlan,
  facts: ClientFacts,
  options: { requestedIp?: string; signal?: AbortSignal } = {},
): Promise<GatewayConnection & { changes: Changes }> {
  const { net, settings, logger } = ctx;
  const gatewayIp = await resolveGateway(settings.gatewayName, settings.k8sDnsIps);
  // The overlay from this gateway pod only, before vxlan0 can receive anything.
  const changes = await ensureIptables(
    net.iptables,
    [clientInputFilter(settings, facts, gatewayIp)],
    ['filter'],
    logger,
  );
  changes.push(...(await setVxlan(net, plan.vxlan, logger)));
  changes.push(...(await setOnlyFloodEntry(net, VXLAN_DEVICE, gatewayIp)));
  // The gateway pod's IP via the pod network, and for a lease the broadcast route over vxlan0.
  const podRoute = gatewayPodRoute(gatewayIp, facts);
  const toGateway = [...(podRoute ? [podRoute] : []), ...(plan.staticAddress ? [] : [plan.broadcastRoute])];
  changes.push(...(await setRoutes(net, ROUTE_PROTOCOLS.toGateway, toGateway, logger)));

  let lease: DhcpLease | undefined;
  let address: string;
  if (plan.staticAddress) {
    address = plan.staticAddress;
  } else {
    const link = await net.ip.getLink(VXLAN_DEVICE);
    const client = await dhcpClientFor(ctx, link.mac ?? '');
    const requestedIp = options.requestedIp ?? (await currentAddress(net))?.split('/')[0];
    lease = await client.acquire({
      timeoutMs: ctx.dhcpTimeoutMs,
      ...(requestedIp ? { requestedIp } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    checkLease(settings, lease);
    address = `${lease.address}/${lease.prefixLength}`;
    if (lease.mtu !== undefined && settings.vpnInterfaceMtu === undefined && lease.mtu !== link.mtu) {
      await net.ip.setLink(VXLAN_DEVICE, { mtu: lease.mtu });
      changes.push(`${VXLAN_DEVICE} mtu ${lease.mtu} (from DHCP)`);
    }
  }
  changes.push(...(await setOnlyAddress(net, VXLAN_DEVICE, address)));
  const defaultRoute = overlayDefaultRoute(plan.gatewayAddress);
  changes.push(...(await setRoutes(net, ROUTE_PROTOCOLS.overlay, [defaultRoute], logger)));

  const answers = await gatewayAnswers(net, plan.gatewayAddress, settings.connectionRetryCount);
  if (!answers) {
    throw new GatewayUnreachableError(
      `gateway ${plan.gatewayAddress} (pod ${gatewayIp}) does not answer over ${VXLAN_DEVICE}: ` +
        `is UDP ${settings.vxlanPort} allowed between pods, this pod's IP in the gateway's VXLAN_CLIENT_CIDRS, and VXLAN_ID ${settings.vxlanId} the same on the gateway?`,
    );
  }
  return { gatewayIp, address, lease, changes };
}

/** A DHCP lease that is not one the gateway can have given (`checkLease`). */
export class LeaseRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LeaseRefusedError';
  }
}

/**
 * Refuses a lease the gateway cannot have given: an address outside the overlay (VXLAN_IP_NETWORK's
 * /24), its network, broadcast or gateway address, another prefix length, or a router other than
 * the gateway (NET.1). The default route always goes via NET.1; a lease without a router is fine.
 */
export function checkLease(settings: Settings, lease: DhcpLease): void {
  const net = overlay(settings);
  const given = `${lease.address}/${lease.prefixLength}${lease.router ? ` router ${lease.router}` : ''}`;
  const refuse = (why: string) =>
    new LeaseRefusedError(
      `refused the DHCP lease ${given} from ${lease.serverId} on ${VXLAN_DEVICE}: ${why}; ` +
        'is VXLAN_IP_NETWORK the same on the gateway, or another DHCP server answering on the overlay?',
    );
  const octets = lease.address.split('.');
  const last = Number(octets[3]);
  if (octets.length !== 4 || octets.slice(0, 3).join('.') !== settings.vxlanNetwork) {
    throw refuse(`the address is outside the overlay ${net.network} (VXLAN_IP_NETWORK)`);
  }
  if (!(last >= 2 && last <= 254)) {
    throw refuse(`${lease.address} is the overlay's network, broadcast or gateway address`);
  }
  if (lease.prefixLength !== net.prefixLength) {
    throw refuse(`the overlay is a /${net.prefixLength}, not a /${lease.prefixLength}`);
  }
  if (lease.router !== undefined && lease.router !== net.gateway) {
    throw refuse(`the router must be the gateway ${net.gateway}`);
  }
}

/** The address on vxlan0, if any (`a.b.c.d/24`). */
export async function currentAddress(net: PodNet): Promise<string | undefined> {
  if (!(await net.ip.findLink(VXLAN_DEVICE))) return undefined;
  return (await net.ip.listAddresses({ dev: VXLAN_DEVICE, family: 'inet' }))[0]?.cidr;
}
