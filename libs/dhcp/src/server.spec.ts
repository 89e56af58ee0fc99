import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingLogger, Registry } from '@knet/runtime';
import { until } from '@knet/testing';
import { decodeDhcp, DhcpMessageType, encodeDhcp, type DhcpMessage, type DhcpMessageInit } from './codec';
import { DhcpClient } from './client';
import { FakeDhcpNetwork, type FakeDatagram, type FakeHost } from './fake-network';
import type { VtepFlooder } from './flooder';
import { DhcpServer, sanitizeHostname, type DhcpServerMetric, type DhcpServerOptions } from './server';
import type { DhcpSocket } from './transport';

jest.setTimeout(60_000);

const SERVER = '172.16.0.1';
const MAC = '02:00:5e:00:53:01';

class RecordingFlooder implements VtepFlooder {
  readonly ensured: string[] = [];
  readonly pruned: string[][] = [];
  constructor(private readonly behaviour: 'ok' | 'fail' | 'hang' = 'ok') {}
  ensure(chaddr: string): Promise<void> {
    this.ensured.push(chaddr);
    if (this.behaviour === 'fail') return Promise.reject(new Error('bridge: command not found'));
    if (this.behaviour === 'hang') return new Promise(() => undefined);
    return Promise.resolve();
  }
  async prune(active: readonly string[]): Promise<void> {
    this.pruned.push([...active]);
  }
}

interface Bed {
  net: FakeDhcpNetwork;
  gw: FakeHost;
  server: DhcpServer;
  client: DhcpSocket;
  clientHost: FakeHost;
  logger: RecordingLogger;
  flooder: RecordingFlooder;
  hosts: Record<string, string>[];
  metrics: DhcpServerMetric[];
  clock: { now: number };
  /** Sends a BOOTREQUEST from the client socket and returns the server's reply (or undefined). */
  /** `waitMs`: how long to wait for a reply (long by default; short where none is expected). */
  ask(
    msg: Partial<DhcpMessageInit> & { messageType: DhcpMessageType },
    to?: string,
    waitMs?: number,
  ): Promise<Reply | undefined>;
}

interface Reply {
  msg: DhcpMessage;
  datagram: FakeDatagram;
}

let dir: string;
let beds: Bed[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'knet-dhcp-spec-'));
});

afterEach(async () => {
  for (const b of beds) await b.server.stop();
  beds = [];
  rmSync(dir, { recursive: true, force: true });
});

async function bed(
  options: Partial<DhcpServerOptions> = {},
  flooder = new RecordingFlooder(),
  net = new FakeDhcpNetwork(),
): Promise<Bed> {
  const gw = net.host('gw', SERVER, '192.0.2.1');
  const clientHost = net.host('client', '192.0.2.10');
  const logger = new RecordingLogger();
  const hosts: Record<string, string>[] = [];
  const metrics: DhcpServerMetric[] = [];
  const clock = { now: Date.parse('2025-01-01T00:00:00Z') };
  const server = new DhcpServer({
    serverAddress: SERVER,
    pool: {
      network: '172.16.0.0/24',
      leaseTimeSec: 3600,
      reservations: [{ hostname: 'torrent', ip: '172.16.0.5' }],
    },
    logger,
    flooder,
    socketFactory: gw.socketFactory,
    onLeasesChanged: (h) => hosts.push(h),
    metrics: (m) => metrics.push(m),
    now: () => clock.now,
    persistDebounceMs: 10,
    inUseCheck: null,
    ...options,
  });
  await server.start();
  const client = clientHost.socketFactory();
  await client.bind(68, '0.0.0.0');
  const replies: Reply[] = [];
  client.onMessage((buf) => {
    const datagram = net.log.find((d) => d.buf.equals(buf)) as FakeDatagram;
    replies.push({ msg: decodeDhcp(buf), datagram });
  });
  let xid = 100;
  const b: Bed = {
    net,
    gw,
    server,
    client,
    clientHost,
    logger,
    flooder,
    hosts,
    metrics,
    clock,
    async ask(msg, to = '255.255.255.255', waitMs = 10_000) {
      const id = msg.xid ?? ++xid;
      await client.send(encodeDhcp({ op: 1, chaddr: MAC, ...msg, xid: id }), 67, to);
      const deadline = Date.now() + waitMs;
      while (Date.now() < deadline) {
        const r = replies.find((x) => x.msg.xid === id);
        if (r) return r;
        await new Promise((res) => setTimeout(res, 2));
      }
      return undefined;
    },
  };
  beds.push(b);
  return b;
}

/** DISCOVER + REQUEST; returns the ACK. */
async function lease(b: Bed, extra: Partial<DhcpMessageInit> = {}): Promise<Reply> {
  const offer = await b.ask({ messageType: DhcpMessageType.DISCOVER, flags: 0x8000, ...extra });
  expect(offer?.msg.messageType).toBe(DhcpMessageType.OFFER);
  const ack = await b.ask({
    messageType: DhcpMessageType.REQUEST,
    flags: 0x8000,
    ...extra,
    options: { ...extra.options, requestedIp: offer!.msg.yiaddr, serverId: SERVER },
  });
  expect(ack?.msg.messageType).toBe(DhcpMessageType.ACK);
  return ack!;
}

describe('DhcpServer', () => {
  it('binds 0.0.0.0:67 to receive and serverAddress:67 to send', async () => {
    const b = await bed();
    const bound = [...b.net.sockets].filter((s) => s.host === b.gw).map((s) => s.bound);
    expect(bound).toEqual([
      { address: '0.0.0.0', port: 67 },
      { address: SERVER, port: 67 },
    ]);
  });

  it('answers DISCOVER with a broadcast OFFER after putting the client VTEP into the flood list', async () => {
    const b = await bed({ mtu: 1400, domain: 'pods.example', dnsServers: ['172.16.0.1', '192.0.2.53'] });
    const offer = await b.ask({
      messageType: DhcpMessageType.DISCOVER,
      options: { parameterRequestList: [0, 1, 3, 0] },
    });
    expect(b.flooder.ensured).toEqual([MAC]);
    expect(offer!.datagram.from).toEqual({ address: SERVER, port: 67 });
    expect(offer!.datagram.to).toEqual({ address: '255.255.255.255', port: 68 });
    expect(offer!.msg).toMatchObject({
      op: 2,
      yiaddr: '172.16.0.20',
      siaddr: SERVER,
      chaddr: MAC,
      options: {
        serverId: SERVER,
        subnetMask: '255.255.255.0',
        routers: [SERVER],
        dnsServers: ['172.16.0.1', '192.0.2.53'],
        domainName: 'pods.example',
        mtu: 1400,
        leaseTimeSec: 3600,
        renewalTimeSec: 1800,
        rebindingTimeSec: 3150,
      },
    });
    expect(b.server.stats()).toMatchObject({ received: { DISCOVER: 1 }, sent: { OFFER: 1 } });
    expect(b.metrics).toEqual([
      { kind: 'received', type: 'DISCOVER' },
      { kind: 'sent', type: 'OFFER' },
    ]);
  });

  it('ACKs a REQUEST in SELECTING state and tells the DNS side about the hostname', async () => {
    const b = await bed();
    const ack = await lease(b, { options: { hostname: 'Web.example' } });
    expect(ack.msg).toMatchObject({
      yiaddr: '172.16.0.20',
      options: { leaseTimeSec: 3600, serverId: SERVER },
    });
    expect(b.hosts).toEqual([{}, { web: '172.16.0.20' }]);
    expect(b.server.hosts()).toEqual({ web: '172.16.0.20' });
    expect(b.server.leases()).toMatchObject([{ ip: '172.16.0.20', chaddr: MAC, hostname: 'web' }]);
  });

  it('forgets the offer when the client chose another server', async () => {
    const b = await bed();
    await b.ask({ messageType: DhcpMessageType.DISCOVER });
    const r = await b.ask(
      {
        messageType: DhcpMessageType.REQUEST,
        options: { requestedIp: '172.16.0.20', serverId: '172.16.0.2' },
      },
      undefined,
      200,
    );
    expect(r).toBeUndefined();
    await until('the request to be ignored', () => b.server.stats().ignored === 1);
    // .20 is free again for someone else.
    const other = await b.ask({ messageType: DhcpMessageType.DISCOVER, chaddr: '02:00:5e:00:53:02' });
    expect(other?.msg.yiaddr).toBe('172.16.0.20');
  });

  it('answers a renewal by unicast to ciaddr, without touching the flood list', async () => {
    const b = await bed();
    await lease(b);
    b.clientHost.addresses.add('172.16.0.20');
    b.clientHost.source = '172.16.0.20';
    b.flooder.ensured.length = 0;
    const ack = await b.ask({ messageType: DhcpMessageType.REQUEST, ciaddr: '172.16.0.20' }, SERVER);
    expect(ack?.msg).toMatchObject({
      messageType: DhcpMessageType.ACK,
      yiaddr: '172.16.0.20',
      ciaddr: '172.16.0.20',
    });
    expect(ack?.datagram.to).toEqual({ address: '172.16.0.20', port: 68 });
    expect(b.flooder.ensured).toEqual([]);
  });

  it('NAKs (broadcast) a REQUEST for an address that is not ours or is taken, with the reason', async () => {
    const b = await bed();
    await lease(b, { chaddr: '02:00:5e:00:53:02' });
    const taken = await b.ask({
      messageType: DhcpMessageType.REQUEST,
      options: { requestedIp: '172.16.0.20', serverId: SERVER },
    });
    expect(taken?.msg).toMatchObject({
      messageType: DhcpMessageType.NAK,
      yiaddr: '0.0.0.0',
      options: { serverId: SERVER, message: '172.16.0.20 is leased to another client' },
    });
    expect(taken?.datagram.to.address).toBe('255.255.255.255');
    // INIT-REBOOT of a client with a record of another address (.21).
    await lease(b);
    const moved = await b.ask({
      messageType: DhcpMessageType.REQUEST,
      options: { requestedIp: '172.16.0.20' },
    });
    expect(moved?.msg.options.message).toBe('172.16.0.20 is not leased to this client');
    expect(moved?.datagram.to.address).toBe('255.255.255.255');
    const nothing = await b.ask({ messageType: DhcpMessageType.REQUEST });
    expect(nothing?.msg.options.message).toBe('no requested address');
  });

  it('ACKs INIT-REBOOT for the client’s own address, and a reserved hostname gets its reservation', async () => {
    const b = await bed();
    await lease(b);
    const reboot = await b.ask({
      messageType: DhcpMessageType.REQUEST,
      options: { requestedIp: '172.16.0.20' },
    });
    expect(reboot?.msg.messageType).toBe(DhcpMessageType.ACK);
    const t = await lease(b, { chaddr: '02:00:5e:00:53:07', options: { hostname: 'torrent' } });
    expect(t.msg.yiaddr).toBe('172.16.0.5');
  });

  it('handles RELEASE and DECLINE', async () => {
    const b = await bed();
    await lease(b, { options: { hostname: 'web' } });
    b.clientHost.source = '172.16.0.20';
    await b.ask(
      { messageType: DhcpMessageType.RELEASE, ciaddr: '172.16.0.20', options: { serverId: SERVER } },
      SERVER,
      0, // no reply to a RELEASE
    );
    await until('the hosts after the release', () => b.hosts.length === 3);
    expect(b.hosts[2]).toEqual({});
    expect(b.logger.messages('info')).toContain('dhcp: lease released');

    b.clientHost.source = undefined;
    const c2 = '02:00:5e:00:53:02';
    const offer = await b.ask({ messageType: DhcpMessageType.DISCOVER, chaddr: c2 });
    expect(offer?.msg.yiaddr).toBe('172.16.0.21'); // never-used first
    await b.ask(
      {
        messageType: DhcpMessageType.DECLINE,
        chaddr: c2,
        options: { requestedIp: '172.16.0.21', serverId: SERVER },
      },
      undefined,
      0, // no reply to a DECLINE
    );
    await until('the decline', () =>
      b.logger.messages('warn').includes('dhcp: client declined the address (in use?); quarantined'),
    );
    const again = await b.ask({ messageType: DhcpMessageType.DISCOVER, chaddr: c2 });
    expect(again?.msg.yiaddr).toBe('172.16.0.22'); // not the quarantined .21; the released .20 comes last
  });

  it('answers INFORM with configuration only (no address, no lease time) to ciaddr', async () => {
    const b = await bed();
    b.clientHost.addresses.add('172.16.0.9');
    b.clientHost.source = '172.16.0.9';
    const r = await b.ask({ messageType: DhcpMessageType.INFORM, ciaddr: '172.16.0.9' }, SERVER);
    expect(r?.msg).toMatchObject({
      messageType: DhcpMessageType.ACK,
      yiaddr: '0.0.0.0',
      options: { routers: [SERVER] },
    });
    expect(r?.msg.options.leaseTimeSec).toBeUndefined();
    expect(r?.datagram.to).toEqual({ address: '172.16.0.9', port: 68 });
  });

  it('counts garbage and BOOTREPLYs, warns once, and keeps serving', async () => {
    const b = await bed();
    for (let i = 0; i < 50; i++) await b.client.send(Buffer.from([1, 2, 3, i]), 67, '255.255.255.255');
    await b.client.send(encodeDhcp({ op: 2, xid: 5, chaddr: MAC, messageType: 2 }), 67, '255.255.255.255');
    await b.client.send(encodeDhcp({ op: 1, xid: 6, chaddr: MAC, messageType: 5 }), 67, '255.255.255.255');
    await until('the counters', () => b.server.stats().malformed === 50 && b.server.stats().ignored === 2);
    expect(b.logger.messages('warn')).toEqual(['dhcp: dropping malformed DHCP packets']);
    expect(b.metrics.filter((m) => m.kind === 'malformed')[0]).toEqual({
      kind: 'malformed',
      type: 'too short: 4 bytes, need at least 240',
    });
    await lease(b);
  });

  it('ignores relayed requests (giaddr set)', async () => {
    const b = await bed();
    expect(
      await b.ask({ messageType: DhcpMessageType.DISCOVER, giaddr: '192.0.2.254' }, undefined, 200),
    ).toBeUndefined();
    await until('the relayed request counted', () => b.metrics.some((m) => m.type === 'relayed'));
    expect(b.metrics).toContainEqual({ kind: 'ignored', type: 'relayed' });
  });

  it('still answers when the flooder fails or hangs (and says so)', async () => {
    for (const behaviour of ['fail', 'hang'] as const) {
      const b = await bed({ flooderTimeoutMs: 50 }, new RecordingFlooder(behaviour));
      const offer = await b.ask({ messageType: DhcpMessageType.DISCOVER });
      expect(offer?.msg.messageType).toBe(DhcpMessageType.OFFER);
      expect(b.logger.messages('warn')).toEqual(['dhcp: could not add the client VTEP to the flood list']);
    }
  });

  it('expires leases on the sweep, tells the DNS side and prunes the flood list', async () => {
    const b = await bed();
    await lease(b, { options: { hostname: 'web' } });
    await lease(b, { chaddr: '02:00:5e:00:53:02' });
    b.clock.now += 3_600_000;
    b.server.sweep();
    expect(b.hosts[b.hosts.length - 1]).toEqual({});
    expect(b.flooder.pruned).toEqual([[]]);
    expect(b.logger.messages('info').filter((m) => m === 'dhcp: lease ended')).toHaveLength(2);
  });

  it('fails to start with one line when serverAddress is not configured, and releases the port', async () => {
    const net = new FakeDhcpNetwork();
    const gw = net.host('gw', '192.0.2.1');
    const server = new DhcpServer({
      serverAddress: SERVER,
      pool: { network: '172.16.0.0/24' },
      logger: new RecordingLogger(),
      socketFactory: gw.socketFactory,
    });
    await expect(server.start()).rejects.toThrow(
      `cannot bind UDP ${SERVER}:67: bind EADDRNOTAVAIL ${SERVER}`,
    );
    expect(net.sockets.size).toBe(0);
  });

  it('refuses a serverAddress outside the pool network', () => {
    expect(
      () =>
        new DhcpServer({
          serverAddress: '10.0.0.1',
          pool: { network: '172.16.0.0/24' },
          logger: new RecordingLogger(),
        }),
    ).toThrow('DhcpServer: serverAddress 10.0.0.1 is not in 172.16.0.0/24');
  });

  describe('lease file', () => {
    it('is written atomically (0600, no temp files left) and restored by the next server', async () => {
      const leaseFile = join(dir, 'leases.json');
      const b = await bed({ leaseFile });
      await lease(b, { options: { hostname: 'web', clientId: '01aabbccddeeff' } });
      await until('the lease file', () => existsSync(leaseFile));
      await b.server.stop();
      expect(statSync(leaseFile).mode & 0o777).toBe(0o600);
      expect(readdirSync(dir)).toEqual(['leases.json']);
      const doc = JSON.parse(readFileSync(leaseFile, 'utf8'));
      expect(doc).toMatchObject({
        version: 1,
        leases: [{ ip: '172.16.0.20', client: 'id:01aabbccddeeff', chaddr: MAC, hostname: 'web' }],
      });

      // Restart: the same client id gets its address back even from a new MAC.
      const next = await bed({ leaseFile });
      expect(next.hosts[0]).toEqual({ web: '172.16.0.20' });
      const offer = await next.ask({
        messageType: DhcpMessageType.DISCOVER,
        chaddr: '02:00:5e:00:53:99',
        options: { clientId: '01aabbccddeeff' },
      });
      expect(offer?.msg.yiaddr).toBe('172.16.0.20');
      expect(next.logger.messages('info')).toContain('dhcp: leases restored');
    });

    it.each([
      ['not JSON', '{"version":1,"leases":[{'],
      ['the wrong version', '{"version":99,"leases":[]}'],
    ])('moves a file that is %s aside with one warning and starts empty', async (_name, content) => {
      const leaseFile = join(dir, 'leases.json');
      writeFileSync(leaseFile, content);
      const b = await bed({ leaseFile });
      const aside = readdirSync(dir).filter((f) => f.startsWith('leases.json.corrupt-'));
      expect(aside).toHaveLength(1);
      expect(readFileSync(join(dir, aside[0]!), 'utf8')).toBe(content);
      expect(b.logger.messages('warn')).toEqual([
        'dhcp: lease file unusable; moved aside, starting with no leases',
      ]);
      expect((await lease(b)).msg.yiaddr).toBe('172.16.0.20');
    });
  });

  describe('serves the overlay only (each attack worked before)', () => {
    const VICTIM = '02:00:5e:00:53:01';
    const ATTACKER = '02:00:5e:00:53:66';
    const ignoredFor = async (b: Bed, reason: string, n = 1) =>
      until(`${n} ignored: ${reason}`, () => (b.server.stats().ignoredBy[reason] ?? 0) >= n);

    it('does not aim replies at an address outside the overlay (ciaddr, option 50, relay)', async () => {
      const b = await bed();
      b.clientHost.source = '203.0.113.9';
      for (const msg of [
        { messageType: DhcpMessageType.INFORM, ciaddr: '203.0.113.9' },
        { messageType: DhcpMessageType.REQUEST, ciaddr: '203.0.113.9' },
        { messageType: DhcpMessageType.DISCOVER, options: { requestedIp: '198.51.100.1' } },
        { messageType: DhcpMessageType.DISCOVER, giaddr: '198.51.100.1' },
      ]) {
        expect(await b.ask(msg, SERVER, 50)).toBeUndefined();
      }
      await ignoredFor(b, 'ciaddr outside the overlay', 2);
      await ignoredFor(b, 'requested address outside the overlay');
      await ignoredFor(b, 'relayed');
      expect(b.net.log.filter((d) => d.from.port === 67)).toEqual([]);
    });

    it('answers a client with an address only at that address: ciaddr must be the source', async () => {
      const b = await bed();
      await lease(b);
      b.clientHost.source = '172.16.0.20';
      // A stranger (any source) asks in the victim's name for a reply to the victim's address.
      b.clientHost.source = '192.0.2.99';
      expect(
        await b.ask({ messageType: DhcpMessageType.INFORM, ciaddr: '172.16.0.20' }, SERVER, 50),
      ).toBeUndefined();
      await ignoredFor(b, 'source is not ciaddr');
      expect(b.net.log.filter((d) => d.to.address === '172.16.0.20')).toEqual([]);
    });

    it('honours RELEASE and DECLINE only from the lease’s own client (client id and chaddr)', async () => {
      const b = await bed();
      const id = { clientId: '00' + Buffer.from('ns/web').toString('hex') };
      await lease(b, { chaddr: VICTIM, options: id });
      b.clientHost.source = '172.16.0.20';
      // Same (guessable) client id, another MAC, from the victim's address: not the victim.
      await b.ask(
        { messageType: DhcpMessageType.RELEASE, chaddr: ATTACKER, ciaddr: '172.16.0.20', options: id },
        SERVER,
        0,
      );
      await ignoredFor(b, 'release of a lease not held');
      b.clientHost.source = undefined;
      await b.ask(
        {
          messageType: DhcpMessageType.DECLINE,
          chaddr: ATTACKER,
          options: { ...id, requestedIp: '172.16.0.20' },
        },
        undefined,
        0,
      );
      await ignoredFor(b, 'decline of an address not offered or leased');
      expect(b.server.leases()).toMatchObject([{ ip: '172.16.0.20', chaddr: VICTIM }]);
      // The victim itself may.
      await b.ask(
        {
          messageType: DhcpMessageType.DECLINE,
          chaddr: VICTIM,
          options: { ...id, requestedIp: '172.16.0.20' },
        },
        undefined,
        0,
      );
      await until('the decline', () => b.server.leases().length === 0);
    });

    it('does not hand out addresses by INIT-REBOOT or RENEW to clients without a record of them', async () => {
      const b = await bed();
      // INIT-REBOOT from a client we know nothing of: silent (RFC 2131 4.3.2).
      expect(
        await b.ask(
          { messageType: DhcpMessageType.REQUEST, chaddr: ATTACKER, options: { requestedIp: '172.16.0.30' } },
          undefined,
          50,
        ),
      ).toBeUndefined();
      await ignoredFor(b, 'init-reboot of an unknown client');
      // RENEW of a free address nobody leased to it: NAK.
      b.clientHost.source = '172.16.0.31';
      const renew = await b.ask(
        { messageType: DhcpMessageType.REQUEST, chaddr: ATTACKER, ciaddr: '172.16.0.31' },
        SERVER,
      );
      expect(renew?.msg.messageType).toBe(DhcpMessageType.NAK);
      expect(renew?.msg.options.message).toBe('172.16.0.31 is not leased to this client');
      expect(b.server.leases()).toEqual([]);
    });

    it('lets one source address bring in at most maxClientsPerSource clients', async () => {
      const b = await bed({ maxClientsPerSource: 3 });
      const acked: string[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await b.ask(
          {
            messageType: DhcpMessageType.REQUEST,
            chaddr: `02:00:5e:00:54:${String(i).padStart(2, '0')}`,
            options: { clientId: `00aa${i}0`, requestedIp: `172.16.0.${40 + i}`, serverId: SERVER },
          },
          undefined,
          50,
        );
        if (r?.msg.messageType === DhcpMessageType.ACK) acked.push(r.msg.yiaddr);
      }
      expect(acked).toEqual(['172.16.0.40', '172.16.0.41', '172.16.0.42']);
      await ignoredFor(b, 'too many clients from one source', 7);
      // Another pod (another source) is still served.
      b.clientHost.source = '192.0.2.11';
      expect((await lease(b, { chaddr: '02:00:5e:00:55:01' })).msg.yiaddr).toBe('172.16.0.20');
    });

    it('does not let offers hold addresses for long', async () => {
      const b = await bed({ pool: { network: '172.16.0.0/24', firstDynamic: 20, lastDynamic: 21 } });
      b.clientHost.source = '0.0.0.0';
      for (const mac of ['02:00:5e:00:56:01', '02:00:5e:00:56:02']) {
        await b.ask({ messageType: DhcpMessageType.DISCOVER, chaddr: mac });
      }
      expect(
        await b.ask({ messageType: DhcpMessageType.DISCOVER, chaddr: VICTIM }, undefined, 50),
      ).toBeUndefined();
      b.clock.now += 10_000;
      expect((await b.ask({ messageType: DhcpMessageType.DISCOVER, chaddr: VICTIM }))?.msg.yiaddr).toBe(
        '172.16.0.20',
      );
    });
  });

  describe('address-in-use check', () => {
    const STRANGER = '02:00:5e:00:53:aa';
    const table = (entries: Record<string, string>) => ({ holder: async (ip: string) => entries[ip] });

    it('sets aside an address another MAC uses on the overlay and offers the next one', async () => {
      const b = await bed({ inUseCheck: table({ '172.16.0.20': STRANGER, '172.16.0.21': STRANGER }) });
      const ack = await lease(b);
      expect(ack.msg.yiaddr).toBe('172.16.0.22');
      expect(b.server.stats().inUse).toBe(2);
      expect(b.logger.messages('warn')).toContain(
        'dhcp: address in use on the overlay by a client we did not lease it to; set aside',
      );
      // Set aside, not just skipped: another client does not get it either.
      expect((await lease(b, { chaddr: '02:00:5e:00:53:02' })).msg.yiaddr).toBe('172.16.0.23');
    });

    it('gives a client its own address, and one whose former lessee is the MAC seen', async () => {
      const b = await bed({
        inUseCheck: table({ '172.16.0.20': MAC, '172.16.0.21': '02:00:5e:00:53:02' }),
        pool: { network: '172.16.0.0/24', firstDynamic: 20, lastDynamic: 21 },
      });
      expect((await lease(b)).msg.yiaddr).toBe('172.16.0.20'); // the MAC seen is the client's
      await lease(b, { chaddr: '02:00:5e:00:53:02' }); // .21, its own MAC
      b.clientHost.source = '172.16.0.21';
      await b.ask(
        { messageType: DhcpMessageType.RELEASE, chaddr: '02:00:5e:00:53:02', ciaddr: '172.16.0.21' },
        SERVER,
        0,
      );
      await until('the release', () => b.server.leases().length === 1);
      b.clientHost.source = undefined;
      // .21's stale neighbour entry is its former lessee's, which released it: not in use.
      expect((await lease(b, { chaddr: '02:00:5e:00:53:03' })).msg.yiaddr).toBe('172.16.0.21');
      expect(b.server.stats().inUse).toBe(0);
    });

    it('NAKs a REQUEST (no offer before) for an address in use', async () => {
      const b = await bed({ inUseCheck: table({ '172.16.0.40': STRANGER }) });
      const r = await b.ask({
        messageType: DhcpMessageType.REQUEST,
        options: { requestedIp: '172.16.0.40', serverId: SERVER },
      });
      expect(r?.msg.options.message).toBe('172.16.0.40 is in use');
    });
  });

  describe('pool exhaustion and metrics', () => {
    it('counts and warns (at most every 10 s) when it cannot offer', async () => {
      const b = await bed({ pool: { network: '172.16.0.0/24', firstDynamic: 20, lastDynamic: 20 } });
      await lease(b);
      for (let i = 0; i < 3; i++) {
        expect(
          await b.ask(
            { messageType: DhcpMessageType.DISCOVER, chaddr: `02:00:5e:00:57:0${i}` },
            undefined,
            30,
          ),
        ).toBeUndefined();
      }
      await until('3 exhausted', () => b.server.stats().exhausted === 3);
      expect(b.logger.messages('warn').filter((m) => m.startsWith('dhcp: no address to offer'))).toHaveLength(
        1,
      );
    });

    it('an exhausted pool: the client’s timeout names the likely causes and the metrics', async () => {
      const b = await bed({ pool: { network: '172.16.0.0/24', firstDynamic: 20, lastDynamic: 20 } });
      await lease(b);
      const pod = new DhcpClient({
        interface: 'vxlan0',
        mac: '02:00:5e:00:58:01',
        socketFactory: b.net.host('pod').socketFactory,
        timeouts: { initialRetransmitMs: 20, maxRetransmitMs: 40 },
      });
      const err = await pod.acquire({ timeoutMs: 300 }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toContain('heard 0 OFFER');
      expect(err?.message).toContain('no OFFER: either the server has no free address (pool exhausted');
      expect(err?.message).toContain('knet_dhcp_pool_exhausted_total');
      expect(b.server.stats().exhausted).toBeGreaterThan(0);
    });

    it('exports packets, ignored, exhaustion, leases and the pool to a Prometheus registry', async () => {
      const registry = new Registry();
      const b = await bed({
        registry,
        pool: { network: '172.16.0.0/24', firstDynamic: 20, lastDynamic: 21 },
      });
      await lease(b);
      await b.ask({ messageType: DhcpMessageType.DISCOVER, chaddr: '02:00:5e:00:53:02' });
      await b.ask({ messageType: DhcpMessageType.DISCOVER, chaddr: '02:00:5e:00:53:03' }, undefined, 30);
      await b.ask({ messageType: DhcpMessageType.DISCOVER, giaddr: '192.0.2.254' }, undefined, 30);
      await b.client.send(Buffer.from([1, 2, 3]), 67, '255.255.255.255');
      await until('the counters', () => b.server.stats().malformed === 1 && b.server.stats().exhausted === 1);
      const text = await registry.metrics();
      for (const line of [
        'knet_dhcp_packets_total{direction="received",type="DISCOVER"} 4',
        'knet_dhcp_packets_total{direction="received",type="REQUEST"} 1',
        'knet_dhcp_packets_total{direction="sent",type="OFFER"} 2',
        'knet_dhcp_packets_total{direction="sent",type="ACK"} 1',
        'knet_dhcp_ignored_total{reason="relayed"} 1',
        'knet_dhcp_ignored_total{reason="malformed"} 1',
        'knet_dhcp_pool_exhausted_total 1',
        'knet_dhcp_leases{state="active"} 1',
        'knet_dhcp_leases{state="offered"} 1',
        'knet_dhcp_pool_addresses{state="size"} 2',
        'knet_dhcp_pool_addresses{state="free"} 0',
      ]) {
        expect(text).toContain(line);
      }
      // Counters grow by what happened since the last scrape, not by the totals again.
      expect(await registry.metrics()).toContain('knet_dhcp_pool_exhausted_total 1');
    });
  });

  it('sanitises hostnames to one DNS label', () => {
    expect(sanitizeHostname('Web-1.example.com.')).toBe('web-1');
    expect(sanitizeHostname('-bad')).toBeUndefined();
    expect(sanitizeHostname('with space')).toBeUndefined();
    expect(sanitizeHostname(undefined)).toBeUndefined();
  });
});
