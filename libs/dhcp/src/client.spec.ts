import { FakeIpRoute } from '@knet/host-net';
import { silentLogger } from '@knet/runtime';
import {
  DhcpClient,
  DhcpClientError,
  DhcpNakError,
  DhcpTimeoutError,
  installBroadcastRoute,
  type DhcpClientOptions,
  type DhcpLease,
} from './client';
import {
  BROADCAST_FLAG,
  decodeDhcp,
  DhcpMessageType,
  encodeDhcp,
  type DhcpMessage,
  type DhcpOptions,
} from './codec';
import { FakeDhcpNetwork, type FakeDatagram } from './fake-network';
import { DhcpServer } from './server';
import type { DhcpSocket } from './transport';

jest.setTimeout(60_000);

const MAC = '02:00:5e:00:53:01';
const SERVER = '172.16.0.1';

/** Retransmissions late enough not to interleave with replies even on a loaded machine. */
const calm = { initialRetransmitMs: 1000, maxRetransmitMs: 2000, jitter: 0 };
const fast = { initialRetransmitMs: 20, maxRetransmitMs: 40, jitter: 0 };

function setup(options: Partial<DhcpClientOptions> = {}) {
  const net = new FakeDhcpNetwork();
  const host = net.host('client', '192.0.2.10');
  const client = new DhcpClient({
    interface: 'vxlan0',
    mac: MAC,
    hostname: 'web',
    clientId: '01020005e0005301',
    socketFactory: host.socketFactory,
    timeouts: calm,
    ...options,
  });
  return { net, host, client };
}

/** A scripted server: answers each client request with `answer(request)` (any number of replies). */
async function scripted(
  net: FakeDhcpNetwork,
  answer: (req: DhcpMessage) => { to?: string; msg: Parameters<typeof encodeDhcp>[0] }[],
): Promise<{ requests: { msg: DhcpMessage; to: string; flags: number }[]; socket: DhcpSocket }> {
  const gw = net.host('gw', SERVER);
  const socket = gw.socketFactory();
  await socket.bind(67, '0.0.0.0');
  const requests: { msg: DhcpMessage; to: string; flags: number }[] = [];
  socket.onMessage((buf) => {
    const msg = decodeDhcp(buf);
    const d = net.log.find((x) => x.buf.equals(buf)) as FakeDatagram;
    requests.push({ msg, to: d.to.address, flags: msg.flags });
    for (const r of answer(msg)) void socket.send(encodeDhcp(r.msg), 68, r.to ?? '255.255.255.255');
  });
  return { requests, socket };
}

/** A lease of 172.16.0.20/24 on vxlan0 from SERVER, but for its times. */
const LEASE_FROM_SERVER = {
  interface: 'vxlan0',
  address: '172.16.0.20',
  prefixLength: 24,
  subnetMask: '255.255.255.0',
  router: SERVER,
  dnsServers: [SERVER],
  serverId: SERVER,
} as const satisfies Partial<DhcpLease>;

const serverOptions: DhcpOptions = {
  serverId: SERVER,
  subnetMask: '255.255.255.0',
  routers: [SERVER],
  dnsServers: [SERVER],
  leaseTimeSec: 600,
};
const reply = (
  req: DhcpMessage,
  type: DhcpMessageType,
  extra: Partial<Parameters<typeof encodeDhcp>[0]> = {},
) => ({
  msg: {
    op: 2 as const,
    xid: req.xid,
    chaddr: req.chaddr,
    yiaddr: '172.16.0.20',
    messageType: type,
    options: type === DhcpMessageType.NAK ? { serverId: SERVER, message: 'wrong network' } : serverOptions,
    ...extra,
  },
});

describe('DhcpClient', () => {
  it('gets a lease from a real DhcpServer over the fake link', async () => {
    const { net, client } = setup();
    const gw = net.host('gw', SERVER);
    const server = new DhcpServer({
      serverAddress: SERVER,
      pool: { network: '172.16.0.0/24' },
      logger: silentLogger,
      socketFactory: gw.socketFactory,
      mtu: 1400,
    });
    await server.start();
    try {
      const lease = await client.acquire({ timeoutMs: 5000 });
      expect(lease).toEqual({
        ...LEASE_FROM_SERVER,
        leaseTimeSec: 43200,
        t1: 21600,
        t2: 37800,
        mtu: 1400,
        obtainedAt: expect.any(Number),
      });
      expect(server.hosts()).toEqual({ web: '172.16.0.20' });
      expect(server.leases()[0]?.clientKey).toBe('id:01020005e0005301');
    } finally {
      await server.stop();
    }
  });

  it('broadcasts DISCOVER and REQUEST with the BROADCAST flag, identity and the chosen server', async () => {
    const { net, client } = setup();
    const srv = await scripted(net, (req) =>
      req.messageType === DhcpMessageType.DISCOVER
        ? [reply(req, DhcpMessageType.OFFER)]
        : [reply(req, DhcpMessageType.ACK)],
    );
    const lease = await client.acquire({ requestedIp: '172.16.0.33', timeoutMs: 5000 });
    expect(lease.address).toBe('172.16.0.20');
    const discover = srv.requests.find((r) => r.msg.messageType === DhcpMessageType.DISCOVER);
    const request = srv.requests.find((r) => r.msg.messageType === DhcpMessageType.REQUEST);
    expect(discover).toMatchObject({
      to: '255.255.255.255',
      flags: BROADCAST_FLAG,
      msg: {
        messageType: DhcpMessageType.DISCOVER,
        chaddr: MAC,
        options: { hostname: 'web', clientId: '01020005e0005301', requestedIp: '172.16.0.33' },
      },
    });
    expect(request).toMatchObject({
      to: '255.255.255.255',
      flags: BROADCAST_FLAG,
      msg: {
        messageType: DhcpMessageType.REQUEST,
        xid: discover!.msg.xid,
        ciaddr: '0.0.0.0',
        options: { requestedIp: '172.16.0.20', serverId: SERVER, hostname: 'web' },
      },
    });
  });

  it('ignores replies with another xid or chaddr and garbage, and takes the first matching OFFER', async () => {
    const { net, client } = setup();
    const srv = await scripted(net, (req) => {
      if (req.messageType === DhcpMessageType.DISCOVER) {
        return [
          reply(req, DhcpMessageType.OFFER, { xid: (req.xid + 1) >>> 0, yiaddr: '172.16.0.66' }),
          reply(req, DhcpMessageType.OFFER, { chaddr: '02:00:5e:00:53:02', yiaddr: '172.16.0.67' }),
          reply(req, DhcpMessageType.OFFER, { yiaddr: '172.16.0.21' }),
          reply(req, DhcpMessageType.OFFER, { yiaddr: '172.16.0.22' }),
        ];
      }
      return [
        reply(req, DhcpMessageType.ACK, { xid: (req.xid + 7) >>> 0, yiaddr: '172.16.0.66' }),
        reply(req, DhcpMessageType.ACK, { yiaddr: req.options.requestedIp ?? '0.0.0.0' }),
      ];
    });
    void srv.socket.send(Buffer.from('garbage'), 68, '255.255.255.255');
    const lease = await client.acquire({ timeoutMs: 5000 });
    expect(lease.address).toBe('172.16.0.21');
    expect(
      srv.requests.filter((r) => r.msg.messageType === DhcpMessageType.REQUEST)[0]?.msg.options.requestedIp,
    ).toBe('172.16.0.21');
  });

  it('retransmits DISCOVER (same xid) until an OFFER comes', async () => {
    const { net, client } = setup({ timeouts: fast });
    let discovers = 0;
    const srv = await scripted(net, (req) => {
      if (req.messageType === DhcpMessageType.DISCOVER)
        return ++discovers < 3 ? [] : [reply(req, DhcpMessageType.OFFER)];
      return [reply(req, DhcpMessageType.ACK)];
    });
    await client.acquire({ timeoutMs: 10_000 });
    const xids = srv.requests
      .filter((r) => r.msg.messageType === DhcpMessageType.DISCOVER)
      .map((r) => r.msg.xid);
    expect(xids.length).toBeGreaterThanOrEqual(3);
    expect(new Set(xids).size).toBe(1);
  });

  it('starts over with a new xid after a NAK', async () => {
    const { net, client } = setup();
    let naks = 0;
    const srv = await scripted(net, (req) => {
      if (req.messageType === DhcpMessageType.DISCOVER) return [reply(req, DhcpMessageType.OFFER)];
      return naks++ === 0
        ? [reply(req, DhcpMessageType.NAK, { yiaddr: '0.0.0.0' })]
        : [reply(req, DhcpMessageType.ACK)];
    });
    expect((await client.acquire({ timeoutMs: 10_000 })).address).toBe('172.16.0.20');
    const seq = srv.requests
      .map((r) => `${DhcpMessageType.DISCOVER === r.msg.messageType ? 'D' : 'R'}`)
      .join('');
    expect(seq).toMatch(/^D+R+D+R+$/);
    expect(new Set(srv.requests.map((r) => r.msg.xid)).size).toBe(2);
  });

  it('ignores an ACK from a server it did not choose', async () => {
    const { net, client } = setup();
    const srv = await scripted(net, (req) =>
      req.messageType === DhcpMessageType.DISCOVER
        ? [reply(req, DhcpMessageType.OFFER)]
        : [
            reply(req, DhcpMessageType.ACK, {
              yiaddr: '172.16.0.99',
              options: { ...serverOptions, serverId: '172.16.0.2' },
            }),
            reply(req, DhcpMessageType.ACK),
          ],
    );
    expect((await client.acquire({ timeoutMs: 5000 })).address).toBe('172.16.0.20');
    expect(srv.requests.map((r) => r.msg.messageType)).toContain(DhcpMessageType.REQUEST);
  });

  it('times out with one line naming the interface and what it sent and heard', async () => {
    const { net, client } = setup();
    await scripted(net, (req) =>
      req.messageType === DhcpMessageType.DISCOVER ? [reply(req, DhcpMessageType.OFFER, { xid: 1 })] : [],
    );
    const err = await client.acquire({ timeoutMs: 1000 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(DhcpTimeoutError);
    expect(err).toBeInstanceOf(DhcpClientError);
    expect(err?.message).toMatch(
      /^vxlan0: no DHCP lease within 1000 ms: sent [1-9]\d* DISCOVER; heard 0 OFFER, 0 ACK, 0 NAK(; ignored \d+ replies for other transactions)?; no OFFER: either the server has no free address \(pool exhausted: see its knet_dhcp_pool_addresses\{state="free"\} and knet_dhcp_pool_exhausted_total metrics and its "no address to offer" warning\) or it is unreachable over vxlan0 \(VXLAN port and VNI, the flood entry to its pod IP, knet_dhcp_packets_total\{direction="received"\} not growing\)$/,
    );
    expect(err?.message).not.toContain('\n');
  });

  it('stops when the signal aborts', async () => {
    const { client } = setup();
    const ac = new AbortController();
    const p = client.acquire({ timeoutMs: 60_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toThrow(/^vxlan0: no DHCP lease before abort: sent \d+ DISCOVER/);
  });

  describe('with a lease', () => {
    const lease: DhcpLease = {
      ...LEASE_FROM_SERVER,
      leaseTimeSec: 600,
      t1: 300,
      t2: 525,
      obtainedAt: 0,
    };
    it('renews by unicast to the server (ciaddr, no BROADCAST flag, no server id)', async () => {
      const s = setup();
      s.host.addresses.add('172.16.0.20');
      const srv = await scripted(s.net, (req) => [
        reply(req, DhcpMessageType.ACK, {
          ciaddr: req.ciaddr,
          options: { ...serverOptions, leaseTimeSec: 900 },
        }),
      ]);
      const renewed = await s.client.renew(lease, { timeoutMs: 5000 });
      expect(renewed).toMatchObject({ address: '172.16.0.20', leaseTimeSec: 900, t1: 450, t2: 787 });
      expect(renewed.obtainedAt).toBeGreaterThan(0);
      expect(srv.requests[0]).toMatchObject({
        to: SERVER,
        flags: 0,
        msg: { messageType: DhcpMessageType.REQUEST, ciaddr: '172.16.0.20' },
      });
      expect(srv.requests[0]!.msg.options.serverId).toBeUndefined();
      expect(srv.requests[0]!.msg.options.requestedIp).toBeUndefined();
    });

    it('rebinds by broadcast; a NAK ends the lease with DhcpNakError', async () => {
      const s = setup();
      s.host.addresses.add('172.16.0.20');
      const srv = await scripted(s.net, (req) => [reply(req, DhcpMessageType.NAK, { yiaddr: '0.0.0.0' })]);
      const err = await s.client.rebind(lease, { timeoutMs: 5000 }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(DhcpNakError);
      expect(err?.message).toBe(`vxlan0: server ${SERVER} refused rebind of 172.16.0.20: wrong network`);
      expect(srv.requests[0]?.to).toBe('255.255.255.255');
    });

    it('renew times out with one line', async () => {
      const s = setup();
      await expect(s.client.renew(lease, { timeoutMs: 100 })).rejects.toThrow(
        /^vxlan0: no answer to renew of 172.16.0.20 within 100 ms: sent \d+ REQUEST; heard 0 OFFER, 0 ACK, 0 NAK$/,
      );
    });

    it('releases by unicast to the server, and declines by broadcast', async () => {
      const s = setup();
      s.host.addresses.add('172.16.0.20');
      const srv = await scripted(s.net, () => []);
      await s.client.release(lease);
      await s.client.decline(lease);
      while (srv.requests.length < 2) await new Promise((r) => setTimeout(r, 5));
      expect(
        srv.requests.map((r) => [r.msg.messageType, r.to, r.msg.ciaddr, r.msg.options.serverId]),
      ).toEqual([
        [DhcpMessageType.RELEASE, SERVER, '172.16.0.20', SERVER],
        [DhcpMessageType.DECLINE, '255.255.255.255', '0.0.0.0', SERVER],
      ]);
      expect(srv.requests[1]!.msg.options.requestedIp).toBe('172.16.0.20');
    });
  });

  it('fails with one line when it cannot bind port 68', async () => {
    const { client } = setup({
      socketFactory: () => ({
        bind: async () => {
          throw new Error('cannot bind UDP 0.0.0.0:68: bind EACCES 0.0.0.0:68');
        },
        send: async () => undefined,
        onMessage: () => undefined,
        close: async () => undefined,
      }),
    });
    await expect(client.acquire()).rejects.toThrow(
      'vxlan0: cannot bind UDP 0.0.0.0:68: bind EACCES 0.0.0.0:68',
    );
  });

  it('refuses a bad MAC or client id', () => {
    expect(() => new DhcpClient({ interface: 'x', mac: 'zz' })).toThrow(/invalid MAC/);
    expect(() => new DhcpClient({ interface: 'x', mac: MAC, clientId: '1' })).toThrow(/clientId/);
  });
});

describe('installBroadcastRoute', () => {
  it('adds 255.255.255.255/32 dev <iface> (idempotent)', async () => {
    const ip = new FakeIpRoute();
    await ip.addVxlan('vxlan0', { id: 42, dstPort: 4789 });
    await ip.setLink('vxlan0', { up: true });
    await installBroadcastRoute(ip, 'vxlan0');
    await installBroadcastRoute(ip, 'vxlan0');
    const routes = (await ip.listRoutes()).filter((r) => r.dst === '255.255.255.255');
    expect(routes).toMatchObject([{ dst: '255.255.255.255', dev: 'vxlan0' }]);
  });
});
