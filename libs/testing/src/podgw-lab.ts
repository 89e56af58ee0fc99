/**
 * A pod-gateway world in network namespaces, for the end-to-end suite (e2e/podgw) and the bench:
 *
 *   pod network (switch "podnet", 192.0.2.0/24, 2001:db8::/64)
 *     router   192.0.2.1    the pods' default gateway; also 198.51.100.1 towards the cluster DNS
 *     gw       192.0.2.10   the gateway pod: eth0 + tun0 (a veth standing in for the VPN)
 *     clients  192.0.2.21…  client pods
 *   cluster DNS  198.51.100.10  dnsmasq: pod-gateway.vpn.svc.cluster.local → the gateway pod,
 *                               web.default.svc.cluster.local → 198.51.100.20; a whoami TCP server
 *   VPN side (switch "vpnnet", 203.0.113.0/24)
 *     vpn      203.0.113.1  the VPN server and "the internet": dnsmasq for outside.example, a whoami
 *                           server on 203.0.113.100:7; reachable from the gateway only over tun0
 *
 * Every app runs as its real bundle (`node <app>.cjs`) inside its namespace.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appBundle } from './bundle';
import { NetLab, type LabProcess, type NetHost, type NetSwitch } from './netns';

const GATEWAY_NAME = 'pod-gateway.vpn.svc.cluster.local';
const CLUSTER_DNS = '198.51.100.10';
const INTERNET = '203.0.113.100';
const VPN_SERVER = '203.0.113.1';
/** The VPN side's addresses (switch "vpnnet"): only the gateway's tun0 may carry packets to them. */
const VPN_SIDE = '203.0.113.0/24';

/**
 * The leak counters: an iptables rule without a target in the raw table's PREROUTING (it only
 * counts, before conntrack and routing see the packet), each named by its comment.
 *   router      packets reaching the router for the VPN side's addresses. The router is the pod
 *               network's only way out besides the gateway's tun0, so any packet counted here
 *               left the pod network past the VPN (the kill switch failed).
 *   clusterDns  UDP/53 queries carrying "outside" reaching the cluster DNS: names outside the split
 *               domains (DNS_LOCAL_CIDRS), which must go to the VPN's DNS or be refused: one counted
 *               here (sent by the gateway's DNS or by a client directly) is a DNS leak.
 */
const LEAK_COUNTERS = {
  router: {
    comment: 'knet leak counter: to the VPN side',
    match: ['-d', VPN_SIDE],
  },
  clusterDns: {
    comment: 'knet leak counter: outside queries',
    match: ['-p', 'udp', '--dport', '53', '-m', 'string', '--string', 'outside', '--algo', 'bm'],
  },
} as const;
type LeakCounter = keyof typeof LEAK_COUNTERS;

/** Packets counted since the leak counters were installed or last reset. */
export interface LeakCounts {
  /** Packets for the VPN side's addresses that reached the router (left the pod network not by tun0). */
  router: number;
  /** Queries for names outside the split domains that reached the cluster DNS. */
  clusterDns: number;
}

/**
 * settings.sh keys → values (pod-gateway's own names, see @knet/podgw's SETTINGS). Plain strings:
 * the test bed imports no lib whose tests import the test bed (that would be a project cycle).
 */
type Settings = Partial<Record<string, string>>;

const SETTINGS: Settings = {
  GATEWAY_NAME,
  K8S_DNS_IPS: CLUSTER_DNS,
  NOT_ROUTED_TO_GATEWAY_CIDRS: '198.51.100.0/28',
  VXLAN_ID: '42',
  VXLAN_PORT: '4789',
  VXLAN_IP_NETWORK: '172.16.0',
  VPN_INTERFACE: 'tun0',
  VPN_BLOCK_OTHER_TRAFFIC: 'true',
  VPN_TRAFFIC_PORT: '1194',
  VPN_LOCAL_CIDRS: '198.51.100.0/28 192.0.2.0/24',
  DNS_LOCAL_CIDRS: 'cluster.local',
};
const NAT_CONF = 'web 10 tcp:8080:80\n';

/** Inline Node scripts run inside hosts (no files to ship). */
const WHOAMI_SERVER = `
const net = require('net');
const [host, port] = process.argv.slice(1);
net.createServer((s) => { s.end(s.remoteAddress + '\\n'); s.on('error', () => {}); })
  .listen(Number(port), host, () => console.log('listening'));`;

const WHOAMI_CLIENT = `
const net = require('net');
const [host, port, timeout] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let out = '';
s.setTimeout(Number(timeout || 3000), () => { console.log('timeout'); process.exit(3); });
s.on('data', (d) => (out += d));
s.on('end', () => { console.log(out.trim()); process.exit(0); });
s.on('error', (e) => { console.log('error ' + e.code); process.exit(2); });`;

const RESOLVE = `
const { Resolver } = require('dns').promises;
const [server, name, type] = process.argv.slice(1);
const r = new Resolver({ timeout: 2000, tries: 2 });
r.setServers([server]);
(type === 'PTR' ? r.reverse(name) : r.resolve(name, type || 'A'))
  .then((a) => console.log(JSON.stringify(a)))
  .catch((e) => { console.log('error ' + e.code); process.exit(2); });`;

export interface PodgwClient {
  host: NetHost;
  hostname: string;
  podIp: string;
  sidecar?: LabProcess;
}

export interface PodgwGateway {
  host: NetHost;
  podIp: string;
  vpnIp: string;
  sidecar?: LabProcess;
}

export class PodgwLab {
  /** The gateway's cluster DNS name, the cluster DNS, the internet host behind the VPN, the VPN server. */
  static readonly GATEWAY_NAME = GATEWAY_NAME;
  static readonly CLUSTER_DNS = CLUSTER_DNS;
  static readonly INTERNET = INTERNET;
  static readonly VPN_SERVER = VPN_SERVER;
  /** The VPN side's addresses, which only the gateway's tun0 may carry. */
  static readonly VPN_SIDE = VPN_SIDE;
  /** The settings.sh and nat.conf a lab starts with. */
  static readonly SETTINGS = SETTINGS;
  static readonly NAT_CONF = NAT_CONF;

  readonly dir = mkdtempSync(join(tmpdir(), 'knet-podgw-'));
  readonly configDir = join(this.dir, 'config');
  readonly stateDir = join(this.dir, 'state');
  readonly hostsFile = join(this.dir, 'cluster-hosts');
  router!: NetHost;
  clusterDns!: NetHost;
  vpn!: NetHost;
  podnet!: NetSwitch;
  vpnnet!: NetSwitch;
  private dnsmasq!: LabProcess;
  private nextClient = 21;

  private constructor(readonly lab: NetLab) {}

  static async create(settings = SETTINGS, natConf = NAT_CONF): Promise<PodgwLab> {
    const l = new PodgwLab(await NetLab.create());
    try {
      await l.build(settings, natConf);
    } catch (e) {
      await l.dispose();
      throw e;
    }
    return l;
  }

  private async build(settings: Settings, natConf: string): Promise<void> {
    const { lab } = this;
    mkdirSync(this.configDir, { recursive: true });
    // settings.sh as pod-gateway's chart writes it: KEY="value" lines.
    const lines = Object.entries(settings).map(([k, v]) => `${k}="${v}"`);
    writeFileSync(join(this.configDir, 'settings.sh'), `${lines.join('\n')}\n`);
    writeFileSync(join(this.configDir, 'nat.conf'), natConf);
    this.router = await lab.addHost('router', { forwarding: true });
    this.clusterDns = await lab.addHost('k8sdns');
    this.vpn = await lab.addHost('vpn');
    this.podnet = await lab.addSwitch('podnet');
    this.vpnnet = await lab.addSwitch('vpnnet');
    await this.podnet.connect(this.router, { ifname: 'eth0', address: ['192.0.2.1/24', '2001:db8::1/64'] });
    await lab.link(this.router, this.clusterDns, {
      a: { ifname: 'eth1', address: '198.51.100.1/28' },
      b: { ifname: 'eth0', address: `${CLUSTER_DNS}/28` },
    });
    await this.clusterDns.ip('route', 'add', 'default', 'via', '198.51.100.1');
    await this.vpnnet.connect(this.vpn, { ifname: 'eth0', address: `${VPN_SERVER}/24` });
    await this.vpn.ip('addr', 'add', `${INTERNET}/32`, 'dev', 'lo');

    this.setClusterRecord('192.0.2.10');
    this.dnsmasq = await this.startDnsmasq(this.clusterDns, 'k8sdns', CLUSTER_DNS, [
      `--addn-hosts=${this.hostsFile}`,
      '--host-record=web.default.svc.cluster.local,198.51.100.20',
      // Like CoreDNS: authoritative for the cluster domain (NXDOMAIN for unknown names).
      '--local=/cluster.local/',
    ]);
    await this.startDnsmasq(this.vpn, 'vpndns', VPN_SERVER, [`--address=/outside.example/${INTERNET}`]);
    await this.serveWhoami(this.vpn, INTERNET, 7);
    await this.serveWhoami(this.clusterDns, CLUSTER_DNS, 7);
  }

  /** A dnsmasq answering only on `address` from `host`, with no upstream: `records` are all it knows. */
  private async startDnsmasq(
    host: NetHost,
    name: string,
    address: string,
    records: string[],
  ): Promise<LabProcess> {
    const p = host.spawn('dnsmasq', [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--user=root',
      `--pid-file=${join(this.dir, `${name}.pid`)}`,
      `--listen-address=${address}`,
      '--bind-interfaces',
      ...records,
      '--log-facility=-',
    ]);
    await p.waitForOutput(/started/i, 10_000);
    return p;
  }

  /** Points the gateway's cluster DNS name at `podIp` (dnsmasq re-reads its hosts file on SIGHUP). */
  setClusterRecord(podIp: string): void {
    writeFileSync(this.hostsFile, `${podIp} ${GATEWAY_NAME}\n`);
    if (this.dnsmasq?.running) process.kill(this.dnsmasq.pid, 'SIGHUP');
  }

  async serveWhoami(host: NetHost, address: string, port: number): Promise<LabProcess> {
    const p = host.spawn('node', ['-e', WHOAMI_SERVER, address, String(port)]);
    await p.waitForOutput(/listening/, 10_000);
    return p;
  }

  /** Connects from `host` to address:port; the peer address the server saw, or `error …`/`timeout`. */
  async whoami(host: NetHost, address: string, port = 7, timeoutMs = 3000): Promise<string> {
    const r = await host.exec('node', ['-e', WHOAMI_CLIENT, address, String(port), String(timeoutMs)], {
      check: false,
    });
    return r.stdout.trim();
  }

  /** Resolves at `server` from inside `host`: JSON of the answers, or `error CODE`. */
  async resolve(host: NetHost, server: string, name: string, type = 'A'): Promise<string> {
    const r = await host.exec('node', ['-e', RESOLVE, server, name, type], { check: false });
    return r.stdout.trim();
  }

  /** A gateway pod: eth0 on the pod network, tun0 on the VPN side with routes 0/1 and 128/1 over it. */
  async addGateway(podIp: string, vpnIp: string): Promise<PodgwGateway> {
    const host = await this.lab.addHost('gw');
    await this.podnet.connect(host, { ifname: 'eth0', address: `${podIp}/24` });
    await host.ip('route', 'add', 'default', 'via', '192.0.2.1');
    await this.vpnnet.connect(host, { ifname: 'tun0', address: `${vpnIp}/24` });
    await host.ip('route', 'add', '0.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
    await host.ip('route', 'add', '128.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
    return { host, podIp, vpnIp };
  }

  /** The pod's original resolv.conf (the cluster DNS) and, as a VPN client leaves it, the VPN's DNS. */
  resolvConf(gw: PodgwGateway): string {
    const file = join(this.dir, `resolv-${gw.podIp}.conf`);
    writeFileSync(file, `nameserver ${CLUSTER_DNS}\nsearch vpn.svc.cluster.local svc.cluster.local\n`);
    return file;
  }

  appArgs(): string[] {
    return [
      `--settings=${join(this.configDir, 'settings.sh')}`,
      `--nat-config=${join(this.configDir, 'nat.conf')}`,
    ];
  }

  /** Runs gateway-init in the gateway; returns its exit code and output. */
  async gatewayInit(gw: PodgwGateway, resolvConf: string, env: NodeJS.ProcessEnv = {}) {
    const bundle = await appBundle('gateway-init');
    return gw.host.exec(
      'env',
      [
        ...envArgs(env),
        'node',
        bundle,
        ...this.appArgs(),
        `--state-dir=${this.stateDir}`,
        `--resolv-conf=${resolvConf}`,
      ],
      { check: false, timeoutMs: 60_000 },
    );
  }

  async startGatewaySidecar(
    gw: PodgwGateway,
    resolvConf: string,
    extra: string[] = [],
    env: NodeJS.ProcessEnv = {},
  ): Promise<LabProcess> {
    const bundle = await appBundle('gateway-sidecar');
    gw.sidecar = gw.host.spawn('env', [
      ...envArgs(env),
      'node',
      bundle,
      ...this.appArgs(),
      `--state-dir=${this.stateDir}`,
      `--resolv-conf=${resolvConf}`,
      '--health-port=0',
      '--health-host=127.0.0.1',
      ...extra,
    ]);
    await gw.sidecar.waitForOutput(/serving DHCP and DNS/, 20_000);
    return gw.sidecar;
  }

  /** A client pod on the pod network (IPv4 and IPv6 default routes via the router). */
  async addClient(hostname: string): Promise<PodgwClient> {
    const n = this.nextClient++;
    const host = await this.lab.addHost(hostname.slice(0, 6));
    const podIp = `192.0.2.${n}`;
    await this.podnet.connect(host, { ifname: 'eth0', address: [`${podIp}/24`, `2001:db8::${n}/64`] });
    await host.ip('route', 'add', 'default', 'via', '192.0.2.1');
    await host.ip('-6', 'route', 'add', 'default', 'via', '2001:db8::1');
    return { host, hostname, podIp };
  }

  async clientInit(c: PodgwClient, extra: string[] = []) {
    const bundle = await appBundle('client-init');
    return c.host.exec('node', [bundle, ...this.appArgs(), `--hostname=${c.hostname}`, ...extra], {
      check: false,
      timeoutMs: 90_000,
    });
  }

  async startClientSidecar(
    c: PodgwClient,
    extra: string[] = [],
    env: NodeJS.ProcessEnv = {},
  ): Promise<LabProcess> {
    const bundle = await appBundle('client-sidecar');
    c.sidecar = c.host.spawn('env', [
      ...envArgs(env),
      'node',
      bundle,
      ...this.appArgs(),
      `--hostname=${c.hostname}`,
      '--check-interval=500ms',
      ...extra,
    ]);
    await c.sidecar.waitForOutput(/routed through the gateway/, 30_000);
    return c.sidecar;
  }

  /** The client's overlay address (without prefix). */
  async overlayAddress(c: PodgwClient): Promise<string | undefined> {
    const out = JSON.parse(await c.host.ip('-j', '-4', 'addr', 'show', 'dev', 'vxlan0')) as {
      addr_info: { local: string }[];
    }[];
    return out[0]?.addr_info[0]?.local;
  }

  /**
   * Installs the leak counters (see LEAK_COUNTERS): on the router, packets to the VPN side's
   * addresses 203.0.113.0/24 — the only way out of the pod network besides tun0; on the cluster DNS,
   * UDP/53 queries carrying "outside", i.e. names outside the split domains. A kill-switch test
   * first shows a counter catching a deliberate leak, then that it stays at 0. Installing twice
   * changes nothing.
   */
  async installLeakCounters(): Promise<void> {
    for (const which of Object.keys(LEAK_COUNTERS) as LeakCounter[]) {
      const host = this.leakCounterHost(which);
      const exists = await host.exec('iptables', leakRule('-C', which), { check: false });
      if (exists.exitCode !== 0) await host.exec('iptables', leakRule('-A', which));
    }
  }

  /**
   * What the leak counters counted since installLeakCounters() or the last resetLeakCounters().
   * Throws one line naming the host when a counter rule is missing (never NaN).
   */
  async leakCounts(): Promise<LeakCounts> {
    return {
      router: await this.leakCount('router'),
      clusterDns: await this.leakCount('clusterDns'),
    };
  }

  /** Zeroes the leak counters (all of the router's and the cluster DNS's raw PREROUTING counters). */
  async resetLeakCounters(): Promise<void> {
    await this.router.exec('iptables', ['-t', 'raw', '-Z', 'PREROUTING']);
    await this.clusterDns.exec('iptables', ['-t', 'raw', '-Z', 'PREROUTING']);
  }

  private leakCounterHost(which: LeakCounter): NetHost {
    return which === 'router' ? this.router : this.clusterDns;
  }

  private async leakCount(which: LeakCounter): Promise<number> {
    const host = this.leakCounterHost(which);
    const { comment } = LEAK_COUNTERS[which];
    const listing = (await host.exec('iptables', ['-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n'])).stdout;
    const line = listing.split('\n').find((l) => l.includes(`/* ${comment} */`));
    const packets = Number(line?.trim().split(/\s+/)[0]);
    if (!line || !Number.isInteger(packets)) {
      throw new Error(
        `no leak counter "${comment}" in ${host.label}'s raw PREROUTING (installLeakCounters() not called?)`,
      );
    }
    return packets;
  }

  async dispose(): Promise<void> {
    try {
      await this.lab.dispose();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** iptables arguments adding (`-A`) or checking (`-C`) a leak counter's rule. */
function leakRule(op: '-A' | '-C', which: LeakCounter): string[] {
  const { match, comment } = LEAK_COUNTERS[which];
  return ['-t', 'raw', op, 'PREROUTING', ...match, '-m', 'comment', '--comment', comment];
}

/** `env -i`-free environment arguments for `env`: KEY=value pairs, PATH kept. */
function envArgs(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v ?? ''}`);
}
