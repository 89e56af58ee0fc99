import DNS from 'dns2';
import {
  DROP,
  KEY_CD,
  KEY_DO,
  KEY_EDNS,
  RCODE_BADVERS,
  RCODE_FORMERR,
  RCODE_NOERROR,
  RCODE_NOTIMP,
  TYPE_A,
  TYPE_PTR,
  analyzeResponse,
  buildResponse,
  clientUdpLimit,
  encodeName,
  ipv4Bytes,
  keyToName,
  parseQuery,
  readName,
  reverseName,
  sameQuestion,
  skipName,
  truncatedCopy,
} from './wire';
import { aRecord, soaRecord } from '../test/fixtures/records';

const { Packet } = DNS;

/** A query encoded by dns2 (independent of the code under test). */
function dnsQuery(
  name: string,
  type: number = Packet.TYPE.A,
  opts: { edns?: boolean; dnssecOk?: boolean; id?: number } = {},
): Buffer {
  const p = new Packet();
  p.header.id = opts.id ?? 0x4242;
  p.header.rd = 1;
  p.questions.push(new Packet.Question(name, type, Packet.CLASS.IN));
  if (opts.edns || opts.dnssecOk) {
    const opt = Packet.Resource.EDNS([]);
    opt.class = 1232;
    opt.ttl = opts.dnssecOk ? 0x8000 : 0;
    p.additionals.push(opt);
  }
  return p.toBuffer();
}

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

/** Header + the given question bytes. */
function withQuestion(qname: Buffer, counts = [1, 0, 0, 0], flags = 0x0100): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(0x1111, 0);
  h.writeUInt16BE(flags, 2);
  counts.forEach((c, i) => h.writeUInt16BE(c, 4 + 2 * i));
  return Buffer.concat([h, qname, hex('0001 0001')]);
}

describe('parseQuery', () => {
  it('parses a plain query and lower-cases the key', () => {
    const q = parseQuery(dnsQuery('WWW.Example.COM'));
    expect(q.rcode).toBe(RCODE_NOERROR);
    expect(q.id).toBe(0x4242);
    expect(q.qtype).toBe(TYPE_A);
    expect(q.qclass).toBe(1);
    expect(q.edns).toBe(false);
    expect(q.udpSize).toBe(512);
    expect(q.questionEnd).toBe(12 + 17 + 4);
    expect(keyToName(q.key)).toBe('www.example.com');
    expect(q.key).toBe(parseQuery(dnsQuery('www.example.com')).key);
    expect(q.key.length).toBe(q.qnameLen + 5);
    expect(q.key.charCodeAt(q.key.length - 1)).toBe(0);
  });

  it('tells EDNS, DO and CD apart in the key', () => {
    const plain = parseQuery(dnsQuery('a.test'));
    const edns = parseQuery(dnsQuery('a.test', Packet.TYPE.A, { edns: true }));
    const dnssec = parseQuery(dnsQuery('a.test', Packet.TYPE.A, { dnssecOk: true }));
    const cdBuf = dnsQuery('a.test');
    cdBuf[3] = cdBuf[3]! | 0x10;
    const cd = parseQuery(cdBuf);
    expect(edns.edns).toBe(true);
    expect(edns.udpSize).toBe(1232);
    expect(edns.dnssecOk).toBe(false);
    expect(dnssec.dnssecOk).toBe(true);
    expect(new Set([plain.key, edns.key, dnssec.key, cd.key]).size).toBe(4);
    expect(edns.key.charCodeAt(edns.key.length - 1)).toBe(KEY_EDNS);
    expect(dnssec.key.charCodeAt(dnssec.key.length - 1)).toBe(KEY_EDNS | KEY_DO);
    expect(cd.key.charCodeAt(cd.key.length - 1)).toBe(KEY_CD);
  });

  it('keys different types apart', () => {
    expect(parseQuery(dnsQuery('a.test', Packet.TYPE.A)).key).not.toBe(
      parseQuery(dnsQuery('a.test', Packet.TYPE.AAAA)).key,
    );
  });

  it('drops what cannot be answered: short packets and responses', () => {
    expect(parseQuery(Buffer.alloc(0)).rcode).toBe(DROP);
    expect(parseQuery(Buffer.alloc(11)).rcode).toBe(DROP);
    const resp = dnsQuery('a.test');
    resp[2] = resp[2]! | 0x80;
    expect(parseQuery(resp).rcode).toBe(DROP);
  });

  it('answers NOTIMP to other opcodes', () => {
    const notify = dnsQuery('a.test');
    notify[2] = (notify[2]! & 0x87) | (4 << 3);
    const q = parseQuery(notify);
    expect(q.rcode).toBe(RCODE_NOTIMP);
    expect(q.questionEnd).toBe(0);
  });

  it.each([
    ['no question', withQuestion(hex('00'), [0, 0, 0, 0]).subarray(0, 12)],
    ['two questions', withQuestion(hex('0161 00'), [2, 0, 0, 0])],
    [
      'a label over 63 bytes',
      withQuestion(Buffer.concat([Buffer.from([64]), Buffer.alloc(64, 0x61), hex('00')])),
    ],
    ['a compression pointer in the question', withQuestion(hex('c00c'))],
    ['a pointer loop', withQuestion(hex('0161 c00c'))],
    ['an extended label type', withQuestion(hex('41 00'))],
    [
      'a name over 255 bytes',
      withQuestion(
        Buffer.concat([
          ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])),
          hex('00'),
        ]),
      ),
    ],
    ['a truncated name', withQuestion(hex('0561 62')).subarray(0, 15)],
    ['a missing type/class', withQuestion(hex('0161 00')).subarray(0, 16)],
    ['an answer count with no records', withQuestion(hex('0161 00'), [1, 1, 0, 0])],
  ])('FORMERR for %s', (_name, buf) => {
    expect(parseQuery(buf).rcode).toBe(RCODE_FORMERR);
  });

  it('accepts a name of exactly 255 bytes and rejects 256', () => {
    // 3 × 63-byte labels (192) + 61-byte label (62) + root (1) = 255
    const labels = (last: number) =>
      Buffer.concat([
        ...Array.from({ length: 3 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])),
        Buffer.from([last]),
        Buffer.alloc(last, 0x62),
        hex('00'),
      ]);
    expect(parseQuery(withQuestion(labels(61))).rcode).toBe(RCODE_NOERROR);
    expect(parseQuery(withQuestion(labels(62))).rcode).toBe(RCODE_FORMERR);
  });

  it('validates the OPT record', () => {
    const base = dnsQuery('a.test', Packet.TYPE.A, { edns: true });
    const optAt = base.length - 11;
    // two OPT records
    const twice = Buffer.concat([base, base.subarray(optAt)]);
    twice.writeUInt16BE(2, 10);
    expect(parseQuery(twice).rcode).toBe(RCODE_FORMERR);
    // OPT in the answer section
    const inAnswer = Buffer.from(base);
    inAnswer.writeUInt16BE(1, 6);
    inAnswer.writeUInt16BE(0, 10);
    expect(parseQuery(inAnswer).rcode).toBe(RCODE_FORMERR);
    // option length running past RDATA
    const badOption = Buffer.concat([base, hex('000a 0010 0102')]);
    badOption.writeUInt16BE(6, optAt + 9);
    expect(parseQuery(badOption).rcode).toBe(RCODE_FORMERR);
    // RDLENGTH past the end
    const pastEnd = Buffer.from(base);
    pastEnd.writeUInt16BE(4, optAt + 9);
    expect(parseQuery(pastEnd).rcode).toBe(RCODE_FORMERR);
    // non-root owner name
    const named = Buffer.concat([base.subarray(0, optAt), hex('0161 00'), base.subarray(optAt + 1)]);
    expect(parseQuery(named).rcode).toBe(RCODE_FORMERR);
    // well-formed option (cookie) is fine
    const cookie = Buffer.concat([base, hex('000a 0008 0102030405060708')]);
    cookie.writeUInt16BE(12, optAt + 9);
    const ok = parseQuery(cookie);
    expect(ok.rcode).toBe(RCODE_NOERROR);
    expect(ok.end).toBe(cookie.length);
  });

  it('answers BADVERS to EDNS versions other than 0', () => {
    const v1 = dnsQuery('a.test', Packet.TYPE.A, { edns: true });
    v1[v1.length - 11 + 6] = 1;
    expect(parseQuery(v1).rcode).toBe(RCODE_BADVERS);
  });

  it('ignores trailing bytes after the last record', () => {
    const buf = Buffer.concat([dnsQuery('a.test'), Buffer.from('garbage')]);
    const q = parseQuery(buf);
    expect(q.rcode).toBe(RCODE_NOERROR);
    expect(q.end).toBe(buf.length - 7);
  });

  it('never throws on random input', () => {
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 20_000; i++) {
      const buf = Buffer.alloc(Math.floor(rand() * 80));
      for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rand() * 256);
      if (i % 2 === 0 && buf.length > 5) buf.writeUInt16BE(1, 4);
      const q = parseQuery(buf);
      expect([DROP, RCODE_NOERROR, RCODE_FORMERR, RCODE_NOTIMP, RCODE_BADVERS]).toContain(q.rcode);
    }
  });
});

describe('names', () => {
  it('encodes and reads names', () => {
    expect(encodeName('a.bc')).toEqual(hex('0161 026263 00'));
    expect(encodeName('a.bc.')).toEqual(hex('0161 026263 00'));
    expect(encodeName('')).toEqual(hex('00'));
    expect(() => encodeName('a..b')).toThrow(RangeError);
    expect(() => encodeName('x'.repeat(64))).toThrow(RangeError);
    expect(() => encodeName(Array.from({ length: 130 }, () => 'a').join('.'))).toThrow(RangeError);
    expect(readName(hex('0141 026263 00'), 0)).toBe('a.bc');
  });

  it('follows compression pointers backwards only', () => {
    // "bc" at 0, then "a" + pointer to 0
    const buf = hex('026263 00 0161 c000');
    expect(readName(buf, 4)).toBe('a.bc');
    expect(skipName(buf, 4)).toBe(8);
    // pointer to itself and forward pointers are loops or invalid
    expect(readName(hex('c000'), 0)).toBeNull();
    expect(readName(hex('0161 c000'), 0)).toBeNull();
    expect(readName(hex('c002 0161 00'), 0)).toBeNull();
    expect(readName(hex('0561'), 0)).toBeNull();
  });

  it('reverse names and IPv4 bytes', () => {
    expect(reverseName('172.16.0.21')).toBe('21.0.16.172.in-addr.arpa');
    expect(ipv4Bytes('10.1.2.3')).toEqual(Buffer.from([10, 1, 2, 3]));
    expect(ipv4Bytes('256.1.1.1')).toBeNull();
    expect(ipv4Bytes('fd00::1')).toBeNull();
  });
});

describe('analyzeResponse', () => {
  function response(build: (p: DNS.Packet) => void, query = dnsQuery('a.test')): Buffer {
    const p = Packet.createResponseFromRequest(Packet.parse(query));
    build(p);
    return p.toBuffer();
  }

  it('finds every TTL but the OPT record and the smallest one', () => {
    const buf = response((p) => {
      p.answers.push({
        name: 'a.test',
        type: Packet.TYPE.CNAME,
        class: 1,
        ttl: 300,
        domain: 'b.test',
      } as DNS.Packet.Resource);
      p.answers.push(aRecord('b.test', 60));
      p.additionals.push(Packet.Resource.EDNS([]));
    });
    const info = analyzeResponse(buf);
    expect(info.ok).toBe(true);
    expect(info.ancount).toBe(2);
    expect(info.minTtl).toBe(60);
    expect(info.ttlOffsets.map((o) => buf.readUInt32BE(o))).toEqual([300, 60]);
    expect(info.optStart).toBeGreaterThan(0);
    expect(info.optEnd).toBe(buf.length);
    expect(info.end).toBe(buf.length);
    expect(info.negativeTtl).toBe(-1);
  });

  it('takes min(SOA TTL, SOA MINIMUM) for negative answers', () => {
    const negative = (ttl: number, minimum: number) =>
      analyzeResponse(
        response((p) => {
          p.header.rcode = 3;
          p.authorities.push(soaRecord(ttl, minimum));
        }),
      );
    expect(negative(3600, 30).negativeTtl).toBe(30);
    expect(negative(20, 300).negativeTtl).toBe(20);
    expect(negative(20, 300).rcode).toBe(3);
  });

  it('rejects what does not parse', () => {
    const good = response((p) => {
      p.answers.push(aRecord('a.test', 60));
    });
    expect(analyzeResponse(good).ok).toBe(true);
    expect(analyzeResponse(good.subarray(0, good.length - 1)).ok).toBe(false);
    const notResponse = Buffer.from(good);
    notResponse[2] = notResponse[2]! & 0x7f;
    expect(analyzeResponse(notResponse).ok).toBe(false);
    // an answer whose owner is a pointer to itself: skipped, never followed, so the walk ends
    const loop = Buffer.from(good);
    loop.writeUInt16BE(0xc000 | (good.length - 16), good.length - 16);
    expect(analyzeResponse(loop)).toMatchObject({ ok: true, minTtl: 60 });
    expect(readName(loop, good.length - 16)).toBeNull();
  });

  it('marks truncated responses', () => {
    const tc = response((p) => {
      p.header.tc = 1;
    });
    expect(analyzeResponse(tc).truncated).toBe(true);
  });
});

describe('sameQuestion', () => {
  it('ignores case and nothing else', () => {
    const a = dnsQuery('Host.Test');
    const b = dnsQuery('host.test');
    const c = dnsQuery('host.tesu');
    const end = a.length;
    expect(sameQuestion(a, end, b, end)).toBe(true);
    expect(sameQuestion(a, end, c, end)).toBe(false);
    expect(sameQuestion(a, end, dnsQuery('host.test', Packet.TYPE.AAAA), end)).toBe(false);
    expect(sameQuestion(a, end, dnsQuery('hostx.test'), end + 1)).toBe(false);
  });
});

describe('buildResponse', () => {
  it('builds an authoritative answer dns2 can read, keeping the question case', () => {
    const query = dnsQuery('Pod-A.Local', Packet.TYPE.A, { id: 7 });
    const q = parseQuery(query);
    const out = buildResponse(query, q, {
      rcode: 0,
      aa: true,
      ttl: 5,
      answers: [
        { type: TYPE_A, rdata: Buffer.from([172, 16, 0, 21]) },
        { type: TYPE_A, rdata: Buffer.from([172, 16, 0, 22]) },
      ],
    });
    const p = Packet.parse(out);
    expect(p.header).toMatchObject({ id: 7, qr: 1, aa: 1, rd: 1, ra: 1, rcode: 0, tc: 0 });
    expect(p.questions[0]!.name).toBe('Pod-A.Local');
    expect(p.answers.map((a) => [a.name, a.ttl, a.address])).toEqual([
      ['Pod-A.Local', 5, '172.16.0.21'],
      ['Pod-A.Local', 5, '172.16.0.22'],
    ]);
  });

  it('builds PTR answers', () => {
    const query = dnsQuery('21.0.16.172.in-addr.arpa', Packet.TYPE.PTR);
    const out = buildResponse(query, parseQuery(query), {
      rcode: 0,
      aa: true,
      answers: [{ type: TYPE_PTR, rdata: encodeName('pod-a.local') }],
    });
    expect(Packet.parse(out).answers[0]!.domain).toBe('pod-a.local');
  });

  it('echoes the question in FORMERR when it parsed, only the header when not', () => {
    const withQ = Buffer.concat([dnsQuery('a.test'), hex('')]);
    withQ.writeUInt16BE(1, 6); // claims an answer that is not there
    const q = parseQuery(withQ);
    expect(q.rcode).toBe(RCODE_FORMERR);
    const out = buildResponse(withQ, q, { rcode: q.rcode });
    expect(out.readUInt16BE(4)).toBe(1);
    expect(out[3]! & 0xf).toBe(RCODE_FORMERR);
    expect(out[2]! & 0x80).toBe(0x80);
    const noQ = withQuestion(hex('c00c'));
    const out2 = buildResponse(noQ, parseQuery(noQ), { rcode: RCODE_FORMERR });
    expect(out2.length).toBe(12);
    expect(out2.readUInt16BE(0)).toBe(0x1111);
  });

  it('puts the upper RCODE bits of BADVERS in an OPT record', () => {
    const v1 = dnsQuery('a.test', Packet.TYPE.A, { edns: true });
    v1[v1.length - 11 + 6] = 1;
    const q = parseQuery(v1);
    const out = buildResponse(v1, q, { rcode: q.rcode });
    expect(out[3]! & 0xf).toBe(0);
    expect(out.readUInt16BE(10)).toBe(1);
    const opt = out.length - 11;
    expect(out.readUInt16BE(opt + 1)).toBe(41);
    expect(out[opt + 5]).toBe(1); // extended RCODE 16 >> 4
    expect(out[opt + 6]).toBe(0); // version 0
  });

  it('sets TC and drops the answers when they do not fit', () => {
    const query = dnsQuery('many.local');
    const q = parseQuery(query);
    const answers = Array.from({ length: 40 }, (_, i) => ({
      type: TYPE_A,
      rdata: Buffer.from([10, 0, 0, i]),
    }));
    const out = buildResponse(query, q, { rcode: 0, answers, maxSize: clientUdpLimit(q) });
    const p = Packet.parse(out);
    expect(p.header.tc).toBe(1);
    expect(p.answers).toHaveLength(0);
    expect(out.length).toBeLessThanOrEqual(512);
  });
});

describe('truncatedCopy', () => {
  it('keeps header and question, sets TC, adds OPT for EDNS clients', () => {
    const query = dnsQuery('big.test', Packet.TYPE.TXT, { edns: true });
    const q = parseQuery(query);
    const full = buildResponse(query, q, { rcode: 0, answers: [{ type: 16, rdata: Buffer.alloc(600, 1) }] });
    const out = truncatedCopy(full, q.questionEnd, q);
    const p = Packet.parse(out);
    expect(p.header.tc).toBe(1);
    expect(p.questions[0]!.name).toBe('big.test');
    expect(p.answers).toHaveLength(0);
    expect(p.additionals).toHaveLength(1);
  });
});
