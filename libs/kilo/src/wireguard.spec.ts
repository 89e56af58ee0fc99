import { wireGuardPublicKey } from '@knet/crypto';
import type { WgInterfaceState, WgPeerState } from '@knet/host-net';
import { endpointReady } from './topology';
import type { Conf, Endpoint } from './types';
import {
  WireGuardConfError,
  confDiffers,
  endpointFromUdpAddr,
  endpointsEqual,
  formatEndpoint,
  newEndpoint,
  parseConf,
  parseEndpoint,
  parseWgKey,
  renderConf,
  toWgConfig,
} from './wireguard';

const key = (byte: number): string => Buffer.alloc(32, byte).toString('base64');
const PRIVATE = key(7);
const PUBLIC = wireGuardPublicKey(PRIVATE);
const A = key(0x11);
const B = key(0x22);
const C = key(0x33);
const PSK = key(0x44);
const ZERO = key(0);

/** A leader's config: an IPv4 peer without keepalive and an IPv6 one with keepalive and PSK. */
const LEADER_CONF: Conf = {
  privateKey: PRIVATE,
  listenPort: 51820,
  peers: [
    {
      publicKey: B,
      allowedIPs: ['10.2.2.0/24', '10.4.0.2/32'],
      endpoint: { ip: '192.0.2.2', port: 51820 },
      persistentKeepalive: 0,
    },
    {
      publicKey: A,
      allowedIPs: ['10.2.1.0/24'],
      endpoint: { ip: '2001:db8::1', port: 51820 },
      persistentKeepalive: 25,
      presharedKey: PSK,
    },
  ],
};

// Kilo pkg/wireguard/conf_test.go TestNewEndpoint: NewEndpoint(ip, port) cuts IPv4 to 4 bytes.
describe('newEndpoint (Kilo TestNewEndpoint)', () => {
  it.each<[string, string | undefined, number, Endpoint]>([
    ['no ip, no port', undefined, 0, { port: 0 }],
    ['only port', undefined, 99, { port: 99 }],
    ['only ipv4', '10.0.0.0', 0, { ip: '10.0.0.0', port: 0 }],
    ['only ipv6', 'ff50::10', 0, { ip: 'ff50::10', port: 0 }],
    ['ipv4', '10.0.0.0', 1000, { ip: '10.0.0.0', port: 1000 }],
    ['ipv6', 'ff50::10', 1000, { ip: 'ff50::10', port: 1000 }],
    ['ipv6 (kind)', 'fc00:f853:ccd:e793::3', 51820, { ip: 'fc00:f853:ccd:e793::3', port: 51820 }],
    ['IPv4-mapped IPv6 is cut to IPv4', '::ffff:10.0.0.0', 1000, { ip: '10.0.0.0', port: 1000 }],
  ])('%s', (_name, ip, port, want) => {
    expect(newEndpoint(ip, port)).toEqual(want);
  });
});

// Kilo TestParseEndpoint, plus the DNS and range cases ParseEndpoint handles.
describe('parseEndpoint (Kilo TestParseEndpoint)', () => {
  it.each<[string, string, Endpoint | undefined]>([
    ['no ip, no port', '', undefined],
    ['only port', ':1000', undefined],
    ['only ipv4', '10.0.0.0', undefined],
    ['only ipv6', 'ff50::10', undefined],
    ['ipv4', '10.0.0.0:1000', { ip: '10.0.0.0', port: 1000 }],
    ['ipv6', '[ff50::10]:1000', { ip: 'ff50::10', port: 1000 }],
    ['dns', 'example.com:51820', { dns: 'example.com', port: 51820 }],
    ['dns must be RFC 1123', 'Example.com:51820', undefined],
    ['leading dash (translateNode "invalid endpoint override")', '-10.0.0.2:51821', undefined],
    ['port 0', '10.0.0.1:0', undefined],
    ['port 65536', '10.0.0.1:65536', undefined],
    ['signed port', '10.0.0.1:+1', undefined],
    ['ipv6 without brackets', 'ff50::10:1000', undefined],
    [
      'ipv4 with a leading zero is no IP for Go, so it is a DNS name',
      '010.0.0.1:1',
      { dns: '010.0.0.1', port: 1 },
    ],
    ['ipv6 is canonicalised', '[FF50:0::10]:1000', { ip: 'ff50::10', port: 1000 }],
  ])('%s', (_name, text, want) => {
    expect(parseEndpoint(text)).toEqual(want);
  });
});

// Kilo TestNewEndpointFromUDPAddr. Go returns an empty Endpoint for nil, which is never Ready;
// here that is undefined.
describe('endpointFromUdpAddr (Kilo TestNewEndpointFromUDPAddr)', () => {
  it.each<[string, Parameters<typeof endpointFromUdpAddr>[0], Endpoint | undefined]>([
    ['no ip, no port', undefined, undefined],
    ['only port', { ip: '', port: 1000 }, { port: 1000 }],
    ['only ipv4', { ip: '10.0.0.0', port: 0 }, { ip: '10.0.0.0', port: 0 }],
    ['only ipv6', { ip: 'ff60::10', port: 0 }, { ip: 'ff60::10', port: 0 }],
    ['ipv4', { ip: '10.0.0.0', port: 1000 }, { ip: '10.0.0.0', port: 1000 }],
    ['ipv6', { ip: 'ff50::10', port: 1000 }, { ip: 'ff50::10', port: 1000 }],
  ])('%s', (_name, addr, want) => {
    expect(endpointFromUdpAddr(addr)).toEqual(want);
  });
});

// Kilo TestReady, on topology's endpointReady (Kilo's Endpoint.Ready).
describe('endpointReady (Kilo TestReady)', () => {
  it.each<[string, Endpoint | undefined, boolean]>([
    ['nil', undefined, false],
    ['no ip, no port', { port: 0 }, false],
    ['only port', { port: 1000 }, false],
    ['only ipv4', { ip: '10.0.0.0', port: 0 }, false],
    ['only ipv6', { ip: 'ff60::10', port: 0 }, false],
    ['ipv4', { ip: '10.0.0.0', port: 1000 }, true],
    ['ipv6', { ip: 'ff50::10', port: 1000 }, true],
    ['dns', { dns: 'example.com', port: 1000 }, true],
  ])('%s', (_name, e, want) => {
    expect(endpointReady(e)).toBe(want);
  });
});

// Kilo TestEqual: Endpoint.Equal(b, dnsFirst) compares StringOpt(dnsFirst). Kilo's bare "foo"
// addresses carry a port here, as our Endpoint always has one.
describe('endpointsEqual (Kilo TestEqual)', () => {
  const ex = { ip: '10.0.0.0', port: 1000, dns: 'example.com' };
  const foo = { ip: '10.0.0.0', port: 1000, dns: 'foo' };
  it.each<[string, Endpoint | undefined, Endpoint | undefined, boolean, boolean]>([
    ['nil dns last', undefined, undefined, false, true],
    ['nil dns first', undefined, undefined, true, true],
    ['equal: only port', { port: 1000 }, { port: 1000 }, false, true],
    ['not equal: only port', { port: 1000 }, { port: 1001 }, false, false],
    ['equal dns first', ex, { ...ex }, false, true],
    ['equal dns last', ex, foo, false, true],
    ['unequal dns first', ex, foo, true, false],
    ['unequal dns last', foo, { ...foo, ip: '11.0.0.0' }, false, false],
    ['unequal dns last empty IP', { dns: 'foo', port: 0 }, { dns: 'bar', port: 0 }, false, false],
    ['equal dns last empty IP', { dns: 'foo', port: 0 }, { dns: 'foo', port: 0 }, false, true],
  ])('%s', (_name, a, b, dnsFirst, want) => {
    expect(endpointsEqual(a, b, dnsFirst)).toBe(want);
  });
});

describe('formatEndpoint (Kilo StringOpt)', () => {
  it.each<[string, Endpoint | undefined, boolean, string]>([
    ['nil', undefined, true, ''],
    ['ipv4', { ip: '192.0.2.1', port: 51820 }, true, '192.0.2.1:51820'],
    ['ipv6 in brackets', { ip: '2001:db8::1', port: 51820 }, true, '[2001:db8::1]:51820'],
    ['dns first', { ip: '192.0.2.1', dns: 'a.example', port: 1 }, true, 'a.example:1'],
    ['ip first', { ip: '192.0.2.1', dns: 'a.example', port: 1 }, false, '192.0.2.1:1'],
    ['unresolved dns, ip first', { dns: 'a.example', port: 1 }, false, 'a.example:1'],
    ['port only, as Go UDPAddr.String', { port: 7 }, true, ':7'],
  ])('%s', (_name, e, dnsFirst, want) => {
    expect(formatEndpoint(e, dnsFirst)).toBe(want);
  });
});

describe('parseWgKey (wgtypes.ParseKey)', () => {
  it('accepts 32 bytes of base64 and canonicalises the padding bits Go ignores', () => {
    expect(parseWgKey(A)).toBe(A);
    const sloppy = `${A.slice(0, 42)}R=`;
    expect(parseWgKey(sloppy)).toBe(A.slice(0, 42) + 'Q=');
  });
  it.each(['', 'foo', `${A}=`, A.slice(1), `${A.slice(0, 43)}`])('refuses %j', (text) => {
    expect(parseWgKey(text)).toBeUndefined();
  });
});

describe('renderConf (Kilo Conf.Bytes)', () => {
  it('renders a leader config byte for byte: interface, peers in the given order, DNS first, keepalive always', () => {
    const conf: Conf = {
      privateKey: PRIVATE,
      listenPort: 51820,
      peers: [
        {
          publicKey: B,
          allowedIPs: ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32'],
          endpoint: { ip: '192.0.2.1', port: 51820 },
        },
        {
          publicKey: A,
          allowedIPs: ['10.5.0.1/32'],
          endpoint: { dns: 'peer.example.com', ip: '198.51.100.7', port: 51821 },
          persistentKeepalive: 25,
          presharedKey: PSK,
        },
      ],
    };
    expect(renderConf(conf)).toBe(
      [
        '[Interface]',
        `PrivateKey = ${PRIVATE}`,
        'ListenPort = 51820',
        '',
        '[Peer]',
        'AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32',
        'Endpoint = 192.0.2.1:51820',
        'PersistentKeepalive = 0',
        `PublicKey = ${B}`,
        '',
        '[Peer]',
        'AllowedIPs = 10.5.0.1/32',
        'Endpoint = peer.example.com:51821',
        'PersistentKeepalive = 25',
        `PresharedKey = ${PSK}`,
        `PublicKey = ${A}`,
        '',
      ].join('\n'),
    );
  });

  it("matches docs/kgctl.md's showconf node output (zero private key: [Interface] with ListenPort only)", () => {
    const pub = 'IgDTEvasUvxisSAmfBKh8ngFmc2leZBvkRwYBhkybUg=';
    const conf: Conf = {
      privateKey: ZERO,
      listenPort: 51820,
      peers: [
        {
          publicKey: pub,
          allowedIPs: ['10.2.0.0/24', '10.1.13.74/32', '10.2.4.0/24', '10.1.20.76/32', '10.4.0.2/32'],
          endpoint: { ip: '3.120.246.76', port: 51820 },
        },
      ],
    };
    expect(renderConf(conf)).toBe(
      `[Interface]
ListenPort = 51820

[Peer]
AllowedIPs = 10.2.0.0/24, 10.1.13.74/32, 10.2.4.0/24, 10.1.20.76/32, 10.4.0.2/32
Endpoint = 3.120.246.76:51820
PersistentKeepalive = 0
PublicKey = ${pub}
`,
    );
  });

  it('without a private key: no [Interface], no blank line before the first peer; empty allowed IPs, zero keys and no endpoint omitted', () => {
    const conf: Conf = {
      peers: [
        { publicKey: A, allowedIPs: [], persistentKeepalive: 10, presharedKey: ZERO },
        { publicKey: ZERO, allowedIPs: ['2001:db8::/64'], endpoint: { ip: '2001:db8::1', port: 1 } },
      ],
    };
    expect(renderConf(conf)).toBe(
      `[Peer]
PersistentKeepalive = 10
PublicKey = ${A}

[Peer]
AllowedIPs = 2001:db8::/64
Endpoint = [2001:db8::1]:1
PersistentKeepalive = 0
`,
    );
  });

  it('renders nothing for an empty config, as Kilo', () => {
    expect(renderConf({ peers: [] })).toBe('');
  });

  it('omits ListenPort when a private key has no port (Kilo would crash on the nil pointer)', () => {
    expect(renderConf({ privateKey: PRIVATE, peers: [] })).toBe(`[Interface]\nPrivateKey = ${PRIVATE}\n`);
  });
});

describe('parseConf', () => {
  const conf = LEADER_CONF;

  it('reads back what renderConf writes', () => {
    expect(parseConf(renderConf(conf))).toEqual(conf);
    expect(renderConf(parseConf(renderConf(conf)))).toBe(renderConf(conf));
  });

  it('is case-insensitive, ignores whitespace and comments, and accumulates AllowedIPs as wg does', () => {
    const text = `# kgctl
[interface]
privatekey=${PRIVATE}   # secret
  ListenPort = 51820
[PEER]
PublicKey = ${A}
AllowedIPs = 10.2.1.0/24,
AllowedIPs = 10.4.0.1/32
PersistentKeepalive = off
`;
    expect(parseConf(text)).toEqual({
      privateKey: PRIVATE,
      listenPort: 51820,
      peers: [{ publicKey: A, allowedIPs: ['10.2.1.0/24', '10.4.0.1/32'], persistentKeepalive: 0 }],
    });
  });

  it.each([
    [
      'Address = 10.0.0.1/24',
      '[Interface]\nAddress = 10.0.0.1/24',
      /line 2: unknown key Address in \[Interface\]/,
    ],
    ['key outside a section', 'ListenPort = 1', /line 1: ListenPort outside a section/],
    ['bad section', '[Peers]', /line 1: unknown section \[Peers\]/],
    ['bad port', '[Interface]\nListenPort = 70000', /line 2: ListenPort "70000" is not a number/],
    ['bad endpoint', `[Peer]\nPublicKey = ${A}\nEndpoint = 10.0.0.1`, /line 3: Endpoint "10.0.0.1"/],
    [
      'bad CIDR',
      `[Peer]\nPublicKey = ${A}\nAllowedIPs = 10.0.0.1`,
      /line 3: AllowedIPs entry "10.0.0.1" is not a CIDR/,
    ],
    ['peer without key', '[Peer]\nAllowedIPs = 10.0.0.0/8', /line 1: \[Peer\] without a PublicKey/],
    ['no "="', '[Peer]\nPublicKey', /line 2: want "Key = Value"/],
    ['second interface', '[Interface]\n[Interface]', /line 2: a second \[Interface\]/],
  ])('refuses %s with one line naming the line', (_name, text, message) => {
    expect(() => parseConf(text)).toThrow(message);
    expect(() => parseConf(text)).toThrow(WireGuardConfError);
  });

  it('never echoes a bad key', () => {
    const secret = 'not-a-key-but-secret';
    let message = '';
    try {
      parseConf(`[Interface]\nPrivateKey = ${secret}`);
    } catch (e) {
      message = e instanceof Error ? e.message : '';
    }
    expect(message).toMatch(/line 2: PrivateKey is not a base64 WireGuard key/);
    expect(message).not.toContain(secret);
  });
});

function livePeer(publicKey: string, over: Partial<WgPeerState> = {}): WgPeerState {
  return {
    publicKey,
    hasPresharedKey: false,
    endpoint: null,
    allowedIps: [],
    latestHandshake: null,
    transferRx: 0,
    transferTx: 0,
    persistentKeepalive: null,
    ...over,
  };
}

function device(peers: WgPeerState[], over: Partial<WgInterfaceState> = {}): WgInterfaceState {
  return {
    name: 'kilo0',
    publicKey: PUBLIC,
    hasPrivateKey: true,
    listenPort: 51820,
    fwmark: null,
    peers,
    ...over,
  };
}

describe('confDiffers (Kilo Conf.Equal)', () => {
  const conf = LEADER_CONF;
  const live = (): WgPeerState[] => [
    livePeer(A, {
      allowedIps: ['10.2.1.0/24'],
      endpoint: '[2001:db8::1]:51820',
      persistentKeepalive: 25,
      hasPresharedKey: true,
    }),
    livePeer(B, { allowedIps: ['10.4.0.2/32', '10.2.2.0/24'], endpoint: '192.0.2.2:51820' }),
  ];

  it('is undefined when the device runs the config (peers and allowed IPs in any order)', () => {
    expect(confDiffers(conf, device(live()))).toBeUndefined();
  });

  it.each<[string, WgInterfaceState, RegExp]>([
    ['listen port', device(live(), { listenPort: 51821 }), /^listen port: device 51821, config 51820$/],
    [
      'private key missing',
      device(live(), { hasPrivateKey: false, publicKey: null }),
      /^private key: device has none$/,
    ],
    ['another private key', device(live(), { publicKey: A }), /^private key: device has another key$/],
    ['number of peers', device(live().slice(1)), /^number of peers: device 1, config 2$/],
    [
      'a different peer',
      device([live()[0] as WgPeerState, livePeer(C, { endpoint: '192.0.2.2:51820' })]),
      /not on the device/,
    ],
    [
      'allowed IPs',
      device([
        live()[0] as WgPeerState,
        livePeer(B, { allowedIps: ['10.2.2.0/24'], endpoint: '192.0.2.2:51820' }),
      ]),
      /allowed IPs: device 10.2.2.0\/24, config 10.2.2.0\/24,10.4.0.2\/32/,
    ],
    [
      'endpoint',
      device([
        live()[0] as WgPeerState,
        livePeer(B, { allowedIps: ['10.2.2.0/24', '10.4.0.2/32'], endpoint: '192.0.2.9:51820' }),
      ]),
      /endpoint: device 192.0.2.9:51820, config 192.0.2.2:51820/,
    ],
    [
      'keepalive',
      device([{ ...(live()[0] as WgPeerState), persistentKeepalive: null }, live()[1] as WgPeerState]),
      /persistent keepalive: device 0, config 25/,
    ],
    [
      'preshared key',
      device([{ ...(live()[0] as WgPeerState), hasPresharedKey: false }, live()[1] as WgPeerState]),
      /preshared key: device none, config set/,
    ],
  ])('reports %s', (_name, dev, reason) => {
    expect(confDiffers(conf, dev)).toMatch(reason);
  });

  it('reports a config without private key or port', () => {
    expect(confDiffers({ ...conf, privateKey: undefined }, device(live()))).toBe(
      'private key: config has none',
    );
    expect(confDiffers({ ...conf, listenPort: undefined }, device(live()))).toBe(
      'listen port: device 51820, config unset',
    );
  });

  it('a peer without endpoint against a device peer with one differs, as in Kilo', () => {
    const c: Conf = { ...conf, peers: [{ publicKey: A, allowedIPs: [] }] };
    expect(confDiffers(c, device([livePeer(A, { endpoint: '192.0.2.1:1' })]))).toMatch(
      /endpoint: device 192.0.2.1:1, config none/,
    );
  });

  it("Kilo bug fixed: Kilo's Equal returns true at the first peer whose endpoints are both nil and skips the rest; every peer is compared", () => {
    // Sorted by key, A (no endpoint on either side) comes first; B differs in its allowed IPs.
    const c: Conf = {
      ...conf,
      peers: [
        { publicKey: A, allowedIPs: ['10.2.1.0/24'] },
        { publicKey: B, allowedIPs: ['10.2.2.0/24'] },
      ],
    };
    const dev = device([
      livePeer(A, { allowedIps: ['10.2.1.0/24'] }),
      livePeer(B, { allowedIps: ['10.2.9.0/24'] }),
    ]);
    expect(confDiffers(c, dev)).toMatch(new RegExp(`^peer ${B.replace(/[+/=]/g, '\\$&')} allowed IPs`));
  });

  it('compares allowed IPs as the kernel stores them (deviation: Kilo sees 10.0.0.1/24 vs 10.0.0.0/24 as a change every apply)', () => {
    const c: Conf = { ...conf, peers: [{ publicKey: A, allowedIPs: ['10.5.0.1/24'] }] };
    expect(confDiffers(c, device([livePeer(A, { allowedIps: ['10.5.0.0/24'] })]))).toBeUndefined();
  });

  it('compares a DNS endpoint through the resolver, and differs while it is unresolved (Kilo StringOpt(false))', () => {
    const c: Conf = {
      ...conf,
      peers: [{ publicKey: A, allowedIPs: [], endpoint: { dns: 'peer.example.com', port: 51820 } }],
    };
    const dev = device([livePeer(A, { endpoint: '198.51.100.7:51820' })]);
    expect(confDiffers(c, dev, { resolve: { 'peer.example.com': '198.51.100.7' } })).toBeUndefined();
    expect(confDiffers(c, dev)).toMatch(/endpoint: device 198.51.100.7:51820, config peer.example.com:51820/);
  });
});

describe('toWgConfig (Kilo Conf.WGConfig for wg syncconf)', () => {
  it('maps endpoints to ip:port, resolves DNS endpoints through the map, keeps the rest', () => {
    const conf: Conf = {
      privateKey: PRIVATE,
      listenPort: 51820,
      peers: [
        {
          publicKey: A,
          allowedIPs: ['10.2.1.0/24'],
          endpoint: { ip: '2001:db8::1', port: 51820 },
          persistentKeepalive: 0,
        },
        {
          publicKey: B,
          allowedIPs: ['10.5.0.1/32'],
          endpoint: { dns: 'peer.example.com', port: 51821 },
          persistentKeepalive: 25,
          presharedKey: PSK,
        },
        { publicKey: C, allowedIPs: [] },
      ],
    };
    expect(toWgConfig(conf, { resolve: { 'peer.example.com': '198.51.100.7' } })).toEqual({
      privateKey: PRIVATE,
      listenPort: 51820,
      peers: [
        {
          publicKey: A,
          allowedIps: ['10.2.1.0/24'],
          endpoint: '[2001:db8::1]:51820',
          persistentKeepalive: 0,
        },
        {
          publicKey: B,
          allowedIps: ['10.5.0.1/32'],
          endpoint: '198.51.100.7:51821',
          persistentKeepalive: 25,
          presharedKey: PSK,
        },
        { publicKey: C, allowedIps: [] },
      ],
    });
  });

  it('refuses an unresolved DNS endpoint and a config without private key, with typed errors', () => {
    const conf: Conf = {
      privateKey: PRIVATE,
      listenPort: 1,
      peers: [{ publicKey: A, allowedIPs: [], endpoint: { dns: 'x.example', port: 1 } }],
    };
    expect(() => toWgConfig(conf)).toThrow(expect.objectContaining({ kind: 'unresolved-endpoint' }));
    expect(() => toWgConfig({ peers: [] })).toThrow(expect.objectContaining({ kind: 'missing-private-key' }));
  });
});
