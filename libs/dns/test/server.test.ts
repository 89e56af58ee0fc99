// DnsServer against real dnsmasq upstreams on loopback: forwarding, split forwarding, local names,
// TCP, truncation and EDNS — once with the fast UDP path and once with the public dgram API.
import { freePort } from '@knet/testing';
import { DnsServer } from '../src';
import { Packet, addresses, query, startDnsmasq, type Addr, type Answer, type Dnsmasq } from './helpers';

jest.setTimeout(60_000);

const BIG = ['a', 'b', 'c'].map((c) => c.repeat(250));

describe.each([true, false])('DnsServer with dnsmasq upstreams (fastUdp %s)', (fastUdp) => {
  const net = fastUdp ? '127.0.10' : '127.0.11';
  let up1: Dnsmasq;
  let up2: Dnsmasq;
  let server: DnsServer;
  let addr: Addr;

  beforeAll(async () => {
    [up1, up2] = await Promise.all([
      startDnsmasq('up1', `${net}.1`, [
        '--local=/test/', // NXDOMAIN for unknown names under test
        '--host-record=a.test,10.1.0.1,3600',
        '--host-record=other.test,10.1.0.3,3600',
        '--cname=c.test,a.test',
        '--txt-record=t.test,hello world',
        `--txt-record=big.test,${BIG.join(',')}`,
      ]),
      startDnsmasq('up2', `${net}.2`, [
        '--local=/cluster.local/',
        '--host-record=kube-dns.kube-system.svc.cluster.local,10.96.0.10,3600',
        '--host-record=a.test,10.2.0.1,3600', // same name as up1, other address
      ]),
    ]);
    addr = { address: `${net}.10`, port: await freePort() };
    server = new DnsServer({
      listen: [addr],
      upstreams: [`${up1.address}#${up1.port}`],
      split: [{ domain: 'cluster.local', servers: [`${up2.address}#${up2.port}`] }],
      domain: 'pods.test',
      fastUdp,
    });
    await server.start();
  });

  afterAll(async () => {
    await server?.stop();
    await Promise.all([up1?.stop(), up2?.stop()]);
  });

  it('forwards to the upstream and then answers from the cache', async () => {
    const before = { ...server.stats };
    const first = await query(addr, 'a.test', 'A');
    expect(first.rcode).toBe(0);
    expect(first.packet.header).toMatchObject({ qr: 1, rd: 1, ra: 1 });
    expect(addresses(first)).toEqual(['10.1.0.1']);
    const second = await query(addr, 'A.TEST', 'A', { id: 4321 });
    expect(second.packet.header.id).toBe(4321);
    expect(second.packet.questions[0]!.name).toBe('A.TEST');
    expect(second.packet.header.aa).toBe(0); // from the cache: not authoritative
    expect(addresses(second)).toEqual(['10.1.0.1']);
    expect(server.stats.queriesForwarded - before.queriesForwarded).toBe(1);
    expect(server.stats.queriesCache - before.queriesCache).toBe(1);
  });

  it('relays CNAME chains, TXT records and NXDOMAIN', async () => {
    const c = await query(addr, 'c.test', 'A');
    expect(c.packet.answers.map((r) => r.type)).toEqual([Packet.TYPE.CNAME, Packet.TYPE.A]);
    expect(addresses(c)).toEqual(['10.1.0.1']);
    const t = await query(addr, 't.test', 'TXT');
    expect(t.packet.answers[0]!.data).toEqual(['hello world']);
    const nx = await query(addr, 'missing.test', 'A');
    expect(nx.rcode).toBe(3);
    expect(nx.packet.answers).toHaveLength(0);
  });

  it('sends split domains to their own server', async () => {
    const k = await query(addr, 'kube-dns.kube-system.svc.cluster.local', 'A');
    expect(addresses(k)).toEqual(['10.96.0.10']);
    const nx = await query(addr, 'nothing.default.svc.cluster.local', 'A');
    expect(nx.rcode).toBe(3);
    // up2 also knows a.test, but a.test is not under cluster.local: the answer is up1's
    expect(addresses(await query(addr, 'a.test', 'A'))).toEqual(['10.1.0.1']);
  });

  it('answers local names authoritatively, with PTR, NODATA for other types, and the domain', async () => {
    server.setHosts(
      new Map([
        ['pod-a', ['172.16.0.21']],
        ['pod-b', ['172.16.0.22', '172.16.0.23']],
      ]),
    );
    const a = await query(addr, 'Pod-A', 'A');
    expect(a.packet.header).toMatchObject({ aa: 1, rcode: 0 });
    expect(addresses(a)).toEqual(['172.16.0.21']);
    expect(a.packet.answers[0]!.ttl).toBe(5);
    expect(addresses(await query(addr, 'pod-b.pods.test', 'A')).sort()).toEqual([
      '172.16.0.22',
      '172.16.0.23',
    ]);
    const ptr = await query(addr, '21.0.16.172.in-addr.arpa', 'PTR');
    expect(ptr.packet.header.aa).toBe(1);
    expect(ptr.packet.answers.map((r) => r.domain)).toEqual(['pod-a.pods.test']);
    const aaaa = await query(addr, 'pod-a', 'AAAA');
    expect(aaaa.packet.header).toMatchObject({ aa: 1, rcode: 0 });
    expect(aaaa.packet.answers).toHaveLength(0);
    const tcp = await query(addr, 'pod-a.pods.test', 'A', { tcp: true });
    expect(addresses(tcp)).toEqual(['172.16.0.21']);

    // a lease that goes away: the name is forwarded again (up1 says NXDOMAIN)
    server.setHosts(new Map([['pod-b', ['172.16.0.22']]]));
    expect((await query(addr, 'pod-a.pods.test', 'A')).rcode).toBe(3);
    expect(addresses(await query(addr, 'pod-b', 'A'))).toEqual(['172.16.0.22']);
  });

  it('answers over TCP, forwarding over TCP', async () => {
    const r = await query(addr, 'other.test', 'A', { tcp: true });
    expect(addresses(r)).toEqual(['10.1.0.3']);
    const cached = await query(addr, 'other.test', 'A', { tcp: true });
    expect(addresses(cached)).toEqual(['10.1.0.3']);
  });

  it('relays truncation so the client retries over TCP, where the full answer comes', async () => {
    const truncated = (r: Answer) => {
      expect(r.packet.header.tc).toBe(1);
      expect(r.raw.length).toBeLessThanOrEqual(512);
    };
    const whole = (r: Answer) => {
      expect(r.packet.header.tc).toBe(0);
      expect(r.packet.answers[0]!.data).toEqual(BIG);
    };
    truncated(await query(addr, 'big.test', 'TXT'));
    whole(await query(addr, 'big.test', 'TXT', { tcp: true }));
    // now cached (from TCP); a plain UDP client still gets TC, never more than 512 bytes
    truncated(await query(addr, 'big.test', 'TXT'));
    // an EDNS client with room for it gets it over UDP
    whole(await query(addr, 'big.test', 'TXT', { edns: true }));
  });

  it('keeps EDNS, DO and plain answers apart and answers EDNS with OPT', async () => {
    const before = server.stats.queriesForwarded;
    await query(addr, 'a.test', 'A'); // cached earlier (plain)
    const edns = await query(addr, 'a.test', 'A', { edns: true });
    const dnssec = await query(addr, 'a.test', 'A', { dnssecOk: true });
    expect(edns.packet.additionals.map((r) => r.type)).toEqual([Packet.TYPE.EDNS]);
    expect(dnssec.packet.additionals.map((r) => r.type)).toEqual([Packet.TYPE.EDNS]);
    expect(addresses(edns)).toEqual(['10.1.0.1']);
    expect(server.stats.queriesForwarded - before).toBe(2);
    await query(addr, 'a.test', 'A', { edns: true });
    expect(server.stats.queriesForwarded - before).toBe(2);
  });
});
