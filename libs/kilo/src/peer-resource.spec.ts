import {
  PEER_API_VERSION,
  PEER_GROUP,
  PEER_KIND,
  PEER_PLURAL,
  PEER_VERSION,
  validatePeer,
  type PeerSpec,
} from './peer-resource';

const KEY = Buffer.alloc(32, 0x11).toString('base64');
const valid: PeerSpec = {
  allowedIPs: ['10.5.0.1/32'],
  publicKey: KEY,
  endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: 51820 },
  persistentKeepalive: 10,
};

describe('Peer CRD names (pkg/k8s/apis/kilo/v1alpha1)', () => {
  it("are Kilo's", () => {
    expect([PEER_GROUP, PEER_VERSION, PEER_PLURAL, PEER_KIND, PEER_API_VERSION]).toEqual([
      'kilo.squat.ai',
      'v1alpha1',
      'peers',
      'Peer',
      'kilo.squat.ai/v1alpha1',
    ]);
  });
});

// Kilo's Peer.Validate(), one check at a time.
describe('validatePeer (Kilo Peer.Validate)', () => {
  it.each<[string, PeerSpec]>([
    ['a full peer', valid],
    ['no endpoint, no keepalive', { allowedIPs: ['10.5.0.0/24', 'fd00::/64'], publicKey: KEY }],
    ['no allowed IPs (valid, never Ready, as in Kilo)', { allowedIPs: [], publicKey: KEY }],
    ['a DNS endpoint', { ...valid, endpoint: { dnsOrIP: { dns: 'peer.example.com' }, port: 1 } }],
    [
      'both DNS and IP',
      { ...valid, endpoint: { dnsOrIP: { dns: 'peer.example.com', ip: '2001:db8::1' }, port: 65535 } },
    ],
    ['an unchecked preshared key (Kilo does not check it)', { ...valid, presharedKey: 'junk' }],
  ])('accepts %s', (_name, spec) => {
    expect(validatePeer(spec)).toEqual([]);
  });

  it.each<[string, PeerSpec, string[]]>([
    [
      'an address without mask',
      { ...valid, allowedIPs: ['10.5.0.1'] },
      ['spec.allowedIPs: "10.5.0.1" is not a CIDR such as 10.5.0.1/32'],
    ],
    [
      'an endpoint without host',
      { ...valid, endpoint: { dnsOrIP: {}, port: 51820 } },
      ['spec.endpoint.dnsOrIP: set dns or ip'],
    ],
    [
      'a name that is no RFC 1123 subdomain',
      { ...valid, endpoint: { dnsOrIP: { dns: 'Peer_1' }, port: 51820 } },
      ['spec.endpoint.dnsOrIP.dns: "Peer_1" is not a lower-case RFC 1123 subdomain'],
    ],
    [
      'a bad IP',
      { ...valid, endpoint: { dnsOrIP: { ip: '192.0.2' }, port: 51820 } },
      ['spec.endpoint.dnsOrIP.ip: "192.0.2" is not an IP address'],
    ],
    [
      'port 0',
      { ...valid, endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: 0 } },
      ['spec.endpoint.port: must be a UDP port 1–65535, got 0'],
    ],
    [
      'port 65536',
      { ...valid, endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: 65536 } },
      ['spec.endpoint.port: must be a UDP port 1–65535, got 65536'],
    ],
    [
      'a negative keepalive',
      { ...valid, persistentKeepalive: -1 },
      ['spec.persistentKeepalive: must be ≥ 0, got -1'],
    ],
    [
      'an empty key',
      { ...valid, publicKey: '' },
      ['spec.publicKey: not 32 bytes (use the output of wg pubkey)'],
    ],
    [
      'a key that is no base64',
      { ...valid, publicKey: 'not base64!' },
      ['spec.publicKey: not base64 (use the output of wg pubkey)'],
    ],
    [
      'a 16-byte key',
      { ...valid, publicKey: Buffer.alloc(16).toString('base64') },
      ['spec.publicKey: not 32 bytes (use the output of wg pubkey)'],
    ],
  ])('refuses %s', (_name, spec, errors) => {
    expect(validatePeer(spec)).toEqual(errors);
  });

  it("reports every error, Kilo's (the first) first", () => {
    expect(validatePeer({ allowedIPs: ['x'], publicKey: '', persistentKeepalive: -2 })).toEqual([
      'spec.allowedIPs: "x" is not a CIDR such as 10.5.0.1/32',
      'spec.persistentKeepalive: must be ≥ 0, got -2',
      'spec.publicKey: not 32 bytes (use the output of wg pubkey)',
    ]);
  });
});
