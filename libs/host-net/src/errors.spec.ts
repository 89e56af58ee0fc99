import {
  classifyStderr,
  CommandError,
  CommandNotFoundError,
  formatCommandLine,
  oneLine,
  OutputParseError,
  wrappedCommandNotFound,
} from './errors';

describe('CommandError', () => {
  it('names the command line, exit code and trimmed stderr in one line', () => {
    const err = new CommandError({
      command: ['ip', '-4', 'addr', 'add', '192.0.2.1/24', 'dev', 'eth0'],
      exitCode: 2,
      stderr: 'Error: ipv4: Address already assigned.\n',
    });
    expect(err.message).toBe(
      'ip -4 addr add 192.0.2.1/24 dev eth0 failed (exit 2): Error: ipv4: Address already assigned.',
    );
    expect(err).toMatchObject({
      name: 'CommandError',
      kind: 'exists',
      exitCode: 2,
      stderr: 'Error: ipv4: Address already assigned.',
    });
    expect(err).toBeInstanceOf(Error);
  });

  it('folds multi-line stderr and quotes odd arguments', () => {
    const err = new CommandError({
      command: ['iptables-restore', '-w', '5', '--noflush'],
      exitCode: 4,
      stderr:
        'iptables-restore v1.8.9 (nf_tables): \nline 2: CHAIN_DEL failed (Device or resource busy): chain KNT-FWD\n',
    });
    expect(err.message).toBe(
      'iptables-restore -w 5 --noflush failed (exit 4): iptables-restore v1.8.9 (nf_tables):; line 2: CHAIN_DEL failed (Device or resource busy): chain KNT-FWD',
    );
    expect(formatCommandLine(['sh', '-c', "echo 'hi there'", ''])).toBe(`sh -c 'echo '\\''hi there'\\''' ''`);
  });

  it('describes signals and timeouts', () => {
    expect(new CommandError({ command: ['sleep', '9'], signal: 'SIGKILL' }).message).toBe(
      'sleep 9 failed (killed by SIGKILL)',
    );
    const t = new CommandError({
      command: ['sleep', '9'],
      timedOut: true,
      signal: 'SIGTERM',
      timeoutMs: 60_000,
    });
    expect(t.message).toBe('sleep 9 failed (killed by SIGTERM after 60 s (time limit))');
    expect(t.kind).toBe('timeout');
    expect(new CommandError({ command: ['sleep', '9'], timedOut: true }).message).toBe(
      'sleep 9 failed (killed by SIGTERM (time limit))',
    );
  });

  it('truncates very long stderr', () => {
    expect(oneLine('x'.repeat(1000)).length).toBe(600);
  });
});

describe('CommandNotFoundError', () => {
  it.each([
    ['ip', 'iproute2'],
    ['bridge', 'iproute2'],
    ['iptables', 'iptables'],
    ['iptables-restore', 'iptables'],
    ['ip6tables-restore', 'iptables'],
    ['wg', 'wireguard-tools'],
    ['wireguard-go', 'wireguard-go'],
    ['sysctl', 'procps'],
    ['/usr/sbin/ip', 'iproute2'],
  ])('names %s and its Debian package %s', (binary, pkg) => {
    const err = new CommandNotFoundError(binary, { command: [binary, 'x'] });
    expect(err.message).toBe(
      `${binary}: command not found (install the Debian package "${pkg}"); needed for: ${binary} x`,
    );
    expect(err).toMatchObject({
      binary,
      debianPackage: pkg,
      kind: 'command-not-found',
      name: 'CommandNotFoundError',
    });
    expect(err).toBeInstanceOf(CommandError);
  });

  it('falls back to a PATH hint for unknown binaries', () => {
    expect(new CommandNotFoundError('frob', { command: ['frob'] }).message).toBe(
      'frob: command not found (install it or fix PATH); needed for: frob',
    );
  });
});

describe('classifyStderr', () => {
  it.each([
    ['RTNETLINK answers: File exists', 'exists'],
    ['Error: ipv4: Address already assigned.', 'exists'],
    ['Error: ipv6: address already assigned.', 'exists'],
    ['Error: A VXLAN device with the specified VNI already exists.', 'exists'],
    ['RTNETLINK answers: No such process', 'not-found'],
    ['RTNETLINK answers: No such file or directory', 'not-found'],
    ['Error: ipv4: Address not found.', 'not-found'],
    ['Error: FIB table does not exist.', 'not-found'],
    ['iptables: Bad rule (does a matching rule exist in that chain?).', 'not-found'],
    ['sysctl: cannot stat /proc/sys/net/ipv4/nosuch: No such file or directory', 'not-found'],
    ['Cannot find device "eth9"', 'no-device'],
    ['Device "eth9" does not exist.', 'no-device'],
    ['Unable to access interface: No such device', 'no-device'],
    ['RTNETLINK answers: Operation not permitted', 'permission'],
    ['Error: Nexthop has invalid gateway.', 'other'],
    ['', 'other'],
  ])('%s → %s', (stderr, kind) => {
    expect(classifyStderr(stderr)).toBe(kind);
  });
});

describe('wrappedCommandNotFound', () => {
  it.each([
    ['exec of "wg" failed: No such file or directory', 'wg'],
    ['nsenter: failed to execute wg: No such file or directory', 'wg'],
    ['unshare: failed to execute wireguard-go: No such file or directory', 'wireguard-go'],
    ['exec of "wg" failed: Permission denied', undefined],
    ['Cannot find device "x"', undefined],
  ])('%s → %s', (stderr, binary) => {
    expect(wrappedCommandNotFound(stderr)).toBe(binary);
  });
});

it('OutputParseError is one line', () => {
  expect(new OutputParseError('ip -j link show', 'bad\nthing').message).toBe(
    'could not parse the output of ip -j link show: bad; thing',
  );
});
