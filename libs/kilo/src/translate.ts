import {
  ALLOWED_LOCATION_IPS_ANNOTATION,
  CNI_COMPATIBILITY_IP_ANNOTATION,
  DISCOVERED_ENDPOINTS_ANNOTATION,
  ENDPOINT_ANNOTATION,
  FORCE_ENDPOINT_ANNOTATION,
  FORCE_INTERNAL_IP_ANNOTATION,
  GRANULARITY_ANNOTATION,
  INTERNAL_IP_ANNOTATION,
  KEY_ANNOTATION,
  KG_CLEANUP_ANNOTATIONS,
  LAST_SEEN_ANNOTATION,
  LEADER_ANNOTATION,
  LEADER_PROBE_ANNOTATION,
  LOCATION_ANNOTATION,
  PERSISTENT_KEEPALIVE_ANNOTATION,
  WIREGUARD_IP_ANNOTATION,
} from './annotations';
import { goParseCIDR, goParseIP, networkCidr } from './ip';
import { PEER_API_VERSION, PEER_KIND, validatePeer, type PeerResource, type PeerSpec } from './peer-resource';
import {
  GRANULARITIES,
  type Endpoint,
  type Granularity,
  type KiloNode,
  type KiloPeer,
  type LeaderProbe,
  type UdpAddr,
} from './types';
import { formatEndpoint, isZeroKey, newEndpoint, parseEndpoint, parseWgKey } from './wireguard';

/**
 * Kubernetes objects ↔ Kilo's model, as Kilo's pkg/k8s/backend.go does it (`translateNode`,
 * `translatePeer`, `nodeBackend.Set`, `nodeBackend.CleanUp`). Where Kilo silently ignores a bad
 * value we ignore it the same way and also return a one-line problem (kilo-agent turns problems
 * into Events). Nothing here throws.
 */

/** The parts of a Kubernetes Node that Kilo reads. */
export interface NodeInput {
  name: string;
  /** `spec.podCIDR`. */
  podCIDR?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function has(record: Record<string, string>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(record, key);
}

/** Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits. */
function goParseInt(text: string): number | undefined {
  if (!/^[+-]?\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function goUnmarshalUdpAddr(value: unknown): UdpAddr | 'null' | undefined {
  if (value === null) return 'null';
  if (typeof value !== 'object' || Array.isArray(value)) return undefined;
  let ip = '';
  let port = 0;
  let zone = '';
  // encoding/json matches field names case-insensitively.
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const field = k.toLowerCase();
    if (field === 'ip') {
      if (v === null) continue;
      if (typeof v !== 'string') return undefined;
      if (v === '') {
        ip = '';
        continue;
      }
      const parsed = goParseIP(v);
      if (parsed === undefined) return undefined;
      ip = parsed;
    } else if (field === 'port') {
      if (v === null) continue;
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) return undefined;
      port = v;
    } else if (field === 'zone') {
      if (v === null) continue;
      if (typeof v !== 'string') return undefined;
      zone = v;
    }
  }
  return { ip, port, ...(zone !== '' ? { zone } : {}) };
}

/**
 * `kilo.squat.ai/discovered-endpoints` as Go's `json.Unmarshal` into `map[string]*net.UDPAddr`
 * reads it: any error drops the whole map. Entries Kilo would keep but can never use (`null`, no
 * IP) are skipped here, each with a problem.
 */
export function parseDiscoveredEndpoints(text: string): {
  endpoints: Record<string, UdpAddr>;
  problems: string[];
} {
  const problems: string[] = [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { endpoints: {}, problems: ['is not JSON'] };
  }
  if (parsed === null) return { endpoints: {}, problems };
  if (typeof parsed !== 'object' || Array.isArray(parsed))
    return { endpoints: {}, problems: ['is not a JSON object'] };
  const endpoints: Record<string, UdpAddr> = {};
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    const addr = goUnmarshalUdpAddr(value);
    if (addr === undefined) {
      return { endpoints: {}, problems: [`entry ${JSON.stringify(key)} is not {"IP","Port","Zone"}`] };
    }
    if (addr === 'null' || addr.ip === '') {
      problems.push(`entry ${JSON.stringify(key)} has no IP`);
      continue;
    }
    endpoints[key] = addr;
  }
  return { endpoints, problems };
}

/**
 * `map[string]*net.UDPAddr` as Go's `json.Marshal` prints it: keys sorted, no spaces,
 * `{"IP":"192.0.2.1","Port":51820,"Zone":""}`.
 */
export function formatDiscoveredEndpoints(endpoints: Readonly<Record<string, UdpAddr>>): string {
  const entries = Object.keys(endpoints)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((key) => {
      const e = endpoints[key];
      const value = e ? { IP: e.ip, Port: e.port, Zone: e.zone ?? '' } : null;
      return `${JSON.stringify(key)}:${JSON.stringify(value)}`;
    });
  return `{${entries.join(',')}}`;
}

/** Parses knet's `kilo-agent.knet.dev/leader-probe` JSON; undefined when it is not one. */
export function parseLeaderProbe(text: string): LeaderProbe | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { leader, healthy, since } = parsed as Record<string, unknown>;
  if (typeof leader !== 'string' || typeof healthy !== 'boolean' || typeof since !== 'number')
    return undefined;
  return { leader, healthy, since };
}

function isGranularity(value: string): value is Granularity {
  return (GRANULARITIES as readonly string[]).includes(value);
}

/**
 * Kilo's `translateNode` (pkg/k8s/backend.go):
 * - `force-endpoint` over `endpoint` (IP or DNS `host:port`, as `parseEndpoint`);
 * - `force-internal-ip` over `internal-ip`, CIDRs keeping their host bits; `force-internal-ip` set
 *   to `""` or `"-"` means no internal IP (`noInternalIP`);
 * - the `location` annotation (even empty) over the topology label, else `''`;
 * - `persistent-keepalive` seconds, `last-seen` unix seconds (0 when unparsable);
 * - `discovered-endpoints` JSON with Go's `{"IP","Port","Zone"}`;
 * - `allowed-location-ips` split on `,` with no trimming (`a, b` drops ` b`, as in Kilo);
 * - `granularity` `location`/`full` (and knet's `cross`), `key`, `wireguard-ip`,
 *   `cni-compatibility-ip`, the `leader` hint by presence, the pod CIDR masked to its network;
 * - knet's `leader-probe` (Kilo ignores it).
 *
 * Deviation: a keepalive outside 0–65535 counts as 0 (Kilo hands a negative or huge value to
 * wgctrl, which then refuses the whole device config).
 */
export function translateNode(
  node: NodeInput,
  topologyLabel: string,
): { node: KiloNode; problems: string[] } {
  const a = node.annotations ?? {};
  const problems: string[] = [];
  const bad = (key: string, why: string): void => {
    problems.push(`node ${node.name}: ${key} ${JSON.stringify(a[key])} ${why}; ignored`);
  };

  let subnet: string | undefined;
  if (node.podCIDR !== undefined && node.podCIDR !== '') {
    const cidr = goParseCIDR(node.podCIDR);
    if (cidr === undefined)
      problems.push(`node ${node.name}: spec.podCIDR ${JSON.stringify(node.podCIDR)} is not a CIDR; ignored`);
    else subnet = networkCidr(cidr);
  }

  const location = has(a, LOCATION_ANNOTATION)
    ? (a[LOCATION_ANNOTATION] ?? '')
    : (node.labels?.[topologyLabel] ?? '');

  const endpointOf = (key: string): Endpoint | undefined => {
    const text = a[key];
    if (text === undefined || text === '') return undefined;
    const e = parseEndpoint(text);
    if (!e) bad(key, 'is not ip:port, [ipv6]:port or dns-name:port');
    return e;
  };
  const forced = endpointOf(FORCE_ENDPOINT_ANNOTATION);
  const detected = endpointOf(ENDPOINT_ANNOTATION);
  const endpoint = forced ?? detected;

  const cidrOf = (key: string): string | undefined => {
    const text = a[key];
    if (text === undefined || text === '') return undefined;
    const cidr = goParseCIDR(text);
    if (cidr === undefined) bad(key, 'is not a CIDR such as 192.0.2.1/24');
    return cidr;
  };
  const forceInternal = a[FORCE_INTERNAL_IP_ANNOTATION];
  const noInternalIP = forceInternal === '' || forceInternal === '-';
  const forcedIP = noInternalIP ? undefined : cidrOf(FORCE_INTERNAL_IP_ANNOTATION);
  const detectedIP = cidrOf(INTERNAL_IP_ANNOTATION);
  const internalIP = noInternalIP ? undefined : (forcedIP ?? detectedIP);

  let persistentKeepalive = 0;
  if (has(a, PERSISTENT_KEEPALIVE_ANNOTATION)) {
    const n = goParseInt(a[PERSISTENT_KEEPALIVE_ANNOTATION] ?? '');
    if (n === undefined) bad(PERSISTENT_KEEPALIVE_ANNOTATION, 'is not a number of seconds');
    else if (n < 0 || n > 65535) bad(PERSISTENT_KEEPALIVE_ANNOTATION, 'is not 0–65535 seconds');
    else persistentKeepalive = n;
  }

  let lastSeen = 0;
  if (has(a, LAST_SEEN_ANNOTATION)) {
    const n = goParseInt(a[LAST_SEEN_ANNOTATION] ?? '');
    if (n === undefined) bad(LAST_SEEN_ANNOTATION, 'is not unix seconds');
    else lastSeen = n;
  }

  let discoveredEndpoints: Record<string, UdpAddr> = {};
  const discovered = a[DISCOVERED_ENDPOINTS_ANNOTATION];
  // kg itself writes "" for "none": not a problem.
  if (discovered !== undefined && discovered !== '') {
    const parsed = parseDiscoveredEndpoints(discovered);
    discoveredEndpoints = parsed.endpoints;
    for (const p of parsed.problems) {
      problems.push(`node ${node.name}: ${DISCOVERED_ENDPOINTS_ANNOTATION} ${p}; ignored`);
    }
  }

  const allowedLocationIPs: string[] = [];
  if (has(a, ALLOWED_LOCATION_IPS_ANNOTATION)) {
    for (const part of (a[ALLOWED_LOCATION_IPS_ANNOTATION] ?? '').split(',')) {
      const cidr = goParseCIDR(part);
      if (cidr !== undefined) allowedLocationIPs.push(cidr);
      else if (part !== '') {
        problems.push(
          `node ${node.name}: ${ALLOWED_LOCATION_IPS_ANNOTATION} entry ${JSON.stringify(part)} is not a CIDR (no spaces after commas); ignored`,
        );
      }
    }
  }

  let granularity: Granularity | undefined;
  const gr = a[GRANULARITY_ANNOTATION];
  if (gr !== undefined && gr !== '') {
    if (isGranularity(gr)) granularity = gr;
    else bad(GRANULARITY_ANNOTATION, `is not one of ${GRANULARITIES.join(', ')}`);
  }

  let key: string | undefined;
  const keyText = a[KEY_ANNOTATION];
  if (keyText !== undefined && keyText !== '') {
    key = parseWgKey(keyText);
    if (key === undefined) bad(KEY_ANNOTATION, 'is not a base64 WireGuard key of 32 bytes');
    else if (isZeroKey(key)) {
      bad(KEY_ANNOTATION, 'is the all-zero key');
      key = undefined;
    }
  }

  const cniCompatibilityIP = cidrOf(CNI_COMPATIBILITY_IP_ANNOTATION);
  const wireGuardIP = cidrOf(WIREGUARD_IP_ANNOTATION);

  let leaderProbe: LeaderProbe | undefined;
  const probe = a[LEADER_PROBE_ANNOTATION];
  if (probe !== undefined && probe !== '') {
    leaderProbe = parseLeaderProbe(probe);
    if (!leaderProbe) bad(LEADER_PROBE_ANNOTATION, 'is not {"leader","healthy","since"}');
  }

  return {
    node: {
      name: node.name,
      ...(endpoint ? { endpoint } : {}),
      ...(key !== undefined ? { key } : {}),
      noInternalIP,
      ...(internalIP !== undefined ? { internalIP } : {}),
      ...(cniCompatibilityIP !== undefined ? { cniCompatibilityIP } : {}),
      lastSeen,
      leader: has(a, LEADER_ANNOTATION),
      location,
      persistentKeepalive,
      ...(subnet !== undefined ? { subnet } : {}),
      ...(wireGuardIP !== undefined ? { wireGuardIP } : {}),
      discoveredEndpoints,
      allowedLocationIPs,
      ...(granularity !== undefined ? { granularity } : {}),
      ...(leaderProbe ? { leaderProbe } : {}),
    },
    problems,
  };
}

export interface NodeAnnotationOptions {
  /** Whether the node leads its segment: others write `wireguard-ip: ""` (Kilo's nil WireGuardIP). */
  leader: boolean;
}

/**
 * The annotations kg writes on its own Node (`nodeBackend.Set`), in Kilo's formats: `endpoint`
 * DNS-first `host:port` / `[v6]:port` (the forced endpoint when there is one, as in Kilo),
 * `internal-ip` CIDR or `""`, `key`, `last-seen` unix seconds, `wireguard-ip` CIDR on leaders else
 * `""`, `discovered-endpoints` as Go's JSON, `granularity`, `cni-compatibility-ip` CIDR or `""`;
 * plus knet's `leader-probe` when the node has a verdict.
 *
 * Deviation: an empty discovered map is written `{}` (Kilo writes `""` for a nil map on its first
 * write and `{}` afterwards).
 */
export function nodeAnnotations(node: KiloNode, opts: NodeAnnotationOptions): Record<string, string> {
  const out: Record<string, string> = {
    [ENDPOINT_ANNOTATION]: formatEndpoint(node.endpoint, true),
    [INTERNAL_IP_ANNOTATION]: node.internalIP ?? '',
    [KEY_ANNOTATION]: node.key ?? '',
    [LAST_SEEN_ANNOTATION]: String(node.lastSeen),
    [WIREGUARD_IP_ANNOTATION]: opts.leader ? (node.wireGuardIP ?? '') : '',
    [DISCOVERED_ENDPOINTS_ANNOTATION]: formatDiscoveredEndpoints(node.discoveredEndpoints),
    [GRANULARITY_ANNOTATION]: node.granularity ?? '',
    [CNI_COMPATIBILITY_IP_ANNOTATION]: node.cniCompatibilityIP ?? '',
  };
  if (node.leaderProbe) {
    const { leader, healthy, since } = node.leaderProbe;
    out[LEADER_PROBE_ANNOTATION] = JSON.stringify({ leader, healthy, since });
  }
  return out;
}

/** A strategic-merge patch of a Node's annotations. */
export interface AnnotationsMergePatch {
  metadata: { annotations: Record<string, string> };
}

/**
 * The strategic-merge patch kg sends (`strategicpatch.CreateTwoWayMergePatch` of the Node with its
 * annotations replaced): only the keys whose value changes. Undefined when nothing changes, so
 * no request is needed.
 */
export function annotationsPatch(
  current: Readonly<Record<string, string>> | undefined,
  desired: Readonly<Record<string, string>>,
): AnnotationsMergePatch | undefined {
  const changed: Record<string, string> = {};
  for (const [k, v] of Object.entries(desired)) {
    if (current?.[k] !== v) changed[k] = v;
  }
  return Object.keys(changed).length === 0 ? undefined : { metadata: { annotations: changed } };
}

export interface JsonPatchRemove {
  op: 'remove';
  path: string;
}

/** RFC 6901: `~` → `~0`, `/` → `~1`. */
function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Kilo's clean-up (`nodeBackend.CleanUp`): a JSON patch removing the seven kg-owned keys
 * (`KG_CLEANUP_ANNOTATIONS`, in Kilo's order; `cni-compatibility-ip` stays), plus knet's
 * `leader-probe`, paths `/metadata/annotations/kilo.squat.ai~1endpoint`.
 *
 * Deviation: only keys present in `annotations` are removed. Kilo always sends all seven, and a
 * JSON-patch `remove` of a missing key fails the whole patch, so its clean-up fails on a node
 * where any of them is already gone.
 */
export function cleanupPatch(annotations: Readonly<Record<string, string>> | undefined): JsonPatchRemove[] {
  const present = annotations ?? {};
  return [...KG_CLEANUP_ANNOTATIONS, LEADER_PROBE_ANNOTATION]
    .filter((key) => Object.prototype.hasOwnProperty.call(present, key))
    .map((key) => ({ op: 'remove', path: `/metadata/annotations/${escapePointer(key)}` }));
}

/**
 * Kilo's `translatePeer` on a spec, without validation: invalid allowed IPs skipped; the endpoint
 * needs a port > 0, an IP gives `ip:port` and a DNS name, if set, replaces it (an invalid name
 * then leaves no endpoint, as in Kilo); keepalive ≤ 0 is 0; an unparsable public key is `''`
 * (Kilo's zero key, never Ready); an unparsable preshared key is dropped.
 */
export function translatePeerSpec(
  name: string,
  spec: Partial<PeerSpec>,
): { peer: KiloPeer; problems: string[] } {
  const problems: string[] = [];
  const allowedIPs: string[] = [];
  for (const ip of spec.allowedIPs ?? []) {
    const cidr = goParseCIDR(ip);
    if (cidr === undefined)
      problems.push(`peer ${name}: allowed IP ${JSON.stringify(ip)} is not a CIDR; ignored`);
    else allowedIPs.push(cidr);
  }
  let endpoint: Endpoint | undefined;
  if (spec.endpoint) {
    const { dnsOrIP, port } = spec.endpoint;
    const ip = dnsOrIP.ip === undefined || dnsOrIP.ip === '' ? undefined : goParseIP(dnsOrIP.ip);
    if (port > 0) {
      if (ip !== undefined) endpoint = newEndpoint(ip, port);
      if (dnsOrIP.dns !== undefined && dnsOrIP.dns !== '') endpoint = parseEndpoint(`${dnsOrIP.dns}:${port}`);
    }
    if (!endpoint)
      problems.push(`peer ${name}: endpoint ${JSON.stringify(spec.endpoint)} is not usable; ignored`);
  }
  const publicKey = parseWgKey(spec.publicKey ?? '');
  if (publicKey === undefined)
    problems.push(`peer ${name}: publicKey is not a base64 WireGuard key of 32 bytes`);
  let presharedKey: string | undefined;
  if (spec.presharedKey !== undefined && spec.presharedKey !== '') {
    presharedKey = parseWgKey(spec.presharedKey);
    // The preshared key is a secret: never echo it.
    if (presharedKey === undefined)
      problems.push(`peer ${name}: presharedKey is not a base64 WireGuard key of 32 bytes; ignored`);
  }
  const keepalive = spec.persistentKeepalive ?? 0;
  if (keepalive < 0) problems.push(`peer ${name}: persistentKeepalive ${keepalive} is negative; 0 used`);
  return {
    peer: {
      name,
      allowedIPs,
      publicKey: publicKey ?? '',
      ...(endpoint ? { endpoint } : {}),
      persistentKeepalive: keepalive > 0 ? keepalive : 0,
      ...(presharedKey !== undefined ? { presharedKey } : {}),
    },
    problems,
  };
}

/**
 * A Peer as kg sees it: Kilo drops a Peer that fails `Validate()` (the informer handlers and
 * `List` skip it), so an invalid Peer gives no peer and its validation errors as problems; a
 * valid one is translated by `translatePeerSpec`.
 */
export function translatePeer(peer: PeerResource): { peer?: KiloPeer; problems: string[] } {
  const name = peer.metadata.name;
  const errors = validatePeer(peer.spec);
  if (errors.length > 0) return { problems: errors.map((e) => `peer ${name}: invalid, ignored: ${e}`) };
  return translatePeerSpec(name, peer.spec);
}

/**
 * kgctl's `showconf … --as-peer -o yaml|json` Peer (cmd/kgctl/showconf.go `translatePeer`).
 *
 * Deviations (Kilo bugs): the keepalive is in seconds (Kilo writes the nanosecond count of the
 * duration); an absent endpoint is omitted (Kilo writes `ip: <nil>`, `port: 0`); an endpoint
 * carries only what it has (Kilo writes `ip: <nil>` for a DNS endpoint).
 */
export function peerResource(peer: KiloPeer, name: string): PeerResource {
  const e = peer.endpoint;
  const spec: PeerSpec = {
    allowedIPs: [...peer.allowedIPs],
    publicKey: isZeroKey(peer.publicKey) ? '' : peer.publicKey,
  };
  if (e) {
    spec.endpoint = {
      dnsOrIP: {
        ...(e.dns !== undefined && e.dns !== '' ? { dns: e.dns } : {}),
        ...(e.ip !== undefined ? { ip: e.ip } : {}),
      },
      port: e.port,
    };
  }
  if (peer.persistentKeepalive !== undefined && peer.persistentKeepalive > 0) {
    spec.persistentKeepalive = peer.persistentKeepalive;
  }
  if (!isZeroKey(peer.presharedKey) && peer.presharedKey !== undefined) spec.presharedKey = peer.presharedKey;
  return { apiVersion: PEER_API_VERSION, kind: PEER_KIND, metadata: { name }, spec };
}
