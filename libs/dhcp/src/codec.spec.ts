import * as protocol from 'dhcp/lib/protocol.js';
import {
  clientKeyOf,
  decodeDhcp,
  DhcpDecodeError,
  DhcpMessageType,
  encodeDhcp,
  MAGIC_COOKIE,
  messageTypeName,
  type DhcpMessageInit,
} from './codec';

jest.setTimeout(60_000);

const MAC = 'aa:bb:cc:00:11:22';

const discover: DhcpMessageInit = {
  op: 1,
  xid: 0xdeadbeef,
  secs: 3,
  flags: 0x8000,
  chaddr: MAC,
  messageType: DhcpMessageType.DISCOVER,
  options: {
    hostname: 'web',
    clientId: '01aabbcc001122',
    requestedIp: '172.16.0.30',
    parameterRequestList: [1, 3, 6, 12, 15, 26, 28, 51, 54, 58, 59],
  },
};

const ack: DhcpMessageInit = {
  op: 2,
  xid: 1,
  ciaddr: '0.0.0.0',
  yiaddr: '172.16.0.20',
  siaddr: '172.16.0.1',
  chaddr: MAC,
  messageType: DhcpMessageType.ACK,
  options: {
    serverId: '172.16.0.1',
    subnetMask: '255.255.255.0',
    routers: ['172.16.0.1'],
    dnsServers: ['172.16.0.1', '192.0.2.53'],
    domainName: 'pods.example',
    mtu: 1400,
    leaseTimeSec: 43200,
    renewalTimeSec: 21600,
    rebindingTimeSec: 37800,
  },
};

/** A valid header (DISCOVER) followed by the given raw option bytes. */
function withOptions(tlv: number[]): Buffer {
  return Buffer.concat([encodeDhcp(discover).subarray(0, 240), Buffer.from(tlv)]);
}

function reason(buf: Uint8Array): string {
  try {
    decodeDhcp(buf);
  } catch (err) {
    expect(err).toBeInstanceOf(DhcpDecodeError);
    const e = err as DhcpDecodeError;
    expect(e.message).not.toContain('\n');
    return e.reason;
  }
  throw new Error('decoded');
}

describe('encodeDhcp / decodeDhcp', () => {
  it.each([
    ['DISCOVER with identity and request list', discover],
    ['ACK with every server option', ack],
    [
      'NAK with a message',
      { op: 2, xid: 7, chaddr: MAC, messageType: 6, options: { serverId: '172.16.0.1', message: 'no' } },
    ],
    ['REQUEST renewing', { op: 1, xid: 9, ciaddr: '172.16.0.20', chaddr: MAC, messageType: 3, options: {} }],
  ] as [string, DhcpMessageInit][])('round-trips a %s', (_name, msg) => {
    const buf = encodeDhcp(msg);
    expect(buf.length).toBeGreaterThanOrEqual(300);
    const back = decodeDhcp(buf);
    expect(back).toEqual({
      op: msg.op,
      xid: msg.xid,
      secs: msg.secs ?? 0,
      flags: msg.flags ?? 0,
      hops: 0,
      ciaddr: msg.ciaddr ?? '0.0.0.0',
      yiaddr: msg.yiaddr ?? '0.0.0.0',
      siaddr: msg.siaddr ?? '0.0.0.0',
      giaddr: '0.0.0.0',
      chaddr: MAC,
      messageType: msg.messageType,
      options: msg.options,
    });
    expect(encodeDhcp(back)).toEqual(buf);
  });

  it('pads to 300 bytes, keeps the magic cookie and ends the options with 255', () => {
    const buf = encodeDhcp({ op: 1, xid: 1, chaddr: MAC, messageType: 1 });
    expect(buf).toHaveLength(300);
    expect(buf.readUInt32BE(236)).toBe(MAGIC_COOKIE);
    expect([...buf.subarray(240, 244)]).toEqual([53, 1, 1, 255]);
  });

  it('keeps a binary client identifier byte-exact (the package decodes it as 7-bit ASCII cut at NUL)', () => {
    const id = '00ff8000010203';
    const buf = encodeDhcp({ ...discover, options: { clientId: id } });
    expect(decodeDhcp(buf).options.clientId).toBe(id);
    expect(protocol.parse(buf).options[61]).not.toBe(Buffer.from(id, 'hex').toString('latin1'));
  });

  it('reads packets written by the dhcp package and writes packets it reads', () => {
    const theirs = protocol.format({
      op: 2,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid: 42,
      secs: 0,
      flags: 0x8000,
      ciaddr: '0.0.0.0',
      yiaddr: '172.16.0.21',
      siaddr: '172.16.0.1',
      giaddr: '0.0.0.0',
      chaddr: 'AA-BB-CC-00-11-22',
      sname: '',
      file: '',
      options: { 1: '255.255.255.0', 3: ['172.16.0.1'], 51: 600, 53: 2, 54: '172.16.0.1', 6: ['172.16.0.1'] },
    });
    const decoded = decodeDhcp(theirs._data.subarray(0, theirs._w));
    expect(decoded).toMatchObject({
      op: 2,
      xid: 42,
      flags: 0x8000,
      yiaddr: '172.16.0.21',
      chaddr: MAC,
      messageType: DhcpMessageType.OFFER,
      options: {
        subnetMask: '255.255.255.0',
        routers: ['172.16.0.1'],
        leaseTimeSec: 600,
        serverId: '172.16.0.1',
      },
    });

    const ours = protocol.parse(encodeDhcp(ack));
    expect(ours).toMatchObject({
      op: 2,
      yiaddr: '172.16.0.20',
      chaddr: 'AA-BB-CC-00-11-22',
      magicCookie: MAGIC_COOKIE,
      options: {
        1: '255.255.255.0',
        3: ['172.16.0.1'],
        6: ['172.16.0.1', '192.0.2.53'],
        26: 1400,
        53: 5,
        54: '172.16.0.1',
      },
    });
  });

  it('treats pad (option 0) as one byte anywhere, which the package does not', () => {
    const buf = withOptions([0, 0, 0, 53, 1, 3, 0, 50, 4, 172, 16, 0, 9, 0, 0, 255]);
    expect(decodeDhcp(buf)).toMatchObject({ messageType: 3, options: { requestedIp: '172.16.0.9' } });
    // The package skips two bytes per pad, reads "1, 3" as option 1 of length 3 and runs off the end.
    expect(() => protocol.parse(withOptions([0, 53, 1, 3, 255]))).toThrow(/out of range/);
  });

  it('skips unknown options silently (the package logs each one with console.error)', () => {
    const spy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const buf = withOptions([200, 3, 1, 2, 3, 53, 1, 1, 77, 0, 255]);
      expect(decodeDhcp(buf)).toMatchObject({ messageType: 1, options: {} });
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });

  it('tolerates option 0 and 255 in the parameter request list, a missing end option and trailing bytes', () => {
    expect(decodeDhcp(withOptions([53, 1, 1, 55, 4, 0, 1, 255, 3])).options.parameterRequestList).toEqual([
      0, 1, 255, 3,
    ]);
    expect(decodeDhcp(withOptions([53, 1, 1])).messageType).toBe(1);
    expect(decodeDhcp(withOptions([53, 1, 1, 255, 9, 9, 9])).messageType).toBe(1);
  });

  it('keeps the first of repeated options', () => {
    expect(decodeDhcp(withOptions([53, 1, 1, 12, 1, 97, 12, 1, 98, 255])).options.hostname).toBe('a');
  });

  const good = encodeDhcp(discover);
  const patched = (offset: number, bytes: number[]) => {
    const b = Buffer.from(good);
    Buffer.from(bytes).copy(b, offset);
    return b;
  };
  it.each([
    ['empty', Buffer.alloc(0), /too short: 0 bytes/],
    ['a truncated header (the package accepts 230)', good.subarray(0, 235), /too short: 235 bytes/],
    ['op 3', patched(0, [3]), /op 3/],
    ['htype 6', patched(1, [6]), /hardware type 6/],
    ['hlen 16', patched(2, [16]), /hardware address length 16/],
    ['a bad magic cookie', patched(236, [1, 2, 3, 4]), /bad magic cookie 0x01020304/],
    ['no message type', withOptions([12, 1, 97, 255]), /no message type/],
    ['only pads', withOptions(new Array(300).fill(0)), /no message type/],
    ['message type 0', withOptions([53, 1, 0, 255]), /unknown message type 0/],
    ['message type 9', withOptions([53, 1, 9, 255]), /unknown message type 9/],
    ['message type of length 2', withOptions([53, 2, 1, 1, 255]), /option 53 has invalid length 2/],
    ['option 50 of length 3', withOptions([53, 1, 3, 50, 3, 1, 2, 3, 255]), /option 50 has invalid length 3/],
    [
      'option 3 of length 6',
      withOptions([53, 1, 2, 3, 6, 1, 2, 3, 4, 5, 6, 255]),
      /option 3 has invalid length 6/,
    ],
    ['option 61 of length 1', withOptions([53, 1, 1, 61, 1, 1, 255]), /option 61 has invalid length 1/],
    [
      'an option running past the end',
      withOptions([53, 1, 1, 55, 200, 1, 2]),
      /option 55 truncated: length 200, 2 bytes left/,
    ],
    ['an option without length byte', withOptions([53, 1, 1, 12]), /option 12 truncated: no length byte/],
    ['an unknown option running past the end', withOptions([53, 1, 1, 250, 9]), /option 250 truncated/],
  ])('rejects %s with a one-line DhcpDecodeError', (_name, buf, re) => {
    expect(reason(buf)).toMatch(re);
  });

  it('throws nothing but DhcpDecodeError for 20,000 random and mutated packets', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    const int = (n: number) => Math.floor(rand() * n);
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      let buf: Buffer;
      if (i % 2 === 0) {
        buf = Buffer.from(Array.from({ length: int(600) }, () => int(256)));
      } else {
        buf = Buffer.from(encodeDhcp(i % 4 === 1 ? discover : ack));
        for (let k = 0, n = 1 + int(8); k < n; k++) buf[240 + int(buf.length - 240)] = int(256);
        buf = buf.subarray(0, 240 + int(buf.length - 239));
      }
      try {
        decodeDhcp(buf);
        decoded++;
      } catch (err) {
        if (!(err instanceof DhcpDecodeError)) throw err;
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });

  it.each([
    ['a bad chaddr', { ...discover, chaddr: 'nope' }, /invalid chaddr/],
    ['a bad IP', { ...ack, yiaddr: '172.16.0.256' }, /yiaddr must be an IPv4 address/],
    ['a bad option IP', { ...ack, options: { routers: ['x'] } }, /routers\[0\] must be an IPv4 address/],
    [
      'non-ASCII text',
      { ...discover, options: { hostname: 'wéb' } },
      /hostname must be 1..255 printable ASCII/,
    ],
    [
      'an odd client id',
      { ...discover, options: { clientId: 'abc' } },
      /clientId must be 2..255 bytes of hex/,
    ],
    ['a tiny MTU', { ...ack, options: { mtu: 10 } }, /mtu must be an integer in 68..65535/],
    ['xid out of range', { ...discover, xid: -1 }, /xid must be an integer/],
    ['message type 0', { ...discover, messageType: 0 as 1 }, /messageType must be an integer in 1..8/],
  ] as [string, DhcpMessageInit, RegExp][])('refuses to encode %s (TypeError)', (_name, msg, re) => {
    expect(() => encodeDhcp(msg)).toThrow(TypeError);
    expect(() => encodeDhcp(msg)).toThrow(re);
  });

  it('names message types and derives the client key from option 61, else the MAC', () => {
    expect(messageTypeName(3)).toBe('REQUEST');
    expect(messageTypeName(42)).toBe('TYPE42');
    expect(clientKeyOf({ chaddr: MAC, options: { clientId: '01aa' } })).toBe('id:01aa');
    expect(clientKeyOf({ chaddr: MAC, options: {} })).toBe(`mac:${MAC}`);
  });
});
