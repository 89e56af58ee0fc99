import { detectIPs, type DetectIPInput, type DetectedIPs } from './detect-ip';
import { isLocalAddress } from './ip';

const lo = { name: 'lo', flags: ['LOOPBACK', 'UP'], addresses: ['127.0.0.1/8', '::1/128'] };

function input(over: Partial<DetectIPInput>): DetectIPInput {
  return { hostname: 'node-a', hostnameAddresses: [], interfaces: [lo], ...over };
}

// Kilo pkg/mesh/discoverips.go getIP: hostname-resolved, then default-route interface, then every
// interface, each group IPv4 first; private then public; --internal-cidr filters the private IP.
describe('detectIPs (Kilo getIP)', () => {
  it.each<[string, DetectIPInput, DetectedIPs]>([
    [
      'IPv4 first, private and public from the default-route interface',
      input({
        interfaces: [
          lo,
          { name: 'eth0', addresses: ['2001:db8::5/64', 'fd00::5/64', '203.0.113.5/24', '192.168.0.5/24'] },
        ],
        defaultRouteInterface: 'eth0',
      }),
      { privateIP: '192.168.0.5/24', publicIP: '203.0.113.5/24' },
    ],
    [
      'IPv6 when there is no IPv4 (fd00::/16 is private, other IPv6 public, as Kilo codes it)',
      input({
        interfaces: [lo, { name: 'eth0', addresses: ['2001:db8::5/64', 'fd00::5/64'] }],
        defaultRouteInterface: 'eth0',
      }),
      { privateIP: 'fd00::5/64', publicIP: '2001:db8::5/64' },
    ],
    [
      'the hostname-resolved address wins, with the mask of the interface that has it',
      input({
        hostnameAddresses: ['192.168.1.7', '198.51.100.7'],
        interfaces: [
          lo,
          { name: 'eth0', addresses: ['192.168.0.5/24', '203.0.113.5/24'] },
          { name: 'eth1', addresses: ['192.168.1.7/16', '198.51.100.7/25'] },
        ],
        defaultRouteInterface: 'eth0',
      }),
      { privateIP: '192.168.1.7/16', publicIP: '198.51.100.7/25' },
    ],
    [
      'a resolved address that no interface has is skipped',
      input({
        hostnameAddresses: ['192.168.9.9'],
        interfaces: [lo, { name: 'eth0', addresses: ['192.168.0.5/24'] }],
        defaultRouteInterface: 'eth0',
      }),
      { privateIP: '192.168.0.5/24', publicIP: '192.168.0.5/24' },
    ],
    [
      'a hostname that is an IP is used as such',
      input({
        hostname: '10.0.0.2',
        interfaces: [
          lo,
          { name: 'eth0', addresses: ['10.0.0.9/8'] },
          { name: 'eth1', addresses: ['10.0.0.2/8'] },
        ],
        defaultRouteInterface: 'eth0',
      }),
      { privateIP: '10.0.0.2/8', publicIP: '10.0.0.2/8' },
    ],
    [
      'the default-route interface comes before the others',
      input({
        interfaces: [
          lo,
          { name: 'eth1', addresses: ['10.0.0.2/8'] },
          { name: 'eth0', addresses: ['10.0.0.9/8'] },
        ],
        defaultRouteInterface: 'eth0',
      }),
      { privateIP: '10.0.0.9/8', publicIP: '10.0.0.9/8' },
    ],
    [
      'without a default route, any interface, sorted as text as Kilo does (10.0.0.10 before 10.0.0.2)',
      input({
        interfaces: [
          lo,
          { name: 'eth1', addresses: ['10.0.0.2/8'] },
          { name: 'eth2', addresses: ['10.0.0.10/8'] },
        ],
      }),
      { privateIP: '10.0.0.10/8', publicIP: '10.0.0.10/8' },
    ],
    [
      '--internal-cidr keeps only private IPs inside it; the public IP is not filtered',
      input({
        interfaces: [
          lo,
          { name: 'eth0', addresses: ['10.0.0.2/8', '203.0.113.5/24'] },
          { name: 'eth1', addresses: ['192.168.0.5/24'] },
        ],
        defaultRouteInterface: 'eth0',
        internalCidr: '192.168.0.0/16',
      }),
      { privateIP: '192.168.0.5/24', publicIP: '203.0.113.5/24' },
    ],
    [
      '--internal-cidr may be repeated',
      input({
        interfaces: [lo, { name: 'eth0', addresses: ['10.0.0.2/8', '172.16.0.3/12'] }],
        defaultRouteInterface: 'eth0',
        internalCidr: ['192.168.0.0/16', '172.16.0.0/12'],
      }),
      { privateIP: '172.16.0.3/12', publicIP: '172.16.0.3/12' },
    ],
    [
      'no public IP: the (filtered) private IP is the public one',
      input({
        interfaces: [lo, { name: 'eth0', addresses: ['10.0.0.2/8', '192.168.0.5/24'] }],
        defaultRouteInterface: 'eth0',
        internalCidr: '192.168.0.0/16',
      }),
      { privateIP: '192.168.0.5/24', publicIP: '192.168.0.5/24' },
    ],
    [
      'no private IP: none, and the public IP',
      input({
        interfaces: [lo, { name: 'eth0', addresses: ['203.0.113.5/24'] }],
        defaultRouteInterface: 'eth0',
      }),
      { publicIP: '203.0.113.5/24' },
    ],
    [
      'kilo0, tunl0 and kube-bridge, loopback and link-local are ignored',
      input({
        interfaces: [
          lo,
          { name: 'kilo0', addresses: ['10.4.0.1/16'] },
          { name: 'tunl0', addresses: ['10.2.1.1/32'] },
          { name: 'kube-bridge', addresses: ['10.2.1.1/24'] },
          { name: 'eth0', addresses: ['169.254.3.3/16', 'fe80::1/64', '192.168.0.5/24'] },
        ],
        defaultRouteInterface: 'eth0',
      }),
      { privateIP: '192.168.0.5/24', publicIP: '192.168.0.5/24' },
    ],
    [
      'a hostname resolving to the kilo0 address is ignored too',
      input({
        hostnameAddresses: ['10.4.0.1'],
        interfaces: [
          lo,
          { name: 'kilo0', addresses: ['10.4.0.1/16'] },
          { name: 'eth0', addresses: ['192.168.0.5/24'] },
        ],
        defaultRouteInterface: 'eth0',
      }),
      { privateIP: '192.168.0.5/24', publicIP: '192.168.0.5/24' },
    ],
    [
      'ignoring is by address, as in Kilo: the same address elsewhere is skipped',
      input({
        interfaces: [
          lo,
          { name: 'kube-bridge', addresses: ['10.2.1.1/24'] },
          { name: 'eth1', addresses: ['10.2.1.1/24', '10.9.0.1/16'] },
        ],
      }),
      { privateIP: '10.9.0.1/16', publicIP: '10.9.0.1/16' },
    ],
    [
      'another interface name to ignore',
      input({
        interfaces: [
          lo,
          { name: 'wg-kilo', addresses: ['10.4.0.1/16'] },
          { name: 'eth0', addresses: ['192.168.0.5/24'] },
        ],
        ignoreInterfaces: ['wg-kilo'],
      }),
      { privateIP: '192.168.0.5/24', publicIP: '192.168.0.5/24' },
    ],
    ['nothing usable: empty (Kilo refuses to start)', input({}), {}],
  ])('%s', (_name, given, want) => {
    expect(detectIPs(given)).toEqual(want);
  });
});

describe('isLocalAddress (Kilo isLocal)', () => {
  it.each<[string, boolean]>([
    ['127.0.0.1/8', true],
    ['::1/128', true],
    ['169.254.1.1/16', true],
    ['fe80::1/64', true],
    ['224.0.0.251', true],
    ['ff02::1', true],
    ['ff12::1', true],
    ['ff05::1', false],
    ['224.0.1.1', false],
    ['10.0.0.1/8', false],
    ['2001:db8::1', false],
  ])('%s → %s', (address, want) => {
    expect(isLocalAddress(address)).toBe(want);
  });
});
