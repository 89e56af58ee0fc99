import { canonicalIp, parseUpstream, upstreamName } from './types';

describe('parseUpstream', () => {
  it('parses addresses with and without a port', () => {
    expect(parseUpstream('10.0.0.1')).toEqual({
      address: '10.0.0.1',
      port: 53,
      family: 4,
      canonical: '10.0.0.1',
    });
    expect(parseUpstream('10.0.0.1#5353')).toMatchObject({ port: 5353 });
    expect(parseUpstream('2001:DB8:0:0::53', 5300)).toEqual({
      address: '2001:DB8:0:0::53',
      port: 5300,
      family: 6,
      canonical: '2001:db8::53',
    });
    expect(parseUpstream('fe80::1%eth0#53')).toMatchObject({
      address: 'fe80::1%eth0',
      family: 6,
      canonical: 'fe80::1',
    });
    expect(upstreamName(parseUpstream('10.0.0.1'))).toBe('10.0.0.1#53');
  });

  it('rejects names and bad ports', () => {
    for (const bad of ['dns.example', '10.0.0.1#', '10.0.0.1#70000', '10.0.0.1#x', '']) {
      expect(() => parseUpstream(bad)).toThrow(RangeError);
    }
  });

  it('canonicalIp compresses IPv6 like the kernel reports sources', () => {
    expect(canonicalIp('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(canonicalIp('FD00:0::A')).toBe('fd00::a');
    expect(canonicalIp('127.0.0.1')).toBe('127.0.0.1');
  });
});
