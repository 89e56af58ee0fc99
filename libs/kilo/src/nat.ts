import type { WgInterfaceState } from '@knet/host-net';
import { goParseIP } from './ip';
import type { KiloNode, KiloPeer, UdpAddr } from './types';

/**
 * An endpoint as `wg show dump` prints it (`192.0.2.1:51820`, `[2001:db8::1]:51820`,
 * `[fe80::1%eth0]:51820`) as Go's `net.UDPAddr`; undefined when it is none of these.
 */
export function parseUdpAddr(text: string): UdpAddr | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const [host = '', zone] = (m[1] ?? m[2] ?? '').split('%');
  const ip = goParseIP(host);
  const port = Number(m[3]);
  if (ip === undefined || port > 65535) return undefined;
  return { ip, port, ...(zone !== undefined && zone !== '' ? { zone } : {}) };
}

/**
 * Kilo's `discoverNATEndpoints` (pkg/mesh/mesh.go): the endpoints the local device has learnt
 * for the peers that may roam, which kg publishes as its `discovered-endpoints`.
 * - A node is recorded when its `persistent-keepalive` is non-zero (it is behind NAT), it is a
 *   peer of the device and the device had a handshake with it.
 * - A Peer is recorded when it is a peer of the device and had a handshake, whatever its
 *   keepalive (Kilo tests the keepalive pointer, which its translation always sets).
 * Peers are applied after nodes, so a Peer wins over a node with the same key. The local node is
 * skipped (it is never a peer of its own device). A device peer without an endpoint is skipped
 * (Kilo would record a null).
 */
export function discoverNATEndpoints(
  nodes: readonly KiloNode[],
  peers: readonly KiloPeer[],
  live: WgInterfaceState,
  localName: string,
): Record<string, UdpAddr> {
  const device = new Map(live.peers.map((p) => [p.publicKey, p]));
  const out: Record<string, UdpAddr> = {};
  const record = (key: string | undefined): void => {
    const peer = key === undefined ? undefined : device.get(key);
    if (!peer || key === undefined || peer.latestHandshake === null || peer.endpoint === null) return;
    const addr = parseUdpAddr(peer.endpoint);
    if (addr) out[key] = addr;
  };
  for (const node of nodes) {
    if (node.name === localName || node.persistentKeepalive === 0) continue;
    record(node.key);
  }
  for (const peer of peers) record(peer.publicKey);
  return out;
}
