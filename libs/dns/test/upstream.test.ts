// DnsServer against scripted upstreams: TTLs with real waiting, negative caching, failover on
// timeouts and SERVFAIL, anti-spoofing, TCP forwarding, coalescing. Short TTLs, generous margins.
import { createSocket } from 'node:dgram';
import { freePort, sleep, until } from '@knet/testing';
import { DnsServer, type DnsServerOptions } from '../src';
import {
  FakeUpstream,
  Packet,
  addresses,
  encodeQuery,
  exchange,
  query,
  reply,
  type Addr,
  type Question,
  type UpstreamHandler,
} from './helpers';
import { soaRecord } from './fixtures/records';

jest.setTimeout(60_000);

const NET = '127.0.12';
const A = Packet.TYPE.A;

const answerA =
  (ttl: number, address = '10.0.0.1'): UpstreamHandler =>
  (q, _raw, send) =>
    send(reply(q, 0, [{ type: A, ttl, address }]));

let servers: DnsServer[] = [];
let fakes: FakeUpstream[] = [];

async function fake(host: number, handler: UpstreamHandler): Promise<FakeUpstream> {
  const f = await FakeUpstream.start(`${NET}.${host}`, handler);
  fakes.push(f);
  return f;
}

async function serve(
  upstreams: FakeUpstream[],
  opts: Partial<DnsServerOptions> = {},
): Promise<{ server: DnsServer; addr: Addr }> {
  const addr = { address: `${NET}.100`, port: await freePort() };
  const server = new DnsServer({
    listen: [addr],
    upstreams: upstreams.map((u) => `${u.address}#${u.port}`),
    upstreamTimeoutMs: 1000,
    ...opts,
  });
  await server.start();
  servers.push(server);
  return { server, addr };
}

afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all(fakes.map((f) => f.close()));
  servers = [];
  fakes = [];
});

describe('caching', () => {
  it('serves from the cache with decremented TTLs and asks again after expiry', async () => {
    const up = await fake(1, answerA(5));
    const { addr } = await serve([up]);
    const first = await query(addr, 'short.test', 'A');
    expect(first.packet.answers[0]!.ttl).toBe(5);
    await sleep(1200);
    const cached = await query(addr, 'short.test', 'A');
    expect(up.count('short.test')).toBe(1);
    expect(addresses(cached)).toEqual(['10.0.0.1']);
    expect(cached.packet.answers[0]!.ttl).toBeLessThanOrEqual(4);
    await sleep(4200);
    const again = await query(addr, 'short.test', 'A');
    expect(up.count('short.test')).toBe(2);
    expect(again.packet.answers[0]!.ttl).toBe(5);
  });

  it('never caches TTL 0', async () => {
    const up = await fake(1, answerA(0));
    const { addr } = await serve([up]);
    await query(addr, 'zero.test', 'A');
    await query(addr, 'zero.test', 'A');
    expect(up.count('zero.test')).toBe(2);
  });

  it('caches NXDOMAIN for the SOA minimum (RFC 2308), not without an SOA', async () => {
    const up = await fake(1, (q, _raw, send) => {
      const name = q.questions[0]!.name;
      send(reply(q, 3, [], name.startsWith('soa') ? [soaRecord(3600, 3)] : []));
    });
    const { addr } = await serve([up]);
    const first = await query(addr, 'soa-nx.test', 'A');
    expect(first.rcode).toBe(3);
    const second = await query(addr, 'soa-nx.test', 'A');
    expect(second.rcode).toBe(3);
    expect(second.packet.authorities[0]!.ttl).toBeLessThanOrEqual(3);
    expect(up.count('soa-nx.test')).toBe(1);
    await sleep(3200);
    await query(addr, 'soa-nx.test', 'A');
    expect(up.count('soa-nx.test')).toBe(2);

    await query(addr, 'bare-nx.test', 'A');
    await query(addr, 'bare-nx.test', 'A');
    expect(up.count('bare-nx.test')).toBe(2);
  });

  it('caches NODATA the same way', async () => {
    const up = await fake(1, (q, _raw, send) => send(reply(q, 0, [], [soaRecord(60, 30)])));
    const { addr } = await serve([up]);
    expect((await query(addr, 'nodata.test', 'AAAA')).packet.answers).toHaveLength(0);
    expect((await query(addr, 'nodata.test', 'AAAA')).rcode).toBe(0);
    expect(up.count('nodata.test')).toBe(1);
  });

  it('setUpstreams flushes the cache', async () => {
    const up1 = await fake(1, answerA(3600, '10.0.0.1'));
    const up2 = await fake(2, answerA(3600, '10.0.0.2'));
    const { server, addr } = await serve([up1]);
    expect(addresses(await query(addr, 'moved.test', 'A'))).toEqual(['10.0.0.1']);
    server.setUpstreams([`${up2.address}#${up2.port}`]);
    expect(server.cacheSize).toBe(0);
    expect(addresses(await query(addr, 'moved.test', 'A'))).toEqual(['10.0.0.2']);
  });
});

describe('upstream failures', () => {
  it('tries the next server after a timeout, and puts the slow one last for a while', async () => {
    const dead = await fake(1, () => undefined);
    const good = await fake(2, answerA(60));
    const { server, addr } = await serve([dead, good]);
    expect(addresses(await query(addr, 'one.test', 'A'))).toEqual(['10.0.0.1']);
    expect(dead.count('one.test')).toBe(1);
    expect(server.stats.upstreamTimeouts).toBe(1);
    expect(addresses(await query(addr, 'two.test', 'A'))).toEqual(['10.0.0.1']);
    expect(dead.count('two.test')).toBe(0);
    expect(server.stats.upstreamTimeouts).toBe(1);
  });

  it('answers SERVFAIL when every server times out, and does not cache it', async () => {
    const dead1 = await fake(1, () => undefined);
    const dead2 = await fake(2, () => undefined);
    const { server, addr } = await serve([dead1, dead2], { upstreamTimeoutMs: 200 });
    const r = await query(addr, 'gone.test', 'A', { id: 77 });
    expect(r.rcode).toBe(2);
    expect(r.packet.header.id).toBe(77);
    expect(r.packet.questions[0]!.name).toBe('gone.test');
    expect(server.stats.servfail).toBe(1);
    expect(server.stats.upstreamTimeouts).toBe(2);
    expect((await query(addr, 'gone.test', 'A')).rcode).toBe(2);
    expect(dead1.count('gone.test') + dead2.count('gone.test')).toBe(4);
  });

  it('moves on after SERVFAIL or REFUSED from a server', async () => {
    const failing = await fake(1, (q, _raw, send) => send(reply(q, 2)));
    const refusing = await fake(2, (q, _raw, send) => send(reply(q, 5)));
    const good = await fake(3, answerA(60, '10.0.0.3'));
    const { addr } = await serve([failing, refusing, good]);
    expect(addresses(await query(addr, 'x.test', 'A'))).toEqual(['10.0.0.3']);
    expect([failing.count('x.test'), refusing.count('x.test'), good.count('x.test')]).toEqual([1, 1, 1]);
  });

  it('bounds the queries waiting for upstreams: drops over UDP, SERVFAIL over TCP', async () => {
    const dead = await fake(1, () => undefined);
    const { server, addr } = await serve([dead], { maxPending: 1, upstreamTimeoutMs: 5000 });
    const first = exchange(addr, encodeQuery('wait1.test', 'A'), { timeoutMs: 300 });
    await until('the query to wait for its upstream', () => server.pendingQueries === 1, 15_000);
    expect(await exchange(addr, encodeQuery('wait2.test', 'A'), { timeoutMs: 300 })).toBeNull();
    expect((await query(addr, 'wait3.test', 'A', { tcp: true })).rcode).toBe(2);
    expect(server.stats.overload).toBe(2);
    expect(await first).toBeNull();
  });

  it('answers SERVFAIL without upstreams', async () => {
    const { addr } = await serve([]);
    expect((await query(addr, 'x.test', 'A')).rcode).toBe(2);
  });
});

describe('anti-spoofing', () => {
  const decoy = createSocket('udp4');
  afterAll(() => new Promise<void>((r) => decoy.close(() => r())));

  it('uses its own IDs and accepts only the right source, ID and question', async () => {
    await new Promise<void>((r) => decoy.bind(0, `${NET}.1`, () => r()));
    const upstreamIds: number[] = [];
    const up = await fake(1, (q, _raw, send, rinfo) => {
      upstreamIds.push(q.header.id);
      const good = reply(q, 0, [{ type: A, ttl: 60, address: '10.0.0.1' }]);
      const evil = (build: (p: Packet) => void) => {
        const p = reply(q, 0, [{ type: A, ttl: 60, address: '6.6.6.6' }]);
        build(p);
        return p;
      };
      send(evil((p) => (p.header.id = (q.header.id + 1) & 0xffff))); // wrong ID
      send(evil((p) => (p.questions = [{ name: 'evil.test', type: A, class: 1 } as Question]))); // wrong question
      send(evil((p) => (p.questions = [{ ...q.questions[0]!, name: 'other.test' }]))); // other name
      decoy.send(evil(() => undefined).toBuffer(), rinfo.port, rinfo.address); // right everything, wrong port
      setTimeout(() => send(good), 50);
    });
    const { server, addr } = await serve([up]);
    for (const name of ['s1.test', 's2.test', 's3.test']) {
      const r = await query(addr, name, 'A', { id: 0x1234 });
      expect(addresses(r)).toEqual(['10.0.0.1']);
    }
    expect(upstreamIds.filter((id) => id !== 0x1234).length).toBeGreaterThan(0);
    expect(server.stats.upstreamRejected).toBeGreaterThanOrEqual(9);
  });
});

describe('transports and concurrency', () => {
  it('works over IPv6: listens on ::1, forwards to an upstream written in long form', async () => {
    const up = await FakeUpstream.start('::1', answerA(60, '10.0.0.6'));
    fakes.push(up);
    const addr = { address: '::1', port: await freePort() };
    const server = new DnsServer({
      listen: [addr],
      upstreams: [`0:0:0:0:0:0:0:1#${up.port}`],
      upstreamTimeoutMs: 1000,
    });
    servers.push(server);
    await server.start();
    expect(addresses(await query(addr, 'v6.test', 'A'))).toEqual(['10.0.0.6']);
    expect(addresses(await query(addr, 'v6.test', 'A', { tcp: true }))).toEqual(['10.0.0.6']);
    expect(server.stats.upstreamRejected).toBe(0);
  });

  it('forwards TCP queries over TCP (this upstream has no TCP: SERVFAIL), UDP ones over UDP', async () => {
    const up = await fake(1, answerA(60));
    const { addr } = await serve([up]);
    expect((await query(addr, 'tcp.test', 'A', { tcp: true })).rcode).toBe(2);
    expect(up.count('tcp.test')).toBe(0);
    expect(addresses(await query(addr, 'tcp.test', 'A'))).toEqual(['10.0.0.1']);
    // once cached, TCP clients get it too
    expect(addresses(await query(addr, 'tcp.test', 'A', { tcp: true }))).toEqual(['10.0.0.1']);
  });

  it('relays an upstream TC reply and does not cache it', async () => {
    const up = await fake(1, (q, _raw, send) => {
      const r = reply(q, 0);
      r.header.tc = 1;
      send(r);
    });
    const { addr } = await serve([up]);
    expect((await query(addr, 'tc.test', 'TXT')).packet.header.tc).toBe(1);
    expect((await query(addr, 'tc.test', 'TXT')).packet.header.tc).toBe(1);
    expect(up.count('tc.test')).toBe(2);
  });

  it('sends one upstream query for identical questions in flight', async () => {
    const up = await fake(1, (q, _raw, send) =>
      setTimeout(() => send(reply(q, 0, [{ type: A, ttl: 60, address: '10.0.0.9' }])), 300),
    );
    const { addr } = await serve([up], { upstreamTimeoutMs: 2000 });
    const ids = [11, 12, 13, 14, 15];
    const answers = await Promise.all(ids.map((id) => query(addr, 'Same.Test', 'A', { id })));
    expect(answers.map((a) => a.packet.header.id)).toEqual(ids);
    expect(answers.every((a) => addresses(a)[0] === '10.0.0.9')).toBe(true);
    expect(up.count('same.test')).toBe(1);
  });
});
