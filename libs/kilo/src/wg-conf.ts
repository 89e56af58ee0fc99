import type { Conf, ConfPeer, Endpoint, Segment, Topology } from './types';

/**
 * WireGuard configs from a topology: Kilo's `Topology.Conf`, `AsPeer` and `PeerConf`
 * (pkg/mesh/topology.go).
 */

/**
 * Kilo's `Topology.updateEndpoint`: a segment or peer with a non-zero keepalive of its own is
 * taken to be behind NAT, so the endpoint discovered on a device (if any) replaces the declared one;
 * everyone else keeps the declared endpoint.
 */
export function updateEndpoint(
  t: Pick<Topology, 'discoveredEndpoints'>,
  endpoint: Endpoint | undefined,
  key: string,
  persistentKeepalive: number | undefined,
): Endpoint | undefined {
  if (!persistentKeepalive) return endpoint;
  const discovered = t.discoveredEndpoints[key];
  return discovered ? { ip: discovered.ip, port: discovered.port } : endpoint;
}

function confPeer(fields: {
  publicKey: string;
  allowedIPs: readonly string[];
  endpoint: Endpoint | undefined;
  persistentKeepalive: number | undefined;
  presharedKey: string | undefined;
}): ConfPeer {
  return {
    publicKey: fields.publicKey,
    allowedIPs: fields.allowedIPs,
    ...(fields.endpoint ? { endpoint: fields.endpoint } : {}),
    ...(fields.persistentKeepalive !== undefined ? { persistentKeepalive: fields.persistentKeepalive } : {}),
    ...(fields.presharedKey ? { presharedKey: fields.presharedKey } : {}),
  };
}

function localSegment(t: Topology): Segment | undefined {
  return t.segments.find((s) => s.location === t.location);
}

/**
 * The segments the local node has a WireGuard peer for: every other segment (Kilo), and in `cross`
 * only segments of other groups (nodes of the own location are reached over the private network).
 */
export function remoteSegments(t: Topology): Segment[] {
  const own = localSegment(t);
  return t.segments.filter(
    (s) =>
      s.location !== t.location && !(t.granularity === 'cross' && own !== undefined && s.group === own.group),
  );
}

/**
 * Kilo's `Topology.Conf`: the local device's config. ListenPort is the topology's port; one peer
 * per remote segment ({@link remoteSegments}: its allowed IPs then its allowed-location IPs), then
 * one per Peer; every peer gets the LOCAL keepalive (0 included); endpoints via
 * {@link updateEndpoint}. Peers' preshared keys are kept.
 */
export function topologyConf(t: Topology, privateKey: string): Conf {
  const segments = remoteSegments(t).map((s) =>
    confPeer({
      publicKey: s.key,
      allowedIPs: [...s.allowedIPs, ...s.allowedLocationIPs],
      endpoint: updateEndpoint(t, s.endpoint, s.key, s.persistentKeepalive),
      persistentKeepalive: t.persistentKeepalive,
      presharedKey: undefined,
    }),
  );
  const peers = t.peers.map((p) =>
    confPeer({
      publicKey: p.publicKey,
      allowedIPs: [...p.allowedIPs],
      endpoint: updateEndpoint(t, p.endpoint, p.publicKey, p.persistentKeepalive),
      persistentKeepalive: t.persistentKeepalive,
      presharedKey: p.presharedKey,
    }),
  );
  return { privateKey, listenPort: t.port, peers: [...segments, ...peers] };
}

/**
 * Kilo's `Topology.AsPeer`: the local segment as a peer of another WireGuard interface — its key,
 * its declared endpoint and its allowed IPs (without the allowed-location IPs, as in Kilo); undefined
 * when the local segment is missing.
 */
export function asPeer(t: Topology): ConfPeer | undefined {
  const s = localSegment(t);
  if (!s) return undefined;
  return confPeer({
    publicKey: s.key,
    allowedIPs: [...s.allowedIPs],
    endpoint: s.endpoint,
    persistentKeepalive: undefined,
    presharedKey: undefined,
  });
}

/**
 * Kilo's `Topology.PeerConf`: the config for the Peer `peerName` (kgctl showconf peer): one peer
 * per segment (allowed IPs then allowed-location IPs, with the named Peer's keepalive and preshared
 * key), then one per other Peer (the named Peer's keepalive, no preshared key). Endpoints via
 * {@link updateEndpoint}. No `[Interface]` values. An unknown name gives no keepalive and no key.
 */
export function peerConf(t: Topology, peerName: string): Conf {
  const named = t.peers.find((p) => p.name === peerName);
  const keepalive = named?.persistentKeepalive;
  const segments = t.segments.map((s) =>
    confPeer({
      publicKey: s.key,
      allowedIPs: [...s.allowedIPs, ...s.allowedLocationIPs],
      endpoint: updateEndpoint(t, s.endpoint, s.key, s.persistentKeepalive),
      persistentKeepalive: keepalive,
      presharedKey: named?.presharedKey,
    }),
  );
  const peers = t.peers
    .filter((p) => p.name !== peerName)
    .map((p) =>
      confPeer({
        publicKey: p.publicKey,
        allowedIPs: [...p.allowedIPs],
        endpoint: updateEndpoint(t, p.endpoint, p.publicKey, p.persistentKeepalive),
        persistentKeepalive: keepalive,
        presharedKey: undefined,
      }),
    );
  return { peers: [...segments, ...peers] };
}
