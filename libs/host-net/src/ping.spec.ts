import { fakeVethNet } from '../test/fixtures/lab-net';
import { CommandNotFoundError } from './errors';
import { FakePinger } from './fakes/fake-pinger';
import { FakeCommandRunner } from './fakes/fake-runner';
import { ExecPinger, pingArgs, type PingOptions, type PingResult } from './ping';

describe('ExecPinger', () => {
  it('runs one echo request per try until one is answered', async () => {
    let calls = 0;
    const runner = new FakeCommandRunner(() => (++calls < 3 ? { exitCode: 1, stderr: '' } : {}));
    const result = await new ExecPinger(runner).ping('172.16.0.1', {
      device: 'vxlan0',
      count: 5,
      timeoutSec: 2,
    });
    expect(result).toEqual({ answered: true, attempts: 3 });
    expect(runner.commandLines()).toEqual(Array(3).fill('ping -n -q -c 1 -W 2 -I vxlan0 172.16.0.1'));
  });

  it('reports the last reason when no try is answered', async () => {
    const runner = new FakeCommandRunner(() => ({
      exitCode: 2,
      stderr: 'ping: connect: Network is unreachable\n',
    }));
    expect(await new ExecPinger(runner).ping('203.0.113.1', { count: 2 })).toEqual({
      answered: false,
      attempts: 2,
      error: 'ping: connect: Network is unreachable',
    });
    expect(
      await new ExecPinger(new FakeCommandRunner(() => ({ exitCode: 1, stderr: '' }))).ping('192.0.2.9'),
    ).toEqual({
      answered: false,
      attempts: 1,
      error: 'no answer',
    });
  });

  it('throws when ping is missing, and rejects bad options before running', async () => {
    const missing = new FakePinger({ installed: false });
    await expect(missing.ping('192.0.2.1')).rejects.toBeInstanceOf(CommandNotFoundError);
    await expect(missing.ping('192.0.2.1')).rejects.toThrow(
      'ping: command not found (install the Debian package "iputils-ping"); needed for: ping -n -q -c 1 -W 1 192.0.2.1',
    );
    expect(() => pingArgs('192.0.2.1', { device: 'no such device name' })).toThrow(TypeError);
    expect(() => pingArgs('192.0.2.1', { timeoutSec: 0.5 })).toThrow(
      'invalid ping timeout 0.5: whole seconds ≥ 1',
    );
  });
});

describe('FakePinger', () => {
  it('answers from remote hosts it was told about', async () => {
    const ping = new FakePinger().answer('192.0.2.2');
    expect((await ping.ping('192.0.2.2')).answered).toBe(true);
    expect((await ping.ping('192.0.2.3', { count: 3 })).attempts).toBe(3);
    ping.silence('192.0.2.2');
    expect((await ping.ping('192.0.2.2')).answered).toBe(false);
    expect(ping.sent.length).toBe(5);
  });

  it.each<[string, string, PingOptions, Omit<PingResult, 'attempts'>]>([
    ['loopback', '127.0.0.1', {}, { answered: true }],
    ['its own address', '192.0.2.1', {}, { answered: true }],
    ['its own address from its device', '192.0.2.1', { device: 'v0' }, { answered: true }],
    [
      'its own address from another device',
      '192.0.2.1',
      { device: 'v1' },
      { answered: false, error: 'no answer' },
    ],
    ['a neighbour that answers', '192.0.2.2', {}, { answered: true }],
    ['a neighbour that answers only over v1', '192.0.2.3', {}, { answered: false, error: 'no answer' }],
    ['a silent neighbour', '192.0.2.9', {}, { answered: false, error: 'no answer' }],
    ['no route', '203.0.113.1', {}, { answered: false, error: 'ping: connect: Network is unreachable' }],
    [
      'no route, IPv4 from a device (tried on-link)',
      '203.0.113.1',
      { device: 'v0' },
      { answered: false, error: 'no answer' },
    ],
    [
      'no route, IPv6 from a device',
      '2001:db8:9::1',
      { device: 'v0' },
      { answered: false, error: 'ping: connect: Network is unreachable' },
    ],
    ['IPv6 own address', '2001:db8::1', {}, { answered: true }],
    [
      'a missing device',
      '192.0.2.2',
      { device: 'nosuch' },
      { answered: false, error: 'ping: SO_BINDTODEVICE nosuch: No such device' },
    ],
    [
      'a down device',
      '192.0.2.2',
      { device: 'dn0' },
      { answered: false, error: 'ping: connect: Network is unreachable' },
    ],
  ])('like the kernel: %s', async (_name, address, options, want) => {
    const net = await fakeVethNet();
    await net.ip.addBridge('dn0');
    const ping = new FakePinger({ ip: net.ip }).answer('192.0.2.2').answer('192.0.2.3', { device: 'v1' });
    expect(await ping.ping(address, options)).toEqual({ attempts: 1, ...want });
  });

  it('is the ping of createFakeHostNet', async () => {
    const net = await fakeVethNet();
    expect((await net.ping.ping('192.0.2.1')).answered).toBe(true);
    await net.ip.setLink('lo', { up: false });
    expect(await net.ping.ping('192.0.2.1')).toMatchObject({
      answered: false,
      error: 'ping: connect: Network is unreachable',
    });
  });
});
