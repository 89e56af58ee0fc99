/**
 * Finding the gateway pod (a DNS server on loopback stands in for the cluster DNS) and checking
 * that it answers (`ping` through a FakeCommandRunner).
 */
import type { AddressInfo } from 'node:net';
import DNS from 'dns2';
import { CommandNotFoundError, ExecPinger, FakeCommandRunner, type CommandRunner } from '@knet/host-net';
import { GatewayUnreachableError, gatewayAnswers, resolveGateway } from './gateway-locate';

const { Packet } = DNS;
const NAME = 'pod-gateway.vpn.svc.cluster.local';

describe('resolveGateway', () => {
  let dns: DNS.UDPServer;
  let server: string;
  /** How the cluster DNS answers: an RCODE and A records, or silence. */
  let answer: { rcode: number; a: string[] } | 'silence';
  const questions: string[] = [];

  beforeAll(async () => {
    dns = DNS.createUDPServer((request, send) => {
      const q = request.questions[0] as DNS.Packet.Question;
      questions.push(`${q.name} ${q.type}`);
      if (answer === 'silence') return;
      const response = Packet.createResponseFromRequest(request);
      response.header.rcode = answer.rcode;
      for (const address of answer.a)
        response.answers.push({
          name: q.name,
          type: Packet.TYPE.A,
          class: Packet.CLASS.IN,
          ttl: 5,
          address,
        } as DNS.Packet.Resource);
      send(response);
    });
    await dns.listen(0, '127.0.0.1');
    server = `127.0.0.1:${(dns.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => dns.close(() => resolve())));
  beforeEach(() => {
    questions.length = 0;
  });

  it("asks the cluster DNS (not the pod's resolv.conf) for the A record of the name", async () => {
    answer = { rcode: 0, a: ['192.0.2.10'] };
    expect(await resolveGateway(NAME, [server])).toBe('192.0.2.10');
    expect(questions).toEqual([`${NAME} ${Packet.TYPE.A}`]);
  });

  it('an address is taken as it is, without asking', async () => {
    expect(await resolveGateway('192.0.2.11', [server])).toBe('192.0.2.11');
    expect(await resolveGateway('192.0.2.11', [])).toBe('192.0.2.11');
    expect(questions).toEqual([]);
  });

  const hint = {
    gone: 'is the gateway pod running, and its headless Service selecting it?',
    wrongServer: 'the server does not resolve it: is K8S_DNS_IPS the cluster DNS?',
    unreachable: 'is the cluster DNS reachable from the pod network?',
  };
  it.each([
    ['NXDOMAIN', { rcode: 3, a: [] }, 'ENOTFOUND', hint.gone],
    ['no A record', { rcode: 0, a: [] }, 'ENODATA', hint.gone],
    ['SERVFAIL', { rcode: 2, a: [] }, 'ESERVFAIL', hint.wrongServer],
    ['REFUSED', { rcode: 5, a: [] }, 'EREFUSED', hint.wrongServer],
    ['no answer at all', 'silence' as const, 'ETIMEOUT', hint.unreachable],
  ])('%s: one line with the name, the server, the code and what to check', async (_what, a, code, h) => {
    answer = a;
    await expect(resolveGateway(NAME, [server], { timeoutMs: 200, tries: 1 })).rejects.toThrow(
      new GatewayUnreachableError(`cannot resolve GATEWAY_NAME ${NAME} at ${server}: ${code}; ${h}`),
    );
  });

  it.each([
    [
      '',
      [],
      'GATEWAY_NAME is empty: set it (or the webhook\'s "gateway" env var) to the gateway pod\'s DNS name',
    ],
    [
      '2001:db8::10',
      ['10.96.0.10'],
      'GATEWAY_NAME 2001:db8::10: the overlay runs over IPv4; give an IPv4 address or a name',
    ],
    [
      NAME,
      [],
      `cannot resolve GATEWAY_NAME ${NAME}: K8S_DNS_IPS is empty (set it to the cluster DNS service IP, e.g. 10.96.0.10)`,
    ],
  ])('%j with DNS servers %j: refused without asking', async (name, servers, message) => {
    await expect(resolveGateway(name, servers)).rejects.toThrow(new GatewayUnreachableError(message));
    expect(questions).toEqual([]);
  });
});

describe('gatewayAnswers', () => {
  const PING = 'ping -n -q -c 1 -W 1 -I vxlan0 172.16.0.1';
  /** A runner whose pings get `replies` in turn (true: a reply; false: exit 1, as iputils without one). */
  const pinging = (...replies: boolean[]) =>
    new FakeCommandRunner(() => (replies.shift() ? {} : { exitCode: 1, stderr: '' }));

  it.each([
    ['the first ping is answered', [true], 3, true, 1],
    ['the second is', [false, true], 3, true, 2],
    ['none of the tries', [false, false, false], 3, false, 3],
    ['one try by default', [false, true], undefined, false, 1],
  ])('%s', async (_what, replies, tries, answered, pings) => {
    const runner = pinging(...replies);
    expect(await gatewayAnswers({ ping: new ExecPinger(runner) }, '172.16.0.1', tries)).toBe(answered);
    expect(runner.commandLines()).toEqual(Array(pings).fill(PING));
  });

  it('a ping that cannot even start (no vxlan0) is no answer', async () => {
    const runner = new FakeCommandRunner(() => ({
      exitCode: 2,
      stderr: 'ping: SO_BINDTODEVICE vxlan0: No such device',
    }));
    expect(await gatewayAnswers({ ping: new ExecPinger(runner) }, '172.16.0.1')).toBe(false);
    expect(runner.commandLines()).toEqual([PING]);
  });

  it.each([
    [
      'ping missing from the image',
      new CommandNotFoundError('ping', { command: ['ping'], exitCode: 127, stderr: '' }),
    ],
    ['anything but a failed command', new TypeError('runner broke')],
  ])('%s: thrown, not taken for "no answer"', async (_what, error) => {
    const runner: CommandRunner = {
      run: async () => {
        throw error;
      },
    };
    await expect(gatewayAnswers({ ping: new ExecPinger(runner) }, '172.16.0.1', 3)).rejects.toBe(error);
  });
});
