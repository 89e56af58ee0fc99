import { BootstrapError } from './errors';
import { thrown } from './fixtures';
import { apiServerServiceIp, checkCidrs, checkEndpoint, endpointUrl, hostPort } from './network';

describe('apiServerServiceIp (kubeadm: first address of the first service CIDR)', () => {
  it.each([
    ['10.96.0.0/12', '10.96.0.1'],
    ['172.26.0.0/16', '172.26.0.1'],
    ['10.0.0.255/24', '10.0.0.1'],
    ['192.0.2.0/30', '192.0.2.1'],
    ['fd00::/108', 'fd00::1'],
    ['2001:db8:1:2::/64', '2001:db8:1:2::1'],
    ['10.96.0.0/12,fd00::/108', '10.96.0.1'],
    ['fd00:10:96::/112, 10.96.0.0/12', 'fd00:10:96::1'],
  ])('%s -> %s', (cidr, ip) => {
    expect(apiServerServiceIp(cidr)).toBe(ip);
  });

  it.each(['10.96.0.0', '10.96.0.0/33', '10.96.0.0/31', 'fd00::/127', 'nonsense/12', '10.96.0.0/12/1'])(
    'refuses %s with an invalid-input BootstrapError',
    (cidr) => {
      const e = thrown(() => apiServerServiceIp(cidr));
      expect(e).toBeInstanceOf(BootstrapError);
      expect(e).toMatchObject({ kind: 'invalid-input' });
    },
  );
});

describe('endpoints', () => {
  it.each([
    [{ host: '203.0.113.10', port: 6443 }, '203.0.113.10:6443', 'https://203.0.113.10:6443'],
    [{ host: 'api.example.com', port: 443 }, 'api.example.com:443', 'https://api.example.com:443'],
    [{ host: '2001:db8::10', port: 6443 }, '[2001:db8::10]:6443', 'https://[2001:db8::10]:6443'],
  ])('%j is %s and %s', (endpoint, hp, url) => {
    expect(() => checkEndpoint(endpoint, 'test')).not.toThrow();
    expect(hostPort(endpoint)).toBe(hp);
    expect(endpointUrl(endpoint)).toBe(url);
  });

  it.each([
    [{ host: '', port: 6443 }],
    [{ host: 'bad host', port: 6443 }],
    [{ host: '203.0.113.10', port: 0 }],
    [{ host: '203.0.113.10', port: 65536 }],
  ])('refuses %j', (endpoint) => {
    expect(() => checkEndpoint(endpoint, 'controlPlaneEndpoint')).toThrow(/controlPlaneEndpoint/);
  });

  it('accepts single and dual-stack CIDR lists, refuses three', () => {
    expect(() => checkCidrs('192.168.0.0/16', 'podCIDR')).not.toThrow();
    expect(() => checkCidrs('192.168.0.0/16,fd00:1::/64', 'podCIDR')).not.toThrow();
    expect(() => checkCidrs('10.0.0.0/8,10.1.0.0/16,fd00::/64', 'podCIDR')).toThrow(/dual-stack pair/);
  });
});
