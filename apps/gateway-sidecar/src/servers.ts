// The gateway pod's DHCP and DNS servers on the overlay, built from pod-gateway's settings and
// nat.conf: main.ts only wires this to the process (options, logger, metrics endpoint, shutdown).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DhcpServer, FdbVtepFlooder, type DhcpSocketFactory, type FdbWatcher } from '@knet/dhcp';
import { DnsServer, RouteUpstreamGate, parseResolvConf, splitRulesFromSettings } from '@knet/dns';
import type { BridgeFdb, IpRoute } from '@knet/host-net';
import { VXLAN_DEVICE, overlay, saveOriginalResolvConf, type PodgwConfig } from '@knet/podgw';
import { Gauge, UsageError, type Logger, type Registry } from '@knet/runtime';
import { clientHosts } from './hosts';

export interface OverlayServersOptions {
  config: PodgwConfig;
  /** Where the lease file and the original resolv.conf are kept. */
  stateDir: string;
  /** The pod's resolv.conf: the DNS server forwards to its nameservers and follows it. */
  resolvConf: string;
  /** Fixed nameservers for names outside the split domains, instead of resolv.conf's. */
  dnsUpstream?: readonly string[] | undefined;
  dnsPort: number;
  /** How often the DNS upstreams' routes are checked with the kill switch on (ms). */
  resyncInterval: number;
  /** Route lookups for the kill switch's DNS gate. */
  ip: IpRoute;
  /** DHCP lease time in ms. */
  leaseTime: number;
  /** Clients' names also answer as `name.localDomain`. */
  localDomain?: string | undefined;
  /** vxlan0's flood list, which the DHCP server keeps for its broadcast replies. */
  fdb: BridgeFdb;
  /** FDB changes as they happen, so a lease starts no `bridge` process (default: list per client). */
  fdbWatcher?: FdbWatcher;
  /**
   * vxlan0's MAC: DHCP replies then go straight to the client's VTEP as VXLAN datagrams, at once
   * and to that client alone (default: the kernel's broadcast, once the flood entry is there).
   */
  vxlanMac?: string | undefined;
  logger: Logger;
  registry: Registry;
  /** DHCP sockets (default: the machine's). */
  dhcpSocketFactory?: DhcpSocketFactory;
}

/** Fails with what to do when vxlan0 lacks the gateway address (gateway-init did not run). */
export async function requireGatewayAddress(ip: IpRoute, config: PodgwConfig): Promise<void> {
  const { gateway } = overlay(config.settings);
  const addresses = await ip.listAddresses({ dev: VXLAN_DEVICE, family: 'inet' }).catch(() => []);
  if (!addresses.some((a) => a.local === gateway)) {
    throw new Error(
      `${VXLAN_DEVICE} does not have the gateway address ${gateway}: run gateway-init first (with the same settings)`,
    );
  }
}

/**
 * DHCP on vxlan0 (dynamic range, nat.conf's static addresses reserved, leases in
 * `stateDir/leases.json`) and DNS on the gateway address (resolv.conf's nameservers, DNS_LOCAL
 * split forwarding, the clients' names from the leases and nat.conf).
 */
export class OverlayServers {
  readonly dns: DnsServer;
  readonly dhcp: DhcpServer;
  /** With the kill switch on: default upstreams only while routed through VPN_INTERFACE. */
  readonly gate: RouteUpstreamGate | undefined;
  private serving_ = false;

  constructor(private readonly o: OverlayServersOptions) {
    const { settings, nat } = o.config;
    const ov = overlay(settings);
    if (settings.gatewayEnableDnssec && o.config.origins.GATEWAY_ENABLE_DNSSEC !== 'default') {
      // pod-gateway's dnsmasq validated with this on; this server does not, so it must not seem to.
      throw new UsageError(
        `GATEWAY_ENABLE_DNSSEC=true (from ${o.config.origins.GATEWAY_ENABLE_DNSSEC}): this gateway does not validate DNSSEC itself ` +
          "(pod-gateway's dnsmasq did); DNSSEC records and the DO/AD/CD bits pass through to the upstream, which validates. " +
          'Use a validating upstream (--dns-upstream) and remove the setting, or set it to false',
      );
    }
    const original = parseResolvConf(readFileSync(saveOriginalResolvConf(o.stateDir, o.resolvConf), 'utf8'));
    const vpn = settings.vpnBlockOtherTraffic ? settings.vpnInterface : undefined;
    this.gate = vpn
      ? new RouteUpstreamGate({
          via: vpn,
          routeDev: async (address) => (await o.ip.routeTo(address))?.dev,
          intervalMs: o.resyncInterval,
          logger: o.logger,
        })
      : undefined;
    if (this.gate) {
      const gate = this.gate;
      new Gauge({
        name: 'knet_podgw_dns_upstreams',
        help: 'Default DNS upstreams by kill-switch state: allowed (routed through VPN_INTERFACE) or blocked',
        labelNames: ['state'],
        registers: [o.registry],
        collect() {
          this.set({ state: 'allowed' }, gate.open);
          this.set({ state: 'blocked' }, gate.blocked);
        },
      });
    }
    this.dns = new DnsServer({
      listen: [{ address: ov.gateway, port: o.dnsPort }],
      ...(o.dnsUpstream ? { upstreams: o.dnsUpstream } : { resolvConfPath: o.resolvConf }),
      split: splitRulesFromSettings(settings, original),
      ...(this.gate ? { gate: this.gate } : {}),
      ...(o.localDomain ? { domain: o.localDomain } : {}),
      ...(o.vxlanMac ? { vxlan: { vni: settings.vxlanId, port: settings.vxlanPort, mac: o.vxlanMac } } : {}),
      logger: o.logger,
      registry: o.registry,
    });
    this.dhcp = new DhcpServer({
      serverAddress: ov.gateway,
      pool: {
        network: ov.network,
        firstDynamic: settings.firstDynamicIp,
        leaseTimeSec: Math.round(o.leaseTime / 1000),
        reservations: nat.map((e) => ({ hostname: e.hostname, ip: ov.address(e.octet) })),
      },
      dnsServers: [ov.gateway],
      ...(settings.vpnInterfaceMtu !== undefined ? { mtu: settings.vpnInterfaceMtu } : {}),
      ...(o.localDomain ? { domain: o.localDomain } : {}),
      leaseFile: join(o.stateDir, 'leases.json'),
      flooder: new FdbVtepFlooder({
        fdb: o.fdb,
        dev: VXLAN_DEVICE,
        logger: o.logger,
        ...(o.fdbWatcher ? { watcher: o.fdbWatcher } : {}),
      }),
      ...(o.vxlanMac ? { vxlan: { vni: settings.vxlanId, port: settings.vxlanPort, mac: o.vxlanMac } } : {}),
      logger: o.logger,
      registry: o.registry,
      onLeasesChanged: (leased) => this.dns.setHosts(clientHosts(leased, nat, ov.address)),
      ...(o.dhcpSocketFactory ? { socketFactory: o.dhcpSocketFactory } : {}),
    });
  }

  /** True from the end of `start()` until `stop()`: the readiness of the pod. */
  get serving(): boolean {
    return this.serving_;
  }

  /** Starts DNS, then DHCP (whose first leases feed the DNS names). */
  async start(): Promise<void> {
    await this.dns.start();
    await this.gate?.start();
    await this.dhcp.start();
    this.serving_ = true;
    const { settings, nat } = this.o.config;
    const ov = overlay(settings);
    this.o.logger.info(
      {
        dns: `${ov.gateway}:${this.o.dnsPort}`,
        dnsUpstreams: this.o.dnsUpstream ? this.o.dnsUpstream.join(',') : `from ${this.o.resolvConf}`,
        dnsKillSwitch: this.gate ? `only via ${settings.vpnInterface}` : 'off',
        dhcpRange: `${ov.address(settings.firstDynamicIp)}-${ov.address(254)}`,
        static: nat.length,
        stateDir: this.o.stateDir,
      },
      'serving DHCP and DNS on the overlay',
    );
  }

  /** Stops both (the lease file is written); never rejects. */
  async stop(): Promise<void> {
    this.serving_ = false;
    this.gate?.stop();
    await Promise.allSettled([this.dhcp.stop(), this.dns.stop()]);
    this.o.logger.info('DHCP and DNS stopped');
  }
}
