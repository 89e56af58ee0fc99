import DNS from 'dns2';
import { ResponseCache, cacheTtl, serveEntry } from './cache';
import { analyzeResponse, parseQuery } from './wire';
import { aRecord, soaRecord } from '../test/fixtures/records';

const { Packet } = DNS;

function dnsQuery(name: string, opts: { edns?: boolean; id?: number; rd?: boolean } = {}): Buffer {
  const p = new Packet();
  p.header.id = opts.id ?? 1;
  p.header.rd = opts.rd === false ? 0 : 1;
  p.questions.push(new Packet.Question(name, Packet.TYPE.A, Packet.CLASS.IN));
  if (opts.edns) p.additionals.push(Packet.Resource.EDNS([]));
  return p.toBuffer();
}

function dnsResponse(query: Buffer, build: (p: DNS.Packet) => void): Buffer {
  const p = Packet.createResponseFromRequest(Packet.parse(query));
  p.header.ra = 1;
  build(p);
  return p.toBuffer();
}

/** A cache with a hand-driven clock. */
function setup(opts: ConstructorParameters<typeof ResponseCache>[0] = {}) {
  const clock = { t: 1_000_000 };
  const cache = new ResponseCache({ now: () => clock.t, ...opts });
  const put = (query: Buffer, response: Buffer) =>
    cache.insert(parseQuery(query).key, response, analyzeResponse(response));
  const get = (query: Buffer) => {
    const q = parseQuery(query);
    const e = cache.get(q.key);
    return e === undefined ? undefined : Packet.parse(serveEntry(e, query, q, clock.t));
  };
  return { clock, cache, put, get };
}

describe('cacheTtl', () => {
  const q = dnsQuery('a.test');
  const info = (build: (p: DNS.Packet) => void) => analyzeResponse(dnsResponse(q, build));

  it('uses the smallest TTL of a positive answer, capped', () => {
    expect(cacheTtl(info((p) => p.answers.push(aRecord('a.test', 300), aRecord('a.test', 60))))).toBe(60);
    expect(
      cacheTtl(
        info((p) => p.answers.push(aRecord('a.test', 999_999))),
        86_400,
      ),
    ).toBe(86_400);
  });

  it('negative answers: min(SOA TTL, MINIMUM), capped; none without SOA', () => {
    const nx = (ttl: number, min: number) =>
      info((p) => {
        p.header.rcode = 3;
        p.authorities.push(soaRecord(ttl, min));
      });
    expect(cacheTtl(nx(3600, 30))).toBe(30);
    expect(cacheTtl(nx(3600, 3600), 86_400, 300)).toBe(300);
    expect(cacheTtl(info((p) => p.authorities.push(soaRecord(100, 50))))).toBe(50); // NODATA
    expect(cacheTtl(info((p) => (p.header.rcode = 3)))).toBe(0);
  });

  it('never caches SERVFAIL, REFUSED, truncated or TTL 0', () => {
    expect(cacheTtl(info((p) => (p.header.rcode = 2)))).toBe(0);
    expect(cacheTtl(info((p) => (p.header.rcode = 5)))).toBe(0);
    expect(cacheTtl(info((p) => ((p.header.tc = 1), p.answers.push(aRecord('a.test', 60)))))).toBe(0);
    expect(cacheTtl(info((p) => p.answers.push(aRecord('a.test', 0))))).toBe(0);
  });
});

describe('ResponseCache', () => {
  it('serves a copy with the ID, RD and question case of the new query', () => {
    const { put, get } = setup();
    put(
      dnsQuery('host.test', { id: 1 }),
      dnsResponse(dnsQuery('host.test', { id: 1 }), (p) => {
        p.header.aa = 1;
        p.answers.push(aRecord('host.test', 60));
      }),
    );
    const hit = get(dnsQuery('HoSt.TeSt', { id: 999, rd: false }))!;
    expect(hit.header.id).toBe(999);
    expect(hit.header.aa).toBe(0);
    expect(hit.header.rd).toBe(0);
    expect(hit.questions[0]!.name).toBe('HoSt.TeSt');
    expect(hit.answers[0]!.address).toBe('10.0.0.1');
  });

  it('decrements TTLs by the whole seconds stored and expires at the smallest TTL', () => {
    const { clock, put, get, cache } = setup();
    const q = dnsQuery('host.test');
    put(
      q,
      dnsResponse(q, (p) => p.answers.push(aRecord('host.test', 300), aRecord('host.test', 10, '10.0.0.2'))),
    );
    expect(get(q)!.answers.map((r) => r.ttl)).toEqual([300, 10]);
    clock.t += 999;
    expect(get(q)!.answers.map((r) => r.ttl)).toEqual([300, 10]);
    clock.t += 3001;
    expect(get(q)!.answers.map((r) => r.ttl)).toEqual([296, 6]);
    clock.t += 5999;
    expect(get(q)!.answers.map((r) => r.ttl)).toEqual([291, 1]);
    clock.t += 1;
    expect(get(q)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('caches negative answers for the SOA minimum, decrementing the SOA TTL', () => {
    const { clock, put, get } = setup();
    const q = dnsQuery('nope.test');
    const stored = put(
      q,
      dnsResponse(q, (p) => {
        p.header.rcode = 3;
        p.authorities.push(soaRecord(3600, 20));
      }),
    );
    expect(stored).toBe(true);
    clock.t += 5000;
    const hit = get(q)!;
    expect(hit.header.rcode).toBe(3);
    expect(hit.authorities[0]!.ttl).toBe(15); // capped to 20 at insert, then −5
    clock.t += 15_000;
    expect(get(q)).toBeUndefined();
  });

  it('does not store what must not be cached', () => {
    const { put, cache } = setup();
    const q = dnsQuery('x.test');
    expect(
      put(
        q,
        dnsResponse(q, (p) => (p.header.rcode = 2)),
      ),
    ).toBe(false);
    expect(
      put(
        q,
        dnsResponse(q, (p) => ((p.header.tc = 1), p.answers.push(aRecord('x.test', 60)))),
      ),
    ).toBe(false);
    expect(cache.size).toBe(0);
  });

  it('keeps EDNS and plain queries apart and strips EDNS options when storing', () => {
    const { put, get } = setup();
    const plain = dnsQuery('e.test');
    const edns = dnsQuery('e.test', { edns: true });
    // an upstream reply echoing a 12-byte option (like a cookie) in its OPT record
    const resp = dnsResponse(edns, (p) => {
      p.answers.push(aRecord('e.test', 60));
      p.additionals.push(Packet.Resource.EDNS([]));
    });
    const withOption = Buffer.concat([resp, Buffer.from('000a0008' + '0102030405060708', 'hex')]);
    withOption.writeUInt16BE(12, resp.length - 2);
    expect(put(edns, withOption)).toBe(true);
    expect(get(plain)).toBeUndefined();
    const q = parseQuery(edns);
    const raw = serveEntry(entryFor(edns, withOption), edns, q, 0);
    expect(raw.length).toBe(resp.length); // options gone, OPT record kept
    expect(raw.readUInt16BE(raw.length - 2)).toBe(0);
    expect(get(edns)!.additionals).toHaveLength(1);
  });

  it('evicts unused entries first when full (second chance)', () => {
    const { put, get, cache } = setup({ maxEntries: 3 });
    const names = ['a', 'b', 'c', 'd', 'e'].map((n) => dnsQuery(`${n}.test`));
    const store = (q: Buffer) =>
      put(
        q,
        dnsResponse(q, (p) => p.answers.push(aRecord(Packet.parse(q).questions[0]!.name, 60))),
      );
    store(names[0]!);
    store(names[1]!);
    store(names[2]!);
    expect(get(names[0]!)).toBeDefined(); // a is used
    store(names[3]!); // evicts b (oldest unused)
    expect(cache.size).toBe(3);
    expect(get(names[1]!)).toBeUndefined();
    expect(get(names[0]!)).toBeDefined();
    store(names[4]!);
    expect(cache.size).toBe(3);
    expect(get(names[0]!)).toBeDefined();
  });

  it('respects the byte limit', () => {
    const { put, cache } = setup({ maxBytes: 200 });
    for (let i = 0; i < 10; i++) {
      const q = dnsQuery(`n${i}.test`);
      put(
        q,
        dnsResponse(q, (p) => p.answers.push(aRecord(`n${i}.test`, 60))),
      );
    }
    expect(cache.byteSize).toBeLessThanOrEqual(200);
    expect(cache.size).toBeGreaterThan(0);
  });

  it('clear() forgets everything', () => {
    const { put, get, cache } = setup();
    const q = dnsQuery('a.test');
    put(
      q,
      dnsResponse(q, (p) => p.answers.push(aRecord('a.test', 60))),
    );
    cache.clear();
    expect(get(q)).toBeUndefined();
    expect(cache.byteSize).toBe(0);
  });
});

/** The entry a fresh cache stores for this query and response. */
function entryFor(query: Buffer, response: Buffer): NonNullable<ReturnType<ResponseCache['get']>> {
  const cache = new ResponseCache({ now: () => 0 });
  const q = parseQuery(query);
  cache.insert(q.key, response, analyzeResponse(response), 0);
  return cache.get(q.key, 0)!;
}
