import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NeighbourTableCheck, parseProcNetArp } from './in-use';

const ARP = `IP address       HW type     Flags       HW address            Mask     Device
172.16.0.20      0x1         0x2         02:00:5E:00:53:01     *        vxlan0
172.16.0.21      0x1         0x0         00:00:00:00:00:00     *        vxlan0
172.16.0.22      0x1         0x6         02:00:5e:00:53:02     *        vxlan0
192.0.2.1        0x1         0x2         02:00:5e:00:53:09     *        eth0
garbage line
`;

describe('parseProcNetArp', () => {
  it('keeps complete entries (flag 0x2), lower-case MACs, optionally of one device', () => {
    expect([...parseProcNetArp(ARP)]).toEqual([
      ['172.16.0.20', '02:00:5e:00:53:01'],
      ['172.16.0.22', '02:00:5e:00:53:02'],
      ['192.0.2.1', '02:00:5e:00:53:09'],
    ]);
    expect([...parseProcNetArp(ARP, 'vxlan0').keys()]).toEqual(['172.16.0.20', '172.16.0.22']);
  });
});

describe('NeighbourTableCheck', () => {
  it('reads the holder of an address from the table file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knet-arp-'));
    try {
      const path = join(dir, 'arp');
      writeFileSync(path, ARP);
      const check = new NeighbourTableCheck({ path, dev: 'vxlan0' });
      expect(
        await Promise.all(['172.16.0.20', '172.16.0.21', '192.0.2.1'].map((ip) => check.holder(ip))),
      ).toEqual(['02:00:5e:00:53:01', undefined, undefined]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
