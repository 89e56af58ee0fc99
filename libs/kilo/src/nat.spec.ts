import type { WgInterfaceState, WgPeerState } from '@knet/host-net';
import { discoverNATEndpoints, parseUdpAddr } from './nat';
import { formatDiscoveredEndpoints } from './translate';
import type { KiloNode, KiloPeer, UdpAddr } from './types';

const key = (byte: number): string => Buffer.alloc(32, byte).toString('base64');
const [KA, KB, KC, KD, KP, KQ] = [key(1), key(2), key(3), key(4), key(5), key(6)] as [
  string,
  string,
  string,
  string,
  string,
  string,
];
const HANDSHAKE = new Date(1_700_000_000_000);

function node(name: string, k: string, persistentKeepalive: number): KiloNode {
  return {
    name,
    key: k,
    noInternalIP: false,
    lastSeen: 0,
    leader: false,
    location: '',
    persistentKeepalive,
    discoveredEndpoints: {},
    allowedLocationIPs: [],
    endpoint: { ip: '192.0.2.1', port: 51820 },
  };
}

function peer(name: string, k: string, persistentKeepalive = 0): KiloPeer {
  return { name, publicKey: k, allowedIPs: ['10.5.0.1/32'], persistentKeepalive };
}

function wg(publicKey: string, endpoint: string | null, latestHandshake: Date | null): WgPeerState {
  return {
    publicKey,
    hasPresharedKey: false,
    endpoint,
    allowedIps: [],
    latestHandshake,
    transferRx: 0,
    transferTx: 0,
    persistentKeepalive: null,
  };
}

function device(peers: WgPeerState[]): WgInterfaceState {
  return { name: 'kilo0', publicKey: KA, hasPrivateKey: true, listenPort: 51820, fwmark: null, peers };
}

// Kilo pkg/mesh/mesh.go discoverNATEndpoints.
describe('discoverNATEndpoints (Kilo discoverNATEndpoints)', () => {
  it.each<[string, KiloNode[], KiloPeer[], WgPeerState[], Record<string, UdpAddr>]>([
    [
      'a node behind NAT (keepalive) that handshook is recorded with the live endpoint',
      [node('a', KA, 0), node('b', KB, 25)],
      [],
      [wg(KB, '198.51.100.20:40001', HANDSHAKE)],
      { [KB]: { ip: '198.51.100.20', port: 40001 } },
    ],
    [
      'a node without keepalive is not recorded, even after a handshake',
      [node('a', KA, 0), node('b', KB, 0)],
      [],
      [wg(KB, '198.51.100.20:40001', HANDSHAKE)],
      {},
    ],
    [
      'no handshake yet: not recorded',
      [node('a', KA, 0), node('b', KB, 25)],
      [],
      [wg(KB, '198.51.100.20:40001', null)],
      {},
    ],
    [
      'a node that is not a peer of the device: not recorded',
      [node('a', KA, 0), node('c', KC, 25)],
      [],
      [wg(KB, '198.51.100.20:1', HANDSHAKE)],
      {},
    ],
    [
      'a Peer that handshook is recorded whatever its keepalive (Kilo tests a pointer its translation always sets)',
      [node('a', KA, 0)],
      [peer('laptop', KP, 0), peer('phone', KQ, 10)],
      [wg(KP, '[2001:db8::9]:51820', HANDSHAKE), wg(KQ, '203.0.113.9:6000', HANDSHAKE)],
      { [KP]: { ip: '2001:db8::9', port: 51820 }, [KQ]: { ip: '203.0.113.9', port: 6000 } },
    ],
    [
      'a Peer that never handshook: not recorded',
      [node('a', KA, 0)],
      [peer('laptop', KP)],
      [wg(KP, '203.0.113.9:6000', null)],
      {},
    ],
    [
      'the local node is skipped; a device peer without endpoint is skipped',
      [node('a', KA, 25), node('d', KD, 25)],
      [],
      [wg(KA, '192.0.2.1:51820', HANDSHAKE), wg(KD, null, HANDSHAKE)],
      {},
    ],
    [
      'several at once, a zone kept',
      [node('a', KA, 0), node('b', KB, 25), node('c', KC, 5)],
      [peer('laptop', KP)],
      [
        wg(KC, '[fe80::1%eth0]:51820', HANDSHAKE),
        wg(KB, '198.51.100.20:40001', HANDSHAKE),
        wg(KP, '203.0.113.9:6000', HANDSHAKE),
      ],
      {
        [KB]: { ip: '198.51.100.20', port: 40001 },
        [KC]: { ip: 'fe80::1', port: 51820, zone: 'eth0' },
        [KP]: { ip: '203.0.113.9', port: 6000 },
      },
    ],
  ])('%s', (_name, nodes, peers, live, want) => {
    expect(discoverNATEndpoints(nodes, peers, device(live), 'a')).toEqual(want);
  });

  it('publishes as Go prints the map', () => {
    const found = discoverNATEndpoints(
      [node('a', KA, 0), node('b', KB, 25)],
      [],
      device([wg(KB, '198.51.100.20:40001', HANDSHAKE)]),
      'a',
    );
    expect(formatDiscoveredEndpoints(found)).toBe(`{"${KB}":{"IP":"198.51.100.20","Port":40001,"Zone":""}}`);
  });
});

describe('parseUdpAddr (wg dump endpoints)', () => {
  it.each<[string, UdpAddr | undefined]>([
    ['192.0.2.1:51820', { ip: '192.0.2.1', port: 51820 }],
    ['[2001:db8::1]:1', { ip: '2001:db8::1', port: 1 }],
    ['[fe80::1%eth0]:2', { ip: 'fe80::1', port: 2, zone: 'eth0' }],
    ['(none)', undefined],
    ['192.0.2.1', undefined],
    ['192.0.2.1:70000', undefined],
    ['2001:db8::1:1', undefined],
  ])('%s', (text, want) => {
    expect(parseUdpAddr(text)).toEqual(want);
  });
});
