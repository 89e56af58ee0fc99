import type { KiloNode, KiloPeer } from './types';

/**
 * Test fixtures shared by this library's specs (and the apps' tests): Kilo's own test inputs, so
 * golden tables compare against what Kilo's Go tests expect. Not part of the planner.
 */

/** Kilo's test keys: `wgtypes.Key{'k','e','y','1'}`, i.e. "key1" and 28 zero bytes, in base64. */
export function kiloTestKey(text: string): string {
  return Buffer.concat([Buffer.from(text), Buffer.alloc(32 - text.length)]).toString('base64');
}

/** A KiloNode with Kilo's zero values, plus `extra`. */
export function kiloNode(name: string, extra: Partial<KiloNode> = {}): KiloNode {
  return {
    name,
    noInternalIP: false,
    lastSeen: 0,
    leader: false,
    location: '',
    persistentKeepalive: 0,
    discoveredEndpoints: {},
    allowedLocationIPs: [],
    ...extra,
  };
}

/** Kilo's topology_test.go `setup`: nodes a–d (d has no internal IP) and peers a, b. */
export function kiloFixture(): { nodes: Record<string, KiloNode>; peers: Record<string, KiloPeer> } {
  const key = kiloTestKey;
  return {
    nodes: {
      a: kiloNode('a', {
        endpoint: { ip: '10.1.0.1', port: 51820 },
        internalIP: '192.168.0.1/32',
        location: '1',
        subnet: '10.2.1.0/24',
        key: key('key1'),
        persistentKeepalive: 25,
      }),
      b: kiloNode('b', {
        endpoint: { ip: '10.1.0.2', port: 51820 },
        internalIP: '192.168.0.1/32',
        location: '2',
        subnet: '10.2.2.0/24',
        key: key('key2'),
        allowedLocationIPs: ['192.168.178.3/32'],
      }),
      c: kiloNode('c', {
        endpoint: { ip: '10.1.0.3', port: 51820 },
        internalIP: '192.168.0.2/32',
        location: '2',
        subnet: '10.2.3.0/24',
        key: key('key3'),
      }),
      d: kiloNode('d', {
        endpoint: { ip: '10.1.0.4', port: 51820 },
        location: '1',
        subnet: '10.2.4.0/24',
        key: key('key4'),
      }),
    },
    peers: {
      a: { name: 'a', allowedIPs: ['10.5.0.1/24', '10.5.0.2/24'], publicKey: key('key4') },
      b: {
        name: 'b',
        allowedIPs: ['10.5.0.3/24'],
        publicKey: key('key5'),
        endpoint: { ip: '192.168.0.1', port: 51820 },
      },
    },
  };
}

/**
 * The nodes kgctl's golden outputs (graph, showconf) were taken with: Kilo's topology_test nodes
 * a–d as running agents publish them (WireGuard IPs on the leaders, `last-seen` = `now`, location
 * granularity), and a node e that stopped checking in two minutes ago.
 */
export function kgctlFixtureNodes(now: number): KiloNode[] {
  const key = kiloTestKey;
  const ep = (ip: string, port = 51820) => ({ ip, port });
  const node = (name: string, fields: Partial<KiloNode>): KiloNode =>
    kiloNode(name, { lastSeen: now, granularity: 'location', ...fields });
  return [
    node('a', {
      endpoint: ep('10.1.0.1'),
      internalIP: '192.168.0.1/32',
      location: '1',
      subnet: '10.2.1.0/24',
      key: key('key1'),
      persistentKeepalive: 25,
      wireGuardIP: '10.4.0.1/16',
    }),
    node('b', {
      endpoint: ep('10.1.0.2'),
      internalIP: '192.168.0.1/32',
      location: '2',
      subnet: '10.2.2.0/24',
      key: key('key2'),
      allowedLocationIPs: ['192.168.178.3/32'],
      wireGuardIP: '10.4.0.2/16',
    }),
    node('c', {
      endpoint: ep('10.1.0.3'),
      internalIP: '192.168.0.2/32',
      location: '2',
      subnet: '10.2.3.0/24',
      key: key('key3'),
    }),
    node('d', {
      endpoint: ep('10.1.0.4'),
      location: '1',
      subnet: '10.2.4.0/24',
      key: key('key4'),
      wireGuardIP: '10.4.0.3/16',
    }),
    node('e', {
      endpoint: ep('10.1.0.5'),
      location: '3',
      subnet: '10.2.5.0/24',
      key: key('key6'),
      lastSeen: now - 120,
    }),
  ];
}
