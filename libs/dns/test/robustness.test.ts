// Hostile input: 10,000 malformed datagrams, then correct answers; TCP framing abuse, slowloris,
// connection limits; stop() with queries in flight.
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { freePort, sleep, until } from '@knet/testing';
import { RecordingLogger, Registry } from '@knet/runtime';
import { DnsServer } from '../src';
import { FakeUpstream, Packet, addresses, encodeQuery, exchange, query, reply, type Addr } from './helpers';

jest.setTimeout(120_000);

const NET = '127.0.14';

/** Deterministic pseudo-random numbers. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x1_0000_0000;
  };
}

/** Malformed (or at least strange) queries of many kinds. */
function malformed(i: number, rand: () => number): Buffer {
  const byte = () => Math.floor(rand() * 256);
  const valid = encodeQuery(`n${i % 50}.fuzz.test`, 'A', { edns: i % 3 === 0 });
  switch (i % 12) {
    case 0: // random bytes, random length
      return Buffer.from(Array.from({ length: Math.floor(rand() * 600) }, byte));
    case 1: // a valid query cut short
      return valid.subarray(0, Math.floor(rand() * valid.length));
    case 2: {
      // bit flips in a valid query
      const b = Buffer.from(valid);
      for (let k = 0; k < 3; k++) {
        const at = Math.floor(rand() * b.length);
        b[at] = b[at]! ^ (1 << Math.floor(rand() * 8));
      }
      return b;
    }
    case 3: // compression pointer loop in the question
      return Buffer.concat([valid.subarray(0, 12), Buffer.from([1, 0x61, 0xc0, 12, 0, 1, 0, 1])]);
    case 4: // label over 63
      return Buffer.concat([
        valid.subarray(0, 12),
        Buffer.from([64]),
        Buffer.alloc(64, 0x61),
        Buffer.from([0, 0, 1, 0, 1]),
      ]);
    case 5: {
      // name over 255
      const labels = Array.from({ length: 5 }, () =>
        Buffer.concat([Buffer.from([60]), Buffer.alloc(60, 0x62)]),
      );
      return Buffer.concat([valid.subarray(0, 12), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
    }
    case 6: {
      // QDCOUNT other than 1
      const b = Buffer.from(valid);
      b.writeUInt16BE([0, 2, 0xffff][i % 3]!, 4);
      return b;
    }
    case 7: {
      // a response (QR=1): must be ignored
      const b = Buffer.from(valid);
      b[2] = b[2]! | 0x80;
      return b;
    }
    case 8: {
      // opcodes other than QUERY
      const b = Buffer.from(valid);
      b[2] = (b[2]! & 0x87) | ((1 + (i % 15)) << 3);
      return b;
    }
    case 9: {
      // bad EDNS: RDLENGTH past the end, or huge record counts
      const b = Buffer.from(encodeQuery('edns.fuzz.test', 'A', { edns: true }));
      if (i % 2) b.writeUInt16BE(0xffff, b.length - 2);
      else b.writeUInt16BE(0xffff, 10);
      return b;
    }
    case 10: // 12-byte header only, random
      return Buffer.from(Array.from({ length: 12 }, byte));
    default: {
      // random garbage after a valid header with QDCOUNT 1
      const b = Buffer.from(Array.from({ length: 12 + Math.floor(rand() * 40) }, byte));
      b.writeUInt16BE(1, 4);
      b[2] = b[2]! & 0x7f;
      return b;
    }
  }
}

describe('robustness', () => {
  let up: FakeUpstream;
  let server: DnsServer;
  let addr: Addr;
  const logger = new RecordingLogger();
  const registry = new Registry();

  beforeAll(async () => {
    up = await FakeUpstream.start(`${NET}.1`, (q, _raw, send) => {
      const name = q.questions[0]?.name ?? '';
      send(
        name === 'good.test'
          ? reply(q, 0, [{ type: Packet.TYPE.A, ttl: 60, address: '10.0.0.1' }])
          : reply(q, 3),
      );
    });
    addr = { address: `${NET}.10`, port: await freePort() };
    server = new DnsServer({
      listen: [addr],
      upstreams: [`${up.address}#${up.port}`],
      tcpMaxConnections: 4,
      tcpIdleMs: 500,
      logger,
      registry,
    });
    await server.start();
  });

  afterAll(async () => {
    await server?.stop();
    await up?.close();
  });

  it('survives 10,000 malformed datagrams and still answers correctly', async () => {
    const rand = rng(0xd15ea5e);
    const client = createSocket('udp4');
    const replies: Buffer[] = [];
    client.on('message', (m) => replies.push(m));
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    const sent: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) {
      const b = malformed(i, rand);
      sent.push(b);
      client.send(b, addr.port, addr.address);
      if (i % 100 === 99) await sleep(2); // let the server keep up; drops would not matter
    }
    await until('no query waiting for an upstream', () => server.pendingQueries === 0, 30_000);
    await sleep(200);
    await new Promise<void>((r) => client.close(() => r()));

    expect(server.stats.malformed).toBeGreaterThan(5000);
    expect(replies.length).toBeGreaterThan(1000);
    for (const r of replies) {
      expect(r.length).toBeGreaterThanOrEqual(12);
      expect(r[2]! & 0x80).toBe(0x80); // every reply is a response
      expect([0, 1, 2, 3, 4]).toContain(r[3]! & 0xf); // NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP
    }
    // and the server answers properly afterwards, on both transports
    const ok = await query(addr, 'good.test', 'A', { id: 999 });
    expect(ok.packet.header.id).toBe(999);
    expect(addresses(ok)).toEqual(['10.0.0.1']);
    expect(addresses(await query(addr, 'good.test', 'A', { tcp: true }))).toEqual(['10.0.0.1']);

    // nothing per query above debug level; the counters reach Prometheus
    expect(logger.lines.filter((l) => l.level !== 'debug').map((l) => l.msg)).toEqual([
      'DNS server listening',
    ]);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/knet_dns_errors_total\{kind="malformed"\} [1-9]\d{3}/);
    expect(metrics).toMatch(/knet_dns_queries_total\{source="forwarded"\} [1-9]/);
  });

  it('answers FORMERR and NOTIMP where it can, and never answers a response', async () => {
    const twoQuestions = encodeQuery('x.test', 'A', { id: 5 });
    twoQuestions.writeUInt16BE(2, 4);
    const formerr = await exchange(addr, twoQuestions);
    expect(formerr?.readUInt16BE(0)).toBe(5);
    expect(formerr![3]! & 0xf).toBe(1);

    const notify = encodeQuery('x.test', 'SOA', { id: 6 });
    notify[2] = (notify[2]! & 0x87) | (4 << 3);
    const notimp = await exchange(addr, notify);
    expect(notimp![3]! & 0xf).toBe(4);
    expect((notimp![2]! >> 3) & 0xf).toBe(4); // opcode echoed

    const response = encodeQuery('x.test', 'A');
    response[2] = response[2]! | 0x80;
    expect(await exchange(addr, response, { timeoutMs: 500 })).toBeNull();
    expect(await exchange(addr, Buffer.alloc(11), { timeoutMs: 500 })).toBeNull();
  });

  it('answers pipelined TCP queries on one connection', async () => {
    const s = await open();
    const frames = [1, 2, 3].map((id) => frame(encodeQuery('good.test', 'A', { id })));
    s.write(Buffer.concat(frames));
    const got = await readFrames(s, 3);
    expect(got.map((b) => b.readUInt16BE(0)).sort()).toEqual([1, 2, 3]);
    s.destroy();
  });

  it('closes TCP connections with impossible length prefixes at once, as malformed, answering nothing', async () => {
    for (const len of [0xffff, 5]) {
      const malformed = server.stats.malformed;
      const dropped = server.stats.tcpDropped;
      const s = await open();
      const received: Buffer[] = [];
      s.on('data', (d: Buffer) => received.push(d));
      const closed = new Promise((r) => s.on('close', r));
      const b = Buffer.alloc(2);
      b.writeUInt16BE(len);
      s.write(b);
      await closed;
      // Closed for its prefix, counted as malformed: not left to the idle timeout (tcpDropped).
      expect([len, server.stats.malformed - malformed, server.stats.tcpDropped - dropped]).toEqual([
        len,
        1,
        0,
      ]);
      expect(Buffer.concat(received)).toHaveLength(0);
    }
  });

  it('drops slow (slowloris) and idle TCP clients', async () => {
    const before = server.stats.tcpDropped;
    const slow = await open();
    let closed = false;
    slow.on('close', () => (closed = true));
    const q = frame(encodeQuery('good.test', 'A'));
    for (let i = 0; i < q.length && !closed; i++) {
      slow.write(q.subarray(i, i + 1));
      await sleep(100);
    }
    await until('the slow client to be disconnected', () => closed, 15_000);
    const idle = await open();
    await new Promise((r) => idle.on('close', r));
    expect(server.stats.tcpDropped - before).toBeGreaterThanOrEqual(2);
  });

  it('limits concurrent TCP connections', async () => {
    const held = await Promise.all([1, 2, 3, 4].map(() => open()));
    const extra = await open();
    await new Promise((r) => extra.on('close', r));
    for (const s of held) s.destroy();
    await sleep(100);
    expect(addresses(await query(addr, 'good.test', 'A', { tcp: true }))).toEqual(['10.0.0.1']);
  });

  function open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: addr.address, port: addr.port });
      s.on('error', () => undefined);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  }
});

describe('stop()', () => {
  it('abandons queries in flight, releases the ports and can be called twice', async () => {
    const dead = await FakeUpstream.start(`${NET}.2`, () => undefined);
    const addr = { address: `${NET}.11`, port: await freePort() };
    const opts = { listen: [addr], upstreams: [`${dead.address}#${dead.port}`], upstreamTimeoutMs: 30_000 };
    const server = new DnsServer(opts);
    await server.start();
    const pending = exchange(addr, encodeQuery('slow.test', 'A'), { timeoutMs: 1500 });
    await until('the query to wait for its upstream', () => server.pendingQueries === 1, 15_000);
    await server.stop();
    await server.stop();
    expect(server.pendingQueries).toBe(0);
    expect(await pending).toBeNull();

    const again = new DnsServer({ ...opts, upstreams: [] });
    await again.start();
    expect((await query(addr, 'slow.test', 'A')).rcode).toBe(2);
    await again.stop();
    await dead.close();
  });

  it('start() fails cleanly when the address is taken', async () => {
    const addr = { address: `${NET}.12`, port: await freePort() };
    const first = new DnsServer({ listen: [addr] });
    await first.start();
    const second = new DnsServer({ listen: [addr] });
    await expect(second.start()).rejects.toThrow(/EADDRINUSE/);
    await first.stop();
  });
});

function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

function readFrames(s: Socket, n: number): Promise<Buffer[]> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length >= n) resolve(out);
    });
  });
}
