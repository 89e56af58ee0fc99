import {
  ALLOWED_LOCATION_IPS_ANNOTATION as ALIPS,
  CNI_COMPATIBILITY_IP_ANNOTATION as CNI_IP,
  DISCOVERED_ENDPOINTS_ANNOTATION as DISCOVERED,
  ENDPOINT_ANNOTATION as ENDPOINT,
  FORCE_ENDPOINT_ANNOTATION as FORCE_ENDPOINT,
  FORCE_INTERNAL_IP_ANNOTATION as FORCE_INTERNAL_IP,
  GRANULARITY_ANNOTATION as GRANULARITY,
  INTERNAL_IP_ANNOTATION as INTERNAL_IP,
  KEY_ANNOTATION as KEY,
  LAST_SEEN_ANNOTATION as LAST_SEEN,
  LEADER_ANNOTATION as LEADER,
  LEADER_PROBE_ANNOTATION as LEADER_PROBE,
  LOCATION_ANNOTATION as LOCATION,
  PERSISTENT_KEEPALIVE_ANNOTATION as KEEPALIVE,
  WIREGUARD_IP_ANNOTATION as WIREGUARD_IP,
} from './annotations';
import { goParseCIDR, goParseIP } from './ip';
import type { PeerResource, PeerSpec } from './peer-resource';
import {
  annotationsPatch,
  cleanupPatch,
  formatDiscoveredEndpoints,
  nodeAnnotations,
  parseDiscoveredEndpoints,
  peerResource,
  translateNode,
  translatePeer,
  translatePeerSpec,
} from './translate';
import type { KiloNode, KiloPeer } from './types';
import { DEFAULT_TOPOLOGY_LABEL as REGION } from './types';

const key = (byte: number): string => Buffer.alloc(32, byte).toString('base64');
const FOO_KEY = key(0x11);
const PSK = key(0x22);

const EMPTY: KiloNode = {
  name: 'a',
  noInternalIP: false,
  lastSeen: 0,
  leader: false,
  location: '',
  persistentKeepalive: 0,
  discoveredEndpoints: {},
  allowedLocationIPs: [],
};

interface NodeCase {
  name: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  subnet?: string;
  out: Partial<KiloNode>;
}

/** The annotations Kilo's last four TestTranslateNode cases share, and what they give. */
const COMMON = {
  [KEY]: FOO_KEY,
  [LAST_SEEN]: '1000000000',
  [LOCATION]: 'b',
  [KEEPALIVE]: '25',
  [WIREGUARD_IP]: '10.4.0.1/16',
};
const COMMON_OUT: Partial<KiloNode> = {
  key: FOO_KEY,
  lastSeen: 1000000000,
  location: 'b',
  persistentKeepalive: 25,
  subnet: '10.2.1.0/24',
  wireGuardIP: '10.4.0.1/16',
};

// Kilo pkg/k8s/backend_test.go TestTranslateNode, every case, same inputs and outputs.
const NODE_CASES: NodeCase[] = [
  { name: 'empty', out: {} },
  { name: 'invalid ips', annotations: { [ENDPOINT]: '10.0.0.1', [INTERNAL_IP]: 'foo' }, out: {} },
  {
    name: 'valid ips',
    annotations: { [ENDPOINT]: '10.0.0.1:51820', [INTERNAL_IP]: '10.0.0.2/32' },
    out: { endpoint: { ip: '10.0.0.1', port: 51820 }, internalIP: '10.0.0.2/32' },
  },
  {
    name: 'valid ips with ipv6',
    annotations: { [ENDPOINT]: '[ff10::10]:51820', [INTERNAL_IP]: 'ff60::10/64' },
    out: { endpoint: { ip: 'ff10::10', port: 51820 }, internalIP: 'ff60::10/64' },
  },
  { name: 'invalid subnet', annotations: {}, subnet: 'foo', out: {} },
  { name: 'normalize subnet', annotations: {}, subnet: '10.2.0.1/24', out: { subnet: '10.2.0.0/24' } },
  { name: 'valid subnet', annotations: {}, subnet: '10.2.1.0/24', out: { subnet: '10.2.1.0/24' } },
  { name: 'region', labels: { [REGION]: 'a' }, out: { location: 'a' } },
  {
    name: 'region override',
    annotations: { [LOCATION]: 'b' },
    labels: { [REGION]: 'a' },
    out: { location: 'b' },
  },
  {
    name: 'invalid endpoint override',
    annotations: { [ENDPOINT]: '10.0.0.1:51820', [FORCE_ENDPOINT]: '-10.0.0.2:51821' },
    out: { endpoint: { ip: '10.0.0.1', port: 51820 } },
  },
  {
    name: 'endpoint override',
    annotations: { [ENDPOINT]: '10.0.0.1:51820', [FORCE_ENDPOINT]: '10.0.0.2:51821' },
    out: { endpoint: { ip: '10.0.0.2', port: 51821 } },
  },
  {
    name: 'wireguard persistent keepalive override',
    annotations: { [KEEPALIVE]: '25' },
    out: { persistentKeepalive: 25 },
  },
  {
    name: 'invalid internal IP override',
    annotations: { [INTERNAL_IP]: '10.1.0.1/24', [FORCE_INTERNAL_IP]: '-10.1.0.2/24' },
    out: { internalIP: '10.1.0.1/24', noInternalIP: false },
  },
  {
    name: 'internal IP override',
    annotations: { [INTERNAL_IP]: '10.1.0.1/24', [FORCE_INTERNAL_IP]: '10.1.0.2/24' },
    out: { internalIP: '10.1.0.2/24', noInternalIP: false },
  },
  { name: 'invalid time', annotations: { [LAST_SEEN]: 'foo' }, out: {} },
  {
    name: 'complete',
    annotations: {
      ...COMMON,
      [ENDPOINT]: '10.0.0.1:51820',
      [FORCE_ENDPOINT]: '10.0.0.2:51821',
      [FORCE_INTERNAL_IP]: '10.1.0.2/32',
      [INTERNAL_IP]: '10.1.0.1/32',
      [LEADER]: '',
    },
    labels: { [REGION]: 'a' },
    subnet: '10.2.1.0/24',
    out: {
      ...COMMON_OUT,
      endpoint: { ip: '10.0.0.2', port: 51821 },
      internalIP: '10.1.0.2/32',
      leader: true,
    },
  },
  {
    name: 'complete with ipv6',
    annotations: {
      ...COMMON,
      [ENDPOINT]: '10.0.0.1:51820',
      [FORCE_ENDPOINT]: '[1100::10]:51821',
      [FORCE_INTERNAL_IP]: '10.1.0.2/32',
      [INTERNAL_IP]: '10.1.0.1/32',
      [LEADER]: '',
    },
    labels: { [REGION]: 'a' },
    subnet: '10.2.1.0/24',
    out: {
      ...COMMON_OUT,
      endpoint: { ip: '1100::10', port: 51821 },
      internalIP: '10.1.0.2/32',
      leader: true,
    },
  },
  {
    name: 'no InternalIP',
    annotations: { ...COMMON, [ENDPOINT]: '10.0.0.1:51820', [INTERNAL_IP]: '' },
    labels: { [REGION]: 'a' },
    subnet: '10.2.1.0/24',
    out: { ...COMMON_OUT, endpoint: { ip: '10.0.0.1', port: 51820 } },
  },
  {
    name: 'Force no internal IP',
    annotations: {
      ...COMMON,
      [ENDPOINT]: '10.0.0.1:51820',
      [INTERNAL_IP]: '10.1.0.1/32',
      [FORCE_INTERNAL_IP]: '',
    },
    labels: { [REGION]: 'a' },
    subnet: '10.2.1.0/24',
    out: { ...COMMON_OUT, endpoint: { ip: '10.0.0.1', port: 51820 }, noInternalIP: true },
  },
];

describe('translateNode (Kilo TestTranslateNode)', () => {
  it.each(NODE_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const { node } = translateNode(
      {
        name: 'a',
        ...(c.subnet !== undefined ? { podCIDR: c.subnet } : {}),
        ...(c.labels ? { labels: c.labels } : {}),
        ...(c.annotations ? { annotations: c.annotations } : {}),
      },
      REGION,
    );
    expect(node).toEqual({ ...EMPTY, ...c.out });
  });
});

describe('translateNode problems (what Kilo ignores silently)', () => {
  it.each<[string, Record<string, string>, string | undefined, string[]]>([
    [
      'no problems for a complete node',
      NODE_CASES.find((c) => c.name === 'complete')?.annotations ?? {},
      '10.2.1.0/24',
      [],
    ],
    [
      'invalid ips',
      { [ENDPOINT]: '10.0.0.1', [INTERNAL_IP]: 'foo' },
      undefined,
      [
        'node a: kilo.squat.ai/endpoint "10.0.0.1" is not ip:port, [ipv6]:port or dns-name:port; ignored',
        'node a: kilo.squat.ai/internal-ip "foo" is not a CIDR such as 192.0.2.1/24; ignored',
      ],
    ],
    ['invalid subnet', {}, 'foo', ['node a: spec.podCIDR "foo" is not a CIDR; ignored']],
    [
      'invalid endpoint override',
      { [ENDPOINT]: '10.0.0.1:51820', [FORCE_ENDPOINT]: '-10.0.0.2:51821' },
      undefined,
      [
        'node a: kilo.squat.ai/force-endpoint "-10.0.0.2:51821" is not ip:port, [ipv6]:port or dns-name:port; ignored',
      ],
    ],
    [
      'invalid time',
      { [LAST_SEEN]: 'foo' },
      undefined,
      ['node a: kilo.squat.ai/last-seen "foo" is not unix seconds; ignored'],
    ],
    [
      'invalid keepalive',
      { [KEEPALIVE]: '25s' },
      undefined,
      ['node a: kilo.squat.ai/persistent-keepalive "25s" is not a number of seconds; ignored'],
    ],
    [
      'invalid key',
      { [KEY]: 'foo' },
      undefined,
      ['node a: kilo.squat.ai/key "foo" is not a base64 WireGuard key of 32 bytes; ignored'],
    ],
    [
      'unknown granularity',
      { [GRANULARITY]: 'mesh' },
      undefined,
      ['node a: kilo.squat.ai/granularity "mesh" is not one of location, full, cross; ignored'],
    ],
    [
      '"" and "-" are no problem',
      { [FORCE_INTERNAL_IP]: '-', [INTERNAL_IP]: '', [DISCOVERED]: '' },
      undefined,
      [],
    ],
  ])('%s', (_name, annotations, podCIDR, problems) => {
    expect(
      translateNode({ name: 'a', annotations, ...(podCIDR !== undefined ? { podCIDR } : {}) }, REGION)
        .problems,
    ).toEqual(problems);
  });

  it('never throws, whatever the annotations hold', () => {
    const junk = Object.fromEntries(
      [
        ENDPOINT,
        FORCE_ENDPOINT,
        INTERNAL_IP,
        FORCE_INTERNAL_IP,
        KEY,
        LAST_SEEN,
        KEEPALIVE,
        WIREGUARD_IP,
        DISCOVERED,
        ALIPS,
        GRANULARITY,
        CNI_IP,
        LEADER_PROBE,
      ].map((k) => [k, '{]x:::/99']),
    );
    const { node, problems } = translateNode({ name: 'a', annotations: junk, podCIDR: '::/999' }, REGION);
    expect(node).toEqual(EMPTY);
    expect(problems).toHaveLength(14); // one per annotation, one for the pod CIDR
    for (const p of problems) expect(p).not.toContain('\n');
  });
});

describe('translateNode: the other annotations', () => {
  it('force-internal-ip "-" means no internal IP, as ""', () => {
    const { node } = translateNode(
      { name: 'a', annotations: { [INTERNAL_IP]: '10.1.0.1/32', [FORCE_INTERNAL_IP]: '-' } },
      REGION,
    );
    expect(node).toEqual({ ...EMPTY, noInternalIP: true });
  });

  it('a DNS force-endpoint is kept as a name', () => {
    const { node } = translateNode(
      { name: 'a', annotations: { [FORCE_ENDPOINT]: 'node-a.example.com:51820' } },
      REGION,
    );
    expect(node.endpoint).toEqual({ dns: 'node-a.example.com', port: 51820 });
  });

  it('an empty location annotation still overrides the label', () => {
    const { node } = translateNode(
      { name: 'a', annotations: { [LOCATION]: '' }, labels: { [REGION]: 'eu' } },
      REGION,
    );
    expect(node.location).toBe('');
  });

  it('allowed-location-ips: split on commas without trimming, as Kilo (a space drops the entry, with a problem)', () => {
    const { node, problems } = translateNode(
      { name: 'a', annotations: { [ALIPS]: '192.168.1.0/24,10.9.0.1/32, 172.16.0.0/16' } },
      REGION,
    );
    expect(node.allowedLocationIPs).toEqual(['192.168.1.0/24', '10.9.0.1/32']);
    expect(problems).toEqual([
      'node a: kilo.squat.ai/allowed-location-ips entry " 172.16.0.0/16" is not a CIDR (no spaces after commas); ignored',
    ]);
  });

  it('granularity, cni-compatibility-ip and the leader-probe extension', () => {
    const { node, problems } = translateNode(
      {
        name: 'a',
        annotations: {
          [GRANULARITY]: 'full',
          [CNI_IP]: '10.2.1.153/32',
          [LEADER_PROBE]: '{"leader":"b","healthy":false,"since":1700000000}',
        },
      },
      REGION,
    );
    expect(problems).toEqual([]);
    expect(node).toEqual({
      ...EMPTY,
      granularity: 'full',
      cniCompatibilityIP: '10.2.1.153/32',
      leaderProbe: { leader: 'b', healthy: false, since: 1700000000 },
    });
  });

  it('a negative keepalive is 0 with a problem (deviation: Kilo passes it to wgctrl)', () => {
    const { node, problems } = translateNode({ name: 'a', annotations: { [KEEPALIVE]: '-5' } }, REGION);
    expect(node.persistentKeepalive).toBe(0);
    expect(problems).toEqual([
      'node a: kilo.squat.ai/persistent-keepalive "-5" is not 0–65535 seconds; ignored',
    ]);
  });

  it('the all-zero key counts as no key (Kilo: wgtypes.Key{}, never Ready)', () => {
    const { node, problems } = translateNode({ name: 'a', annotations: { [KEY]: key(0) } }, REGION);
    expect(node.key).toBeUndefined();
    expect(problems).toHaveLength(1);
  });
});

describe('discovered-endpoints (Go encoding/json of map[string]*net.UDPAddr)', () => {
  const endpoints = {
    [key(0x33)]: { ip: '2001:db8::7', port: 51820 },
    [key(0x11)]: { ip: '192.0.2.1', port: 40000 },
  };
  const json = `{"${key(0x11)}":{"IP":"192.0.2.1","Port":40000,"Zone":""},"${key(0x33)}":{"IP":"2001:db8::7","Port":51820,"Zone":""}}`;

  it('prints as Go: sorted keys, IP/Port/Zone, no spaces', () => {
    expect(formatDiscoveredEndpoints(endpoints)).toBe(json);
    expect(formatDiscoveredEndpoints({})).toBe('{}');
  });

  it('reads back, and reads Go field names case-insensitively', () => {
    expect(parseDiscoveredEndpoints(json)).toEqual({ endpoints, problems: [] });
    expect(parseDiscoveredEndpoints('{"k":{"ip":"192.0.2.1","port":1}}').endpoints).toEqual({
      k: { ip: '192.0.2.1', port: 1 },
    });
    expect(parseDiscoveredEndpoints('null')).toEqual({ endpoints: {}, problems: [] });
  });

  it('drops the whole map on any error, as json.Unmarshal', () => {
    expect(parseDiscoveredEndpoints('{"a":{"IP":"192.0.2.1","Port":1},"b":{"IP":"nope","Port":1}}')).toEqual({
      endpoints: {},
      problems: ['entry "b" is not {"IP","Port","Zone"}'],
    });
    expect(parseDiscoveredEndpoints('{"a":{"IP":"192.0.2.1","Port":1.5}}').endpoints).toEqual({});
    expect(parseDiscoveredEndpoints('[1]').problems).toEqual(['is not a JSON object']);
    expect(parseDiscoveredEndpoints('{').problems).toEqual(['is not JSON']);
  });

  it('skips entries without an address, with a problem', () => {
    expect(parseDiscoveredEndpoints('{"a":null,"b":{"Port":1}}')).toEqual({
      endpoints: {},
      problems: ['entry "a" has no IP', 'entry "b" has no IP'],
    });
  });
});

describe('nodeAnnotations (Kilo nodeBackend.Set)', () => {
  const node: KiloNode = {
    ...EMPTY,
    endpoint: { ip: '2001:db8::1', port: 51820 },
    key: FOO_KEY,
    internalIP: '192.168.0.11/24',
    lastSeen: 1700000000,
    wireGuardIP: '10.4.0.1/16',
    discoveredEndpoints: { [PSK]: { ip: '198.51.100.9', port: 3333 } },
    granularity: 'location',
    location: 'eu',
    leader: true,
  };

  it('writes Kilo formats on a leader', () => {
    expect(nodeAnnotations(node, { leader: true })).toEqual({
      [ENDPOINT]: '[2001:db8::1]:51820',
      [INTERNAL_IP]: '192.168.0.11/24',
      [KEY]: FOO_KEY,
      [LAST_SEEN]: '1700000000',
      [WIREGUARD_IP]: '10.4.0.1/16',
      [DISCOVERED]: `{"${PSK}":{"IP":"198.51.100.9","Port":3333,"Zone":""}}`,
      [GRANULARITY]: 'location',
      [CNI_IP]: '',
    });
  });

  it('writes "" for wireguard-ip on a non-leader and for no internal IP; a DNS endpoint as a name; the leader probe as JSON', () => {
    const out = nodeAnnotations(
      {
        ...node,
        endpoint: { dns: 'a.example.com', ip: '192.0.2.1', port: 51820 },
        internalIP: undefined,
        noInternalIP: true,
        leaderProbe: { leader: 'b', healthy: true, since: 5 },
      },
      { leader: false },
    );
    expect(out[WIREGUARD_IP]).toBe('');
    expect(out[INTERNAL_IP]).toBe('');
    expect(out[ENDPOINT]).toBe('a.example.com:51820');
    expect(out[LEADER_PROBE]).toBe('{"leader":"b","healthy":true,"since":5}');
  });

  it('round-trips through translateNode', () => {
    const annotations = { ...nodeAnnotations(node, { leader: true }), [LOCATION]: 'eu', [LEADER]: '' };
    expect(translateNode({ name: 'a', annotations }, REGION)).toEqual({ node, problems: [] });
  });
});

describe('annotationsPatch (strategic merge of the changed keys)', () => {
  it('sends only what changed, nothing when nothing did', () => {
    const current = { [KEY]: FOO_KEY, [LAST_SEEN]: '1', other: 'x' };
    expect(annotationsPatch(current, { [KEY]: FOO_KEY, [LAST_SEEN]: '2' })).toEqual({
      metadata: { annotations: { [LAST_SEEN]: '2' } },
    });
    expect(annotationsPatch(current, { [KEY]: FOO_KEY })).toBeUndefined();
    expect(annotationsPatch(undefined, { [KEY]: FOO_KEY })).toEqual({
      metadata: { annotations: { [KEY]: FOO_KEY } },
    });
  });
});

describe('cleanupPatch (Kilo nodeBackend.CleanUp)', () => {
  it("removes Kilo's seven keys in Kilo's order, escaped, plus knet's leader-probe; cni-compatibility-ip and user keys stay", () => {
    const all = Object.fromEntries(
      [
        ENDPOINT,
        INTERNAL_IP,
        KEY,
        LAST_SEEN,
        WIREGUARD_IP,
        DISCOVERED,
        GRANULARITY,
        CNI_IP,
        LEADER_PROBE,
        LOCATION,
        FORCE_ENDPOINT,
      ].map((k) => [k, 'v']),
    );
    expect(cleanupPatch(all)).toEqual([
      { op: 'remove', path: '/metadata/annotations/kilo.squat.ai~1endpoint' },
      { op: 'remove', path: '/metadata/annotations/kilo.squat.ai~1internal-ip' },
      { op: 'remove', path: '/metadata/annotations/kilo.squat.ai~1key' },
      { op: 'remove', path: '/metadata/annotations/kilo.squat.ai~1last-seen' },
      { op: 'remove', path: '/metadata/annotations/kilo.squat.ai~1wireguard-ip' },
      { op: 'remove', path: '/metadata/annotations/kilo.squat.ai~1discovered-endpoints' },
      { op: 'remove', path: '/metadata/annotations/kilo.squat.ai~1granularity' },
      { op: 'remove', path: '/metadata/annotations/kilo-agent.knet.dev~1leader-probe' },
    ]);
  });

  it('removes only keys that are present (deviation: Kilo always sends seven removes, and one missing key fails its whole patch)', () => {
    expect(cleanupPatch({ [KEY]: 'k', [LOCATION]: 'eu' })).toEqual([
      { op: 'remove', path: '/metadata/annotations/kilo.squat.ai~1key' },
    ]);
    expect(cleanupPatch(undefined)).toEqual([]);
  });
});

const PEER_BASE: KiloPeer = { name: 'p', allowedIPs: [], publicKey: '', persistentKeepalive: 0 };

// Kilo pkg/k8s/backend_test.go TestTranslatePeer, every case (translation without validation).
describe('translatePeerSpec (Kilo TestTranslatePeer)', () => {
  it.each<[string, Partial<PeerSpec>, Partial<KiloPeer>]>([
    ['empty', {}, {}],
    ['invalid ips', { allowedIPs: ['10.0.0.1', 'foo'] }, {}],
    [
      'valid ips',
      { allowedIPs: ['10.0.0.1/24', '10.0.0.2/32'] },
      { allowedIPs: ['10.0.0.1/24', '10.0.0.2/32'] },
    ],
    ['invalid endpoint ip', { endpoint: { dnsOrIP: { ip: 'foo' }, port: 51820 } }, {}],
    ['only endpoint port', { endpoint: { dnsOrIP: {}, port: 51820 } }, {}],
    [
      'valid endpoint ip',
      { endpoint: { dnsOrIP: { ip: '10.0.0.1' }, port: 51820 } },
      { endpoint: { ip: '10.0.0.1', port: 51820 } },
    ],
    [
      'valid endpoint ipv6',
      { endpoint: { dnsOrIP: { ip: 'ff60::2' }, port: 51820 } },
      { endpoint: { ip: 'ff60::2', port: 51820 } },
    ],
    [
      'valid endpoint DNS',
      { endpoint: { dnsOrIP: { dns: 'example.com' }, port: 51820 } },
      { endpoint: { dns: 'example.com', port: 51820 } },
    ],
    ['empty key', { publicKey: '' }, {}],
    ['valid key', { publicKey: FOO_KEY }, { publicKey: FOO_KEY }],
    ['invalid keepalive', { persistentKeepalive: -1 }, {}],
    ['valid keepalive', { persistentKeepalive: 1 }, { persistentKeepalive: 1 }],
    ['valid preshared key', { presharedKey: PSK }, { presharedKey: PSK }],
  ])('%s', (_name, spec, out) => {
    expect(translatePeerSpec('p', spec).peer).toEqual({ ...PEER_BASE, ...out });
  });

  it('DNS wins over IP; an invalid name then leaves no endpoint, as in Kilo', () => {
    expect(
      translatePeerSpec('p', { endpoint: { dnsOrIP: { dns: 'example.com', ip: '10.0.0.1' }, port: 1 } }).peer
        .endpoint,
    ).toEqual({
      dns: 'example.com',
      port: 1,
    });
    expect(
      translatePeerSpec('p', { endpoint: { dnsOrIP: { dns: 'Bad_Name', ip: '10.0.0.1' }, port: 1 } }).peer
        .endpoint,
    ).toBeUndefined();
  });

  it('reports what it ignored, without echoing a preshared key', () => {
    const { problems } = translatePeerSpec('p', {
      allowedIPs: ['foo'],
      publicKey: FOO_KEY,
      presharedKey: 'secret-psk',
    });
    expect(problems).toEqual([
      'peer p: allowed IP "foo" is not a CIDR; ignored',
      'peer p: presharedKey is not a base64 WireGuard key of 32 bytes; ignored',
    ]);
  });
});

function peer(spec: PeerSpec, name = 'laptop'): PeerResource {
  return { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name }, spec };
}

describe('translatePeer (a Peer as kg sees it)', () => {
  it('translates a valid Peer', () => {
    expect(
      translatePeer(peer({ allowedIPs: ['10.5.0.1/32'], publicKey: FOO_KEY, persistentKeepalive: 10 })),
    ).toEqual({
      peer: { name: 'laptop', allowedIPs: ['10.5.0.1/32'], publicKey: FOO_KEY, persistentKeepalive: 10 },
      problems: [],
    });
  });

  it('drops a Peer that fails Validate, as Kilo (silently there), with its errors as problems', () => {
    expect(translatePeer(peer({ allowedIPs: ['10.5.0.1'], publicKey: FOO_KEY }))).toEqual({
      problems: [
        'peer laptop: invalid, ignored: spec.allowedIPs: "10.5.0.1" is not a CIDR such as 10.5.0.1/32',
      ],
    });
  });
});

describe('peerResource (kgctl showconf --as-peer -o yaml)', () => {
  it('builds the Peer of a node, keepalive in seconds (Kilo bug fixed: kgctl writes nanoseconds)', () => {
    expect(
      peerResource(
        {
          name: 'x',
          allowedIPs: ['10.2.1.0/24', '10.4.0.1/32'],
          publicKey: FOO_KEY,
          endpoint: { ip: '192.0.2.1', port: 51820 },
          persistentKeepalive: 10,
          presharedKey: PSK,
        },
        'cluster1-a',
      ),
    ).toEqual({
      apiVersion: 'kilo.squat.ai/v1alpha1',
      kind: 'Peer',
      metadata: { name: 'cluster1-a' },
      spec: {
        allowedIPs: ['10.2.1.0/24', '10.4.0.1/32'],
        publicKey: FOO_KEY,
        endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: 51820 },
        persistentKeepalive: 10,
        presharedKey: PSK,
      },
    });
  });

  it('omits what is absent (Kilo bug fixed: kgctl writes ip "<nil>" and port 0 for no endpoint)', () => {
    expect(
      peerResource(
        { name: 'x', allowedIPs: ['10.4.0.1/32'], publicKey: FOO_KEY, persistentKeepalive: 0 },
        'n',
      ).spec,
    ).toEqual({
      allowedIPs: ['10.4.0.1/32'],
      publicKey: FOO_KEY,
    });
    expect(
      peerResource(
        { name: 'x', allowedIPs: [], publicKey: FOO_KEY, endpoint: { dns: 'a.example', port: 1 } },
        'n',
      ).spec.endpoint,
    ).toEqual({
      dnsOrIP: { dns: 'a.example' },
      port: 1,
    });
  });

  it('round-trips through translatePeer', () => {
    const p: KiloPeer = {
      name: 'n',
      allowedIPs: ['10.4.0.1/32'],
      publicKey: FOO_KEY,
      endpoint: { dns: 'a.example', port: 1 },
      persistentKeepalive: 5,
    };
    expect(translatePeer(peerResource(p, 'n'))).toEqual({ peer: p, problems: [] });
  });
});

describe('Go address parsing used by the translation (ip.ts)', () => {
  it.each<[string, string | undefined]>([
    ['10.0.0.1', '10.0.0.1'],
    ['010.0.0.1', undefined],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['FF60:0::10', 'ff60::10'],
    ['fe80::1%eth0', undefined],
    ['', undefined],
  ])('goParseIP(%j) = %j', (text, want) => {
    expect(goParseIP(text)).toBe(want);
  });

  it.each<[string, string | undefined]>([
    ['10.1.0.1/24', '10.1.0.1/24'],
    ['10.0.0.1', undefined],
    ['10.0.0.1/', undefined],
    ['10.0.0.1/33', undefined],
    ['10.0.0.1/ 24', undefined],
    ['ff60::10/64', 'ff60::10/64'],
    ['::ffff:10.0.0.1/120', '10.0.0.1/24'],
  ])('goParseCIDR(%j) = %j', (text, want) => {
    expect(goParseCIDR(text)).toBe(want);
  });
});
