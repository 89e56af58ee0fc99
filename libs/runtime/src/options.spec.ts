import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import {
  addOptions,
  CleanExit,
  createProgram,
  formatDuration,
  logLevelOption,
  parseDuration,
  parseOptions,
  schemas,
  UsageError,
} from './index';

type Row = [input: string, expected: unknown];
type BadRow = [input: string, message: string];

function ok(schema: z.ZodType, input: string): unknown {
  const r = schema.safeParse(input);
  if (!r.success)
    throw new Error(`expected ${JSON.stringify(input)} to parse: ${r.error.issues[0]?.message}`);
  return r.data;
}

function bad(schema: z.ZodType, input: string): string {
  const r = schema.safeParse(input);
  if (r.success) throw new Error(`expected ${JSON.stringify(input)} to fail, got ${JSON.stringify(r.data)}`);
  return r.error.issues[0]?.message ?? '';
}

describe('schemas', () => {
  describe('duration', () => {
    const schema = schemas.duration();
    it.each<Row>([
      ['500ms', 500],
      ['10s', 10_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['1h30m', 5_400_000],
      ['1.5s', 1500],
      ['.5s', 500],
      [' 2m ', 120_000],
      ['0', 0],
      ['0s', 0],
    ])('%p → %p ms', (input, expected) => {
      expect(ok(schema, input)).toBe(expected);
    });
    it.each(['abc', '10', '-1s', '10sec', '1d', '', 's', '1h 30m', '1.2.3s'])('rejects %p', (input) => {
      expect(bad(schema, input)).toBe('must be a duration like 10s');
    });
    it('applies bounds and names them as durations', () => {
      const bounded = schemas.duration({ min: 1000, max: 3_600_000 });
      expect(bad(bounded, '500ms')).toBe('must be at least 1s');
      expect(bad(bounded, '2h')).toBe('must be at most 1h');
      expect(ok(bounded, '1s')).toBe(1000);
    });
    it.each<[number, string]>([
      [0, '0s'],
      [250, '250ms'],
      [10_000, '10s'],
      [5_400_000, '1h30m'],
      [3_723_004, '1h2m3s4ms'],
    ])('formatDuration(%p) = %p and parses back', (ms, text) => {
      expect(formatDuration(ms)).toBe(text);
      expect(parseDuration(text)).toBe(ms);
    });
    it('parseDuration throws a helpful error', () => {
      expect(() => parseDuration('soon')).toThrow(
        'invalid duration "soon": use a number and unit like 500ms, 10s, 5m, 1h',
      );
    });
  });

  describe('port', () => {
    it.each<Row>([
      ['1', 1],
      ['443', 443],
      ['65535', 65535],
      [' 8080 ', 8080],
    ])('%p → %p', (input, expected) => {
      expect(ok(schemas.port(), input)).toBe(expected);
    });
    it.each(['0', '65536', '-1', '80.5', 'http', '', '0x50', '1e3', '123456'])('rejects %p', (input) => {
      expect(bad(schemas.port(), input)).toBe('must be a port number from 1 to 65535');
    });
    it('allows 0 with allowZero', () => {
      expect(ok(schemas.port({ allowZero: true }), '0')).toBe(0);
      expect(bad(schemas.port({ allowZero: true }), '70000')).toBe('must be a port number from 0 to 65535');
    });
  });

  describe('integer', () => {
    it.each<Row>([
      ['1420', 1420],
      ['-3', -3],
      ['+7', 7],
    ])('%p → %p', (input, expected) => {
      expect(ok(schemas.integer(), input)).toBe(expected);
    });
    it.each<BadRow>([
      ['1.5', 'must be an integer'],
      ['abc', 'must be an integer'],
      ['99999999999999999999', 'must be an integer'],
    ])('rejects %p: %p', (input, message) => {
      expect(bad(schemas.integer(), input)).toBe(message);
    });
    it('applies bounds', () => {
      const mtu = schemas.integer({ min: 1280, max: 9000 });
      expect(bad(mtu, '576')).toBe('must be at least 1280');
      expect(bad(mtu, '9001')).toBe('must be at most 9000');
    });
  });

  describe('ipAddress', () => {
    it.each<Row>([
      ['10.0.0.1', '10.0.0.1'],
      ['::1', '::1'],
      ['fd00::1:2', 'fd00::1:2'],
      ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
      [' 192.168.1.1 ', '192.168.1.1'],
    ])('%p → %p', (input, expected) => {
      expect(ok(schemas.ipAddress(), input)).toBe(expected);
    });
    it.each<[string, 4 | 6 | undefined, string]>([
      ['10.0.0.256', undefined, 'must be an IP address'],
      ['example.com', undefined, 'must be an IP address'],
      ['01.2.3.4', undefined, 'must be an IP address'],
      ['10.0.0.0/8', undefined, 'must be an IP address'],
      ['fd00::1', 4, 'must be an IPv4 address'],
      ['10.0.0.1', 6, 'must be an IPv6 address'],
    ])('rejects %p (version %p): %p', (input, version, message) => {
      expect(bad(schemas.ipAddress(version ? { version } : {}), input)).toBe(message);
    });
  });

  describe('cidr', () => {
    it.each([
      '10.0.0.0/8',
      '10.244.1.0/24',
      '0.0.0.0/0',
      '192.168.1.1/32',
      'fd00::/64',
      '::/0',
      '2001:db8::1/128',
    ])('accepts %p', (input) => {
      expect(ok(schemas.cidr(), input)).toBe(input);
    });
    it.each<[string, 4 | 6 | undefined, string]>([
      ['10.0.0.0', undefined, 'must be a CIDR like 10.0.0.0/8 or fd00::/64'],
      ['10.0.0.0/33', undefined, 'must be a CIDR like 10.0.0.0/8 or fd00::/64'],
      ['fd00::/129', undefined, 'must be a CIDR like 10.0.0.0/8 or fd00::/64'],
      ['10.0.0.0/', undefined, 'must be a CIDR like 10.0.0.0/8 or fd00::/64'],
      ['10.0.0.0/8/8', undefined, 'must be a CIDR like 10.0.0.0/8 or fd00::/64'],
      ['10.0.0.0/-1', undefined, 'must be a CIDR like 10.0.0.0/8 or fd00::/64'],
      ['fe80::1%eth0/64', undefined, 'must be a CIDR like 10.0.0.0/8 or fd00::/64'],
      ['host/24', undefined, 'must be a CIDR like 10.0.0.0/8 or fd00::/64'],
      ['fd00::/64', 4, 'must be a CIDR like 10.0.0.0/8'],
      ['10.0.0.0/8', 6, 'must be a CIDR like fd00::/64'],
    ])('rejects %p (version %p)', (input, version, message) => {
      expect(bad(schemas.cidr(version ? { version } : {}), input)).toBe(message);
    });
  });

  describe('hostPort', () => {
    it.each<Row>([
      ['example.com:443', { host: 'example.com', port: 443 }],
      ['10.0.0.1:51820', { host: '10.0.0.1', port: 51820 }],
      ['[fd00::1]:443', { host: 'fd00::1', port: 443 }],
      ['kubernetes.default.svc:6443', { host: 'kubernetes.default.svc', port: 6443 }],
      ['localhost:8080', { host: 'localhost', port: 8080 }],
    ])('%p → %p', (input, expected) => {
      expect(ok(schemas.hostPort(), input)).toEqual(expected);
    });
    it.each<BadRow>([
      ['example.com', 'must be host:port like example.com:443 or [fd00::1]:443'],
      ['example.com:0', 'must be a port number from 1 to 65535'],
      ['example.com:http', 'must be a port number from 1 to 65535'],
      [':443', 'must be host:port like example.com:443 or [fd00::1]:443'],
      ['bad_host:443', 'must be host:port like example.com:443 or [fd00::1]:443'],
      ['-bad.com:443', 'must be host:port like example.com:443 or [fd00::1]:443'],
      ['10.0.0.300:443', 'must be host:port like example.com:443 or [fd00::1]:443'],
      ['fd00::1:443', 'must be host:port; put IPv6 addresses in brackets like [fd00::1]:443'],
      ['[10.0.0.1]:443', 'must be host:port like example.com:443 or [fd00::1]:443'],
      ['[fd00::1]', 'must be host:port like example.com:443 or [fd00::1]:443'],
    ])('rejects %p: %p', (input, message) => {
      expect(bad(schemas.hostPort(), input)).toBe(message);
    });
    it('uses defaultPort for a bare host', () => {
      const schema = schemas.hostPort({ defaultPort: 6443 });
      expect(ok(schema, 'api.example.com')).toEqual({ host: 'api.example.com', port: 6443 });
      expect(ok(schema, '[::1]')).toEqual({ host: '::1', port: 6443 });
      expect(ok(schema, 'api.example.com:443')).toEqual({ host: 'api.example.com', port: 443 });
    });
  });

  describe('existingFile', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'knet-runtime-'));
      writeFileSync(join(dir, 'ca.crt'), 'pem');
      writeFileSync(join(dir, 'locked'), 'x');
      chmodSync(join(dir, 'locked'), 0o000);
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('accepts a readable file and rejects missing paths and directories', () => {
      const schema = schemas.existingFile();
      expect(ok(schema, join(dir, 'ca.crt'))).toBe(join(dir, 'ca.crt'));
      expect(bad(schema, join(dir, 'missing.crt'))).toBe('file does not exist');
      expect(bad(schema, dir)).toBe('must be a file, not a directory or device');
      expect(bad(schema, '')).toBe('must be a file path');
    });

    it('rejects an unreadable file (unless running as root, who can read anything)', () => {
      const msg = schemas.existingFile().safeParse(join(dir, 'locked'));
      const root = process.getuid?.() === 0;
      expect(msg.success).toBe(root);
      if (!msg.success) expect(msg.error.issues[0]?.message).toBe('file is not readable');
    });
  });

  describe('bool', () => {
    it.each<Row>([
      ['true', true],
      ['TRUE', true],
      ['1', true],
      ['yes', true],
      ['Yes', true],
      ['false', false],
      ['0', false],
      ['no', false],
      [' NO ', false],
    ])('%p → %p', (input, expected) => {
      expect(ok(schemas.bool(), input)).toBe(expected);
    });
    it.each(['', 'y', 'on', '2', 'truthy'])('rejects %p', (input) => {
      expect(bad(schemas.bool(), input)).toBe('must be true or false (or 1/0, yes/no)');
    });
  });

  describe('list', () => {
    it.each<Row>([
      ['a,b,c', ['a', 'b', 'c']],
      [' a , b ,, c, ', ['a', 'b', 'c']],
      ['', []],
      ['single', ['single']],
    ])('%p → %p', (input, expected) => {
      expect(ok(schemas.list(), input)).toEqual(expected);
    });
    it('parses each item with the item schema and reports the bad item by position', () => {
      const cidrs = schemas.list(schemas.cidr());
      expect(ok(cidrs, '10.0.0.0/8, fd00::/64')).toEqual(['10.0.0.0/8', 'fd00::/64']);
      const r = cidrs.safeParse('10.0.0.0/8,nope');
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]).toMatchObject({
        path: [1],
        message: 'must be a CIDR like 10.0.0.0/8 or fd00::/64',
      });
      expect(ok(schemas.list(schemas.port()), '80,443')).toEqual([80, 443]);
    });
    it('enforces a minimum count', () => {
      expect(bad(schemas.list(schemas.ipAddress(), { min: 1 }), ' , ')).toBe(
        'must list at least 1 comma-separated value(s)',
      );
    });
  });

  describe('url', () => {
    it.each(['https://example.com', 'http://10.0.0.1:8080/path?q=1', 'https://[fd00::1]:6443'])(
      'accepts %p',
      (input) => {
        expect(ok(schemas.url(), input)).toBe(input);
      },
    );
    it.each<BadRow>([
      ['example.com', 'must be a URL like http://example.com:8443/path'],
      ['', 'must be a URL like http://example.com:8443/path'],
      ['ftp://example.com', 'must be a http or https URL'],
    ])('rejects %p: %p', (input, message) => {
      expect(bad(schemas.url(), input)).toBe(message);
    });
    it('restricts protocols', () => {
      const wss = schemas.url({ protocols: ['wss'] });
      expect(ok(wss, 'wss://relay.example.com/tunnel')).toBe('wss://relay.example.com/tunnel');
      expect(bad(wss, 'https://relay.example.com')).toBe('must be a wss URL');
    });
  });

  describe('logLevel', () => {
    it.each<Row>([
      ['info', 'info'],
      ['DEBUG', 'debug'],
      ['silent', 'silent'],
      ['trace', 'trace'],
    ])('%p → %p', (input, expected) => {
      expect(ok(schemas.logLevel(), input)).toBe(expected);
    });
    it.each(['verbose', '', 'warning'])('rejects %p', (input) => {
      expect(bad(schemas.logLevel(), input)).toBe(
        'must be one of fatal, error, warn, info, debug, trace, silent',
      );
    });
  });
});

function demoProgram() {
  return createProgram({
    name: 'demo',
    description: 'test program',
    version: '0.1.0',
    options: {
      logLevel: logLevelOption,
      keepalive: {
        flag: '--keepalive <duration>',
        env: 'KEEPALIVE',
        description: 'persistent keepalive',
        schema: schemas.duration(),
        default: '25s',
      },
      port: {
        flag: '-p, --listen-port <port>',
        env: 'LISTEN_PORT',
        description: 'WireGuard port',
        schema: schemas.port(),
        default: 51820,
      },
      peers: {
        flag: '--peers <cidrs>',
        env: 'PEERS',
        description: 'peer CIDRs',
        schema: schemas.list(schemas.cidr()),
        default: ['10.0.0.0/8'],
      },
      dryRun: {
        flag: '--dry-run',
        env: 'DRY_RUN',
        description: 'change nothing',
        schema: schemas.bool(),
        default: false,
      },
      kubeconfig: {
        flag: '--kubeconfig <path>',
        env: 'KUBECONFIG',
        description: 'kubeconfig file',
        schema: z.string().optional(),
      },
      token: {
        flag: '--token <token>',
        env: 'JOIN_TOKEN',
        description: 'join token',
        schema: z.string().min(16, 'must be at least 16 characters'),
        secret: true,
      },
    },
  });
}

const argv = (...args: string[]) => ['node', 'demo', ...args];
const TOKEN = 'abcdefghijklmnop';

function captureOutput(program: { command: Command }) {
  const out: string[] = [];
  program.command.configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => out.push(s) });
  return out;
}

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error('expected a UsageError');
}

describe('parseOptions', () => {
  it('returns typed values with precedence flag > env > default', () => {
    const fromDefaults = parseOptions(demoProgram(), argv('--token', TOKEN), {});
    expect(fromDefaults).toEqual({
      logLevel: 'info',
      keepalive: 25_000,
      port: 51820,
      peers: ['10.0.0.0/8'],
      dryRun: false,
      kubeconfig: undefined,
      token: TOKEN,
    });
    // Compile-time: each field has its schema's output type.
    const typed: { keepalive: number; peers: string[]; dryRun: boolean; kubeconfig: string | undefined } =
      fromDefaults;
    expect(typed.keepalive).toBe(25_000);

    const env = {
      KEEPALIVE: '5s',
      LISTEN_PORT: '1000',
      DRY_RUN: 'yes',
      JOIN_TOKEN: TOKEN,
      PEERS: 'fd00::/64',
    };
    expect(parseOptions(demoProgram(), argv(), env)).toMatchObject({
      keepalive: 5000,
      port: 1000,
      dryRun: true,
      peers: ['fd00::/64'],
    });
    expect(
      parseOptions(
        demoProgram(),
        argv('--keepalive=1m', '-p', '2000', '--dry-run', '--peers', '10.1.0.0/16'),
        env,
      ),
    ).toMatchObject({ keepalive: 60_000, port: 2000, dryRun: true, peers: ['10.1.0.0/16'] });
  });

  it('treats an empty env var as unset', () => {
    expect(parseOptions(demoProgram(), argv(), { KEEPALIVE: '', JOIN_TOKEN: TOKEN })).toMatchObject({
      keepalive: 25_000,
    });
  });

  it('reports an invalid flag as one line naming the flag and env var', () => {
    const err = usageError(() =>
      parseOptions(demoProgram(), argv('--keepalive', 'abc', '--token', TOKEN), {}),
    );
    expect(err.message).toBe('--keepalive (KEEPALIVE): must be a duration like 10s, got "abc"');
    expect(err.exitCode).toBe(2);
  });

  it('reports an invalid env var the same way and lists every problem on the one line', () => {
    const err = usageError(() =>
      parseOptions(demoProgram(), argv(), { LISTEN_PORT: '99999', PEERS: '10.0.0.0/8,x', JOIN_TOKEN: TOKEN }),
    );
    expect(err.message).toBe(
      '--listen-port (LISTEN_PORT): must be a port number from 1 to 65535, got "99999"; ' +
        '--peers (PEERS): item 2: must be a CIDR like 10.0.0.0/8 or fd00::/64, got "10.0.0.0/8,x"',
    );
    expect(err.message).not.toContain('\n');
  });

  it('says a required option is missing and never echoes a secret value', () => {
    expect(usageError(() => parseOptions(demoProgram(), argv(), {})).message).toBe(
      '--token (JOIN_TOKEN): required',
    );
    const err = usageError(() => parseOptions(demoProgram(), argv(), { JOIN_TOKEN: 'short-secret' }));
    expect(err.message).toBe('--token (JOIN_TOKEN): must be at least 16 characters');
    expect(err.message).not.toContain('short-secret');
  });

  it('turns commander errors into one-line UsageErrors', () => {
    const cases: [string[], string][] = [
      [['--bogus'], "unknown option '--bogus'"],
      [['--keepalve', '5s'], "unknown option '--keepalve' (Did you mean --keepalive?)"],
      [['--keepalive'], "option '--keepalive <duration>' argument missing"],
      [['extra'], 'too many arguments. Expected 0 arguments but got 1.'],
    ];
    for (const [args, message] of cases) {
      const program = demoProgram();
      const out = captureOutput(program);
      const err = usageError(() => parseOptions(program, argv(...args), { JOIN_TOKEN: TOKEN }));
      expect(err.message).toBe(message);
      expect(out).toEqual([]);
    }
  });

  it('prints --help with each env var and default, then throws CleanExit', () => {
    const program = demoProgram();
    const out = captureOutput(program);
    expect(() => parseOptions(program, argv('--help'), {})).toThrow(CleanExit);
    const help = out.join('').replace(/\s+/g, ' ');
    expect(help).toContain('Usage: demo [options]');
    expect(help).toContain('--keepalive <duration> persistent keepalive (env: KEEPALIVE, default: "25s")');
    expect(help).toContain('-p, --listen-port <port> WireGuard port (env: LISTEN_PORT, default: 51820)');
    expect(help).toContain('--peers <cidrs> peer CIDRs (env: PEERS, default: "10.0.0.0/8")');
    expect(help).toContain('--dry-run change nothing (env: DRY_RUN, default: false)');
    expect(help).toContain('--kubeconfig <path> kubeconfig file (env: KUBECONFIG)');
    expect(help).toContain('--token <token> join token (env: JOIN_TOKEN, required)');
    expect(help).toContain('(env: LOG_LEVEL, default: "info")');
    expect(help).toContain('Exit codes: 0 success');
  });

  it('prints --version and throws CleanExit', () => {
    const program = demoProgram();
    const out = captureOutput(program);
    expect(() => parseOptions(program, argv('--version'), {})).toThrow(CleanExit);
    expect(out).toEqual(['0.1.0\n']);
  });

  it('works on an existing commander command and checks the specs', () => {
    const command = new Command('sub').option('--legacy', 'added directly');
    const program = addOptions(command, {
      mtu: { flag: '--mtu <n>', description: 'MTU', schema: schemas.integer({ min: 1280 }), default: 1420 },
    });
    expect(parseOptions(program, argv('--mtu', '1500'), {})).toEqual({ mtu: 1500 });
    expect(
      usageError(() =>
        parseOptions(addOptions(new Command('x'), { mtu: program.specs.mtu }), argv('--mtu', '1'), {}),
      ).message,
    ).toBe('--mtu: must be at least 1280, got "1"');
    const spec = { description: 'd', schema: z.string() };
    expect(() => addOptions(new Command('x'), { a: { ...spec, flag: '--a <v>', env: 'NOT-VALID' } })).toThrow(
      /env var name "NOT-VALID" is not valid/,
    );
    expect(() => addOptions(new Command('x'), { a: { ...spec, flag: '-a <v>' } })).toThrow(
      /needs a --long name/,
    );
    expect(() => addOptions(new Command('x'), { a: { ...spec, flag: '--no-color' } })).toThrow(
      /--no-\* flag/,
    );
  });
});
