import { vxlanBroadcastFrame } from './vxlan-frame';

/** RFC 1071 check: the one's-complement sum over a region with its checksum in place is 0xffff. */
function verifies(buf: Buffer, start: number, end: number, initial = 0): boolean {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += buf.readUInt16BE(i);
  if ((end - start) % 2 === 1) sum += (buf[end - 1] as number) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

describe('vxlanBroadcastFrame', () => {
  const payload = Buffer.from('a DHCP message of odd length');
  const frame = vxlanBroadcastFrame({ vni: 42, srcMac: '02:00:5e:00:53:01', srcIp: '172.16.0.1', payload });

  it('wraps the payload in VXLAN, Ethernet broadcast, IPv4 to 255.255.255.255 and UDP 67 → 68', () => {
    expect(frame.length).toBe(8 + 14 + 20 + 8 + payload.length);
    expect(frame.subarray(0, 8).toString('hex')).toBe('080000000000' + '2a00'); // I flag, VNI 42
    expect(frame.subarray(8, 14).toString('hex')).toBe('ffffffffffff');
    expect(frame.subarray(14, 20).toString('hex')).toBe('02005e005301');
    expect(frame.readUInt16BE(20)).toBe(0x0800);
    const ip = 22;
    expect(frame[ip]).toBe(0x45);
    expect(frame.readUInt16BE(ip + 2)).toBe(20 + 8 + payload.length);
    expect([frame[ip + 8], frame[ip + 9]]).toEqual([64, 17]);
    expect([...frame.subarray(ip + 12, ip + 16)]).toEqual([172, 16, 0, 1]);
    expect([...frame.subarray(ip + 16, ip + 20)]).toEqual([255, 255, 255, 255]);
    const udp = ip + 20;
    expect([frame.readUInt16BE(udp), frame.readUInt16BE(udp + 2), frame.readUInt16BE(udp + 4)]).toEqual([
      67,
      68,
      8 + payload.length,
    ]);
    expect(frame.subarray(udp + 8).equals(payload)).toBe(true);
  });

  it('has valid IPv4 and UDP checksums', () => {
    const ip = 22;
    const udp = ip + 20;
    expect(verifies(frame, ip, ip + 20)).toBe(true);
    // pseudo-header: source and destination addresses, protocol, UDP length
    let pseudo = 17 + frame.readUInt16BE(udp + 4);
    for (let i = ip + 12; i < ip + 20; i += 2) pseudo += frame.readUInt16BE(i);
    expect(verifies(frame, udp, frame.length, pseudo)).toBe(true);
    const corrupted = Buffer.from(frame);
    corrupted[udp + 9] = (corrupted[udp + 9] as number) ^ 1;
    expect(verifies(corrupted, udp, corrupted.length, pseudo)).toBe(false);
  });

  it('refuses a VNI or a MAC it cannot encode', () => {
    expect(() =>
      vxlanBroadcastFrame({ vni: 1 << 24, srcMac: '02:00:5e:00:53:01', srcIp: '172.16.0.1', payload }),
    ).toThrow(RangeError);
    expect(() => vxlanBroadcastFrame({ vni: 42, srcMac: 'nope', srcIp: '172.16.0.1', payload })).toThrow(
      RangeError,
    );
  });
});
