import type { NatEntry } from '@knet/podgw';
import { clientHosts } from './hosts';

const nat = (hostname: string, octet: number): NatEntry => ({
  hostname,
  octet,
  ports: [],
  origin: 'nat.conf:1',
});
const address = (octet: number) => `172.16.0.${octet}`;

describe('clientHosts', () => {
  it('names every nat.conf client at its static address and every leased host at its lease', () => {
    expect(clientHosts({ web: '172.16.0.20', db: '172.16.0.21' }, [nat('printer', 5)], address)).toEqual(
      new Map([
        ['printer', ['172.16.0.5']],
        ['web', ['172.16.0.20']],
        ['db', ['172.16.0.21']],
      ]),
    );
  });

  it('a name with a static address and a lease answers with both, once each', () => {
    expect(clientHosts({ printer: '172.16.0.22' }, [nat('printer', 5)], address).get('printer')).toEqual([
      '172.16.0.5',
      '172.16.0.22',
    ]);
    expect(clientHosts({ printer: '172.16.0.5' }, [nat('printer', 5)], address).get('printer')).toEqual([
      '172.16.0.5',
    ]);
  });
});
