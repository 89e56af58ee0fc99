// Helpers of the DNS integration tests: a DNS client that builds and parses with dns2 (an
// encoder/decoder independent of ours), dnsmasq upstreams as child processes, and a scriptable
// upstream for what dnsmasq cannot do (chosen TTLs, delays, wrong answers).
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import DNS from 'dns2';
import { ManagedProcess, freePort, until } from '@knet/testing';

export const { Packet } = DNS;
export type Packet = DNS.Packet;
export type Question = DNS.Packet.Question;

export interface Addr {
  address: string;
  port: number;
}

export interface QueryOptions {
  tcp?: boolean;
  /** Add an OPT record (EDNS0, 1232 bytes). */
  edns?: boolean;
  /** Set the DO bit (implies edns). */
  dnssecOk?: boolean;
  id?: number;
  timeoutMs?: number;
}

export interface Answer {
  raw: Buffer;
  packet: Packet;
  /** Header RCODE. */
  rcode: number;
}

const TYPES = Packet.TYPE as unknown as Record<string, number>;

/** A query in wire form, encoded by dns2. */
export function encodeQuery(name: string, type: string | number, opts: QueryOptions = {}): Buffer {
  const p = new Packet();
  p.header.id = opts.id ?? Math.floor(Math.random() * 0x10000);
  p.header.rd = 1;
  p.questions.push({
    name,
    type: typeof type === 'number' ? type : TYPES[type]!,
    class: Packet.CLASS.IN,
  } as never);
  if (opts.edns || opts.dnssecOk) {
    const opt = Packet.Resource.EDNS([]);
    opt.class = 1232; // UDP payload size
    opt.ttl = opts.dnssecOk ? 0x8000 : 0; // extended RCODE 0, version 0, DO
    p.additionals.push(opt);
  }
  return p.toBuffer();
}

/** Sends a query (UDP or TCP) and returns the raw and parsed answer. */
export async function query(
  server: Addr,
  name: string,
  type: string | number,
  opts: QueryOptions = {},
): Promise<Answer> {
  const raw = await exchange(server, encodeQuery(name, type, opts), opts);
  if (raw === null) throw new Error(`no answer from ${server.address}#${server.port} for ${name} ${type}`);
  return { raw, packet: Packet.parse(raw), rcode: raw[3]! & 0xf };
}

/** Sends raw bytes; resolves with the first reply, or null after the timeout. */
export function exchange(
  server: Addr,
  msg: Buffer,
  opts: { tcp?: boolean; timeoutMs?: number } = {},
): Promise<Buffer | null> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  if (opts.tcp) {
    return new Promise((resolve) => {
      const s = connect({ host: server.address, port: server.port });
      let buf = Buffer.alloc(0);
      const done = (r: Buffer | null) => {
        clearTimeout(timer);
        s.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      s.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(msg.length);
        s.write(Buffer.concat([len, msg]));
      });
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
          done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
      s.on('error', () => done(null));
      s.on('close', () => done(null));
    });
  }
  return new Promise((resolve) => {
    const s = createSocket(isIP(server.address) === 6 ? 'udp6' : 'udp4');
    const done = (r: Buffer | null) => {
      clearTimeout(timer);
      s.close();
      resolve(r);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    s.on('message', (m, rinfo) => {
      if (rinfo.port === server.port && rinfo.address === server.address) done(m);
    });
    s.on('error', () => done(null));
    s.send(msg, server.port, server.address);
  });
}

/** A-record addresses of an answer. */
export function addresses(a: Answer): string[] {
  return a.packet.answers.filter((r) => r.type === Packet.TYPE.A).map((r) => r.address!);
}

/** TTLs of the answer section. */
export function ttls(a: Answer): number[] {
  return a.packet.answers.map((r) => r.ttl);
}

export interface Dnsmasq extends Addr {
  proc: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Starts dnsmasq on `address` and `port` (default: a free one) as an authoritative-for-its-records
 * server (no upstreams unless `args` add --server), waits until it answers.
 */
export async function startDnsmasq(
  name: string,
  address: string,
  args: string[],
  port?: number,
): Promise<Dnsmasq> {
  const dir = mkdtempSync(join(tmpdir(), `knet-dns-${name}-`));
  port ??= await freePort();
  const proc = ManagedProcess.start(
    name,
    '/usr/sbin/dnsmasq',
    [
      '--no-daemon',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      `--listen-address=${address}`,
      `--port=${port}`,
      '--log-facility=-',
      `--pid-file=${join(dir, 'pid')}`,
      ...args,
    ],
    join(dir, 'log'),
  );
  const stop = async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const probe = encodeQuery('ready.invalid', 'A');
    const answers = async () =>
      (await exchange({ address, port: port! }, probe, { timeoutMs: 300 })) !== null;
    await until(
      () =>
        `dnsmasq ${name} to answer on ${address}#${port} (${proc.running ? 'running' : 'exited'}: ${proc.tail()})`,
      () => proc.running && answers(),
      15_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, port: port!, proc, stop };
}

export type UpstreamHandler = (
  q: Packet,
  raw: Buffer,
  reply: (p: Packet | Buffer) => void,
  rinfo: RemoteInfo,
) => void;

/** A UDP upstream whose answers the test scripts (dns2 packets); counts the queries it got. */
export class FakeUpstream implements Addr {
  readonly socket: UdpSocket;
  port = 0;
  readonly received: Packet[] = [];

  private constructor(
    readonly address: string,
    private handler: UpstreamHandler,
  ) {
    this.socket = createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
  }

  static async start(address: string, handler: UpstreamHandler): Promise<FakeUpstream> {
    const u = new FakeUpstream(address, handler);
    const port = await freePort();
    await new Promise<void>((resolve, reject) => {
      u.socket.once('error', reject);
      u.socket.bind(port, address, () => resolve());
    });
    u.port = port;
    u.socket.on('message', (msg, rinfo) => {
      let q: Packet;
      try {
        q = Packet.parse(msg);
      } catch {
        return;
      }
      u.received.push(q);
      u.handler(
        q,
        msg,
        (p) => u.socket.send(Buffer.isBuffer(p) ? p : p.toBuffer(), rinfo.port, rinfo.address),
        rinfo,
      );
    });
    return u;
  }

  setHandler(h: UpstreamHandler): void {
    this.handler = h;
  }

  /** Queries received for `name` (any case). */
  count(name: string): number {
    return this.received.filter((p) => p.questions[0]?.name.toLowerCase() === name.toLowerCase()).length;
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

/** A response to `q` with the given answers (dns2 resource objects) and RCODE. */
export function reply(
  q: Packet,
  rcode: number,
  answers: Partial<DNS.Packet.Resource>[] = [],
  authorities: Partial<DNS.Packet.Resource>[] = [],
): Packet {
  const r = Packet.createResponseFromRequest(q);
  r.header.rcode = rcode;
  r.header.ra = 1;
  for (const a of answers)
    r.answers.push({ name: q.questions[0]!.name, class: Packet.CLASS.IN, ...a } as DNS.Packet.Resource);
  for (const a of authorities) r.authorities.push({ class: Packet.CLASS.IN, ...a } as DNS.Packet.Resource);
  return r;
}
