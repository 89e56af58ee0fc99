import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { normalizeIp } from '@knet/host-net';
import { errorMessage } from '@knet/runtime';
import { ipv4Nameservers, type ResolvConf } from './resolv-conf';
import { SettingsError, parseShellAssignments, type Origin } from './shell-env';

/**
 * pod-gateway's settings, read the way its users already write them: a `settings.sh` of
 * `KEY=value` lines (the chart's ConfigMap) and environment variables of the same names.
 *
 * Precedence, lowest first: built-in defaults (pod-gateway's script defaults, except where noted),
 * the legacy env vars the admission webhook injects (`gateway`, `K8S_DNS_ips`), each settings file
 * in order, then environment variables with the setting's own name.
 */
export interface Settings {
  /** GATEWAY_NAME: DNS name (or IP) of the gateway pod, resolved by clients via the cluster DNS. */
  gatewayName: string;
  /** K8S_DNS_IPS: the cluster DNS servers clients use to resolve the gateway (space-separated). */
  k8sDnsIps: string[];
  /** NOT_ROUTED_TO_GATEWAY_CIDRS: client destinations that stay on the pod's own network. */
  notRoutedToGatewayCidrs: string[];
  /** VXLAN_ID: the VNI. */
  vxlanId: number;
  /** VXLAN_PORT: UDP port of the overlay. Unset or 0 means 4789 (pod-gateway: the kernel's 8472). */
  vxlanPort: number;
  /** VXLAN_IP_NETWORK: first three octets of the overlay /24; the gateway is `.1`. */
  vxlanNetwork: string;
  /** VXLAN_GATEWAY_FIRST_DYNAMIC_IP: first address of the DHCP range; static IPs sit below it. */
  firstDynamicIp: number;
  /** VPN_INTERFACE: egress interface of the VPN client, empty for none. */
  vpnInterface: string | undefined;
  /** VPN_BLOCK_OTHER_TRAFFIC: the kill switch. */
  vpnBlockOtherTraffic: boolean;
  /** VPN_TRAFFIC_PORT: port(s) the VPN client itself may use on the pod network (tcp and udp). */
  vpnTrafficPorts: number[];
  /** VPN_LOCAL_CIDRS: destinations the gateway reaches directly (cluster networks). */
  vpnLocalCidrs: string[];
  /**
   * VXLAN_CLIENT_CIDRS (ours): where client pods are; the gateway takes the overlay (UDP
   * VXLAN_PORT) only from, and sends it only to, these IPv4 networks. Empty: VPN_LOCAL_CIDRS and
   * the subnets of the gateway's pod interface (`vxlanPeerCidrs`).
   */
  vxlanClientCidrs: string[];
  /** DNS_LOCAL_CIDRS: despite the name, DNS *domains* forwarded to DNS_LOCAL_SERVER. */
  dnsLocalDomains: string[];
  /** DNS_LOCAL_SERVER: servers for those domains; empty = the IPv4 nameservers of the original resolv.conf. */
  dnsLocalServers: string[];
  /** SNAT_IP: SNAT to this address on the VPN interface instead of MASQUERADE. */
  snatIp: string | undefined;
  /** VPN_INTERFACE_MTU: MTU of the overlay (clients get it by DHCP option 26 too). */
  vpnInterfaceMtu: number | undefined;
  /** CONNECTION_RETRY_COUNT: failed gateway checks in a row before a client rebuilds its tunnel. */
  connectionRetryCount: number;
  /** K8S_DEFAULT_GW: overrides the client's detected pod-network gateway. */
  k8sDefaultGw: string | undefined;
  /** GATEWAY_ENABLE_DNSSEC: accepted for compatibility; the gateway forwards the DO bit, upstreams validate. */
  gatewayEnableDnssec: boolean;
  /** RESOLV_CONF_COPY: accepted for compatibility; the gateway watches /etc/resolv.conf itself. */
  resolvConfCopy: string;
  /** IPTABLES_NFT: accepted for compatibility; the image's iptables (nft backend) is always used. */
  iptablesNft: boolean;
}

/** Per setting: where its value came from (`/config/settings.sh:7`, `env VXLAN_ID`, `default`). */
export type SettingsOrigins = Partial<Record<SettingName, Origin>>;

export interface LoadedSettings {
  settings: Settings;
  origins: SettingsOrigins;
  /** Non-fatal findings: unknown keys in a file (typos), compatibility-only settings. */
  warnings: string[];
}

type Parser<T> = (raw: string) => T;

const integer =
  (min: number, max: number): Parser<number> =>
  (raw) => {
    if (!/^\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > max) {
      throw new Error(`must be an integer from ${min} to ${max}`);
    }
    return Number(raw);
  };

const optionalInteger =
  (min: number, max: number): Parser<number | undefined> =>
  (raw) =>
    raw.trim() === '' ? undefined : integer(min, max)(raw);

const bool: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (['true', 'yes', '1', 'on'].includes(v)) return true;
  if (['false', 'no', '0', 'off', ''].includes(v)) return false;
  throw new Error('must be true or false');
};

const words = (raw: string) => raw.split(/[\s,]+/).filter(Boolean);

const ipList: Parser<string[]> = (raw) =>
  words(raw).map((w) => {
    if (!isIP(w)) throw new Error(`"${w}" is not an IP address`);
    return normalizeIp(w);
  });

const cidrList: Parser<string[]> = (raw) =>
  words(raw).map((w) => {
    const [ip, len, extra] = w.split('/');
    const v = isIP(ip ?? '');
    const max = v === 6 ? 128 : 32;
    if (!v || extra !== undefined || (len !== undefined && (!/^\d{1,3}$/.test(len) || Number(len) > max))) {
      throw new Error(`"${w}" is not a CIDR like 10.0.0.0/8`);
    }
    return len === undefined ? `${normalizeIp(ip as string)}/${max}` : `${normalizeIp(ip as string)}/${len}`;
  });

const ifName: Parser<string | undefined> = (raw) => {
  const v = raw.trim();
  if (v === '') return undefined;
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(v)) throw new Error('must be an interface name (1-15 characters)');
  return v;
};

const domainList: Parser<string[]> = (raw) =>
  words(raw).map((w) => {
    const d = w.toLowerCase().replace(/^\.+|\.+$/g, '');
    if (!/^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/.test(d) || d.length > 253) {
      throw new Error(`"${w}" is not a DNS domain`);
    }
    return d;
  });

const definitions = {
  GATEWAY_NAME: { key: 'gatewayName', parse: (raw: string) => raw.trim(), default: '' },
  K8S_DNS_IPS: { key: 'k8sDnsIps', parse: ipList, default: '' },
  NOT_ROUTED_TO_GATEWAY_CIDRS: { key: 'notRoutedToGatewayCidrs', parse: cidrList, default: '' },
  VXLAN_ID: { key: 'vxlanId', parse: integer(1, 16_777_215), default: '42' },
  VXLAN_PORT: {
    key: 'vxlanPort',
    parse: (raw: string) => (raw.trim() === '' || raw.trim() === '0' ? 4789 : integer(1, 65_535)(raw)),
    default: '4789',
  },
  VXLAN_IP_NETWORK: {
    key: 'vxlanNetwork',
    parse: (raw: string) => {
      const v = raw.trim().replace(/\.0\/24$/, '');
      const parts = v.split('.');
      if (parts.length !== 3 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
        throw new Error('must be the first three octets of a /24, like 172.16.0');
      }
      return parts.map(Number).join('.');
    },
    default: '172.16.0',
  },
  VXLAN_GATEWAY_FIRST_DYNAMIC_IP: { key: 'firstDynamicIp', parse: integer(2, 254), default: '20' },
  VPN_INTERFACE: { key: 'vpnInterface', parse: ifName, default: 'tun0' },
  VPN_BLOCK_OTHER_TRAFFIC: { key: 'vpnBlockOtherTraffic', parse: bool, default: 'true' },
  VPN_TRAFFIC_PORT: {
    key: 'vpnTrafficPorts',
    parse: (raw: string) => words(raw).map((w) => integer(1, 65_535)(w)),
    default: '443',
  },
  VPN_LOCAL_CIDRS: { key: 'vpnLocalCidrs', parse: cidrList, default: '10.0.0.0/8 192.168.0.0/16' },
  VXLAN_CLIENT_CIDRS: {
    key: 'vxlanClientCidrs',
    parse: (raw: string) =>
      cidrList(raw).map((c) => {
        if (c.includes(':')) throw new Error(`"${c}" is IPv6: the overlay runs over IPv4`);
        return c;
      }),
    default: '',
  },
  DNS_LOCAL_CIDRS: { key: 'dnsLocalDomains', parse: domainList, default: 'local' },
  DNS_LOCAL_SERVER: { key: 'dnsLocalServers', parse: ipList, default: '' },
  SNAT_IP: {
    key: 'snatIp',
    parse: (raw: string) => {
      const v = raw.trim();
      if (v === '') return undefined;
      if (isIP(v) !== 4) throw new Error('must be an IPv4 address');
      return v;
    },
    default: '',
  },
  VPN_INTERFACE_MTU: { key: 'vpnInterfaceMtu', parse: optionalInteger(576, 65_535), default: '' },
  CONNECTION_RETRY_COUNT: { key: 'connectionRetryCount', parse: integer(1, 100), default: '1' },
  K8S_DEFAULT_GW: {
    key: 'k8sDefaultGw',
    parse: (raw: string) => {
      const v = raw.trim();
      if (v === '') return undefined;
      if (!isIP(v)) throw new Error('must be an IP address');
      return normalizeIp(v);
    },
    default: '',
  },
  GATEWAY_ENABLE_DNSSEC: { key: 'gatewayEnableDnssec', parse: bool, default: 'true' },
  RESOLV_CONF_COPY: {
    key: 'resolvConfCopy',
    parse: (raw: string) => raw.trim(),
    default: '/etc/resolv_copy.conf',
  },
  IPTABLES_NFT: { key: 'iptablesNft', parse: bool, default: 'no' },
} as const satisfies Record<string, { key: keyof Settings; parse: Parser<unknown>; default: string }>;

export type SettingName = keyof typeof definitions;
export const SETTING_NAMES = Object.keys(definitions) as SettingName[];

/** Env vars the admission webhook injects, read as defaults of the settings they stand for. */
const LEGACY_ENV: Readonly<Record<string, SettingName>> = {
  gateway: 'GATEWAY_NAME',
  K8S_DNS_ips: 'K8S_DNS_IPS',
};

export interface LoadSettingsOptions {
  /** Settings files, read in order; missing files are skipped unless `required`. */
  files?: readonly { path: string; required?: boolean }[];
  env?: NodeJS.ProcessEnv;
}

/** A Kubernetes service-link value (`tcp://10.96.0.7:4789`). */
const SERVICE_LINK = /^(tcp|udp|sctp):\/\/\S*$/i;

/** The Service a `<NAME>_PORT` service link comes from (`VPN_TRAFFIC_PORT` → `vpn-traffic`). */
function serviceOf(variable: string): string {
  return `"${variable
    .replace(/_PORT$/, '')
    .toLowerCase()
    .replace(/_/g, '-')}"`;
}

/**
 * Loads and validates the settings. Throws `SettingsError` with one line naming the setting, its
 * value and where it came from: `VXLAN_ID="x" (from /config/settings.sh:3): must be an integer …`.
 * Environment variables of the same names override the files (pod-gateway sourced the files over
 * the environment); values that are Kubernetes service links are ignored with a warning.
 */
export function loadSettings(options: LoadSettingsOptions = {}): LoadedSettings {
  const env = options.env ?? process.env;
  const raw = new Map<SettingName, { value: string; origin: Origin }>();
  const warnings: string[] = [];
  for (const [legacy, name] of Object.entries(LEGACY_ENV)) {
    const v = env[legacy];
    if (v !== undefined && v !== '') raw.set(name, { value: v, origin: `env ${legacy}` });
  }
  const assigned = new Map<string, string>();
  for (const file of options.files ?? []) {
    if (!existsSync(file.path)) {
      if (file.required) throw new SettingsError(`settings file ${file.path} does not exist`);
      continue;
    }
    let text: string;
    try {
      text = readFileSync(file.path, 'utf8');
    } catch (e) {
      throw new SettingsError(
        `settings file ${file.path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`,
      );
    }
    for (const a of parseShellAssignments(text, file.path, (n) => assigned.get(n) ?? env[n])) {
      assigned.set(a.key, a.value);
      if (a.key in definitions) raw.set(a.key as SettingName, { value: a.value, origin: a.origin });
      else if (!(a.key in LEGACY_ENV)) warnings.push(`${a.origin}: unknown setting ${a.key} (ignored)`);
    }
  }
  for (const name of SETTING_NAMES) {
    const v = env[name];
    if (v === undefined) continue;
    if (SERVICE_LINK.test(v)) {
      // Kubernetes injects <SERVICE>_PORT=proto://ip:port for every Service of the pod's namespace
      // (enableServiceLinks): a Service named "vxlan" sets VXLAN_PORT. Never a setting's value.
      warnings.push(
        `env ${name}=${JSON.stringify(v)} looks like a Kubernetes service link (a Service named ${serviceOf(name)} in this namespace), not a setting: ignored${raw.has(name) ? '' : ', the default applies'} (set enableServiceLinks: false in the pod spec to be rid of it)`,
      );
      continue;
    }
    raw.set(name, { value: v, origin: `env ${name}` });
  }

  const settings = {} as Record<keyof Settings, unknown>;
  const origins: SettingsOrigins = {};
  for (const name of SETTING_NAMES) {
    const def = definitions[name];
    const given = raw.get(name);
    const value = given?.value ?? def.default;
    try {
      settings[def.key] = def.parse(value);
    } catch (e) {
      throw new SettingsError(
        `${name}=${JSON.stringify(value)} (from ${given?.origin ?? 'default'}): ${errorMessage(e)}`,
      );
    }
    origins[name] = given?.origin ?? 'default';
  }
  const s = settings as unknown as Settings;
  checkConsistency(s, origins);
  if (raw.has('IPTABLES_NFT')) {
    warnings.push(
      "IPTABLES_NFT is not needed: the image's iptables is used as it is (nft backend on Debian)",
    );
  }
  if (raw.has('RESOLV_CONF_COPY')) {
    warnings.push('RESOLV_CONF_COPY is not needed: the gateway follows /etc/resolv.conf itself');
  }
  return { settings: s, origins, warnings };
}

function checkConsistency(s: Settings, origins: SettingsOrigins): void {
  if (s.firstDynamicIp < 2) {
    throw new SettingsError(
      `VXLAN_GATEWAY_FIRST_DYNAMIC_IP (from ${origins.VXLAN_GATEWAY_FIRST_DYNAMIC_IP}) must be ≥ 2`,
    );
  }
  if (s.snatIp && !s.vpnInterface) {
    throw new SettingsError(
      `SNAT_IP (from ${origins.SNAT_IP}) needs VPN_INTERFACE: SNAT applies to traffic leaving the VPN interface`,
    );
  }
}

/**
 * The servers the DNS_LOCAL_CIDRS domains go to: DNS_LOCAL_SERVER, else the IPv4 nameservers of
 * the gateway pod's original resolv.conf (the cluster DNS; IPv4 only, as pod-gateway since #61).
 */
export function localDnsServers(s: Pick<Settings, 'dnsLocalServers'>, original: ResolvConf): string[] {
  return s.dnsLocalServers.length > 0 ? s.dnsLocalServers : ipv4Nameservers(original);
}

/** The gateway's overlay address (`NET.1`) and the overlay network. */
export function overlay(s: Settings): {
  gateway: string;
  network: string;
  prefixLength: 24;
  address: (octet: number) => string;
} {
  return {
    gateway: `${s.vxlanNetwork}.1`,
    network: `${s.vxlanNetwork}.0/24`,
    prefixLength: 24,
    address: (octet) => `${s.vxlanNetwork}.${octet}`,
  };
}

/** `settings.sh` as the chart renders it, for docs and tests: `KEY="value"` lines. */
export function renderSettings(values: Partial<Record<SettingName, string>>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}="${String(v).replace(/(["\\$`])/g, '\\$1')}"`)
    .join('\n')
    .concat('\n');
}

export { SettingsError };
