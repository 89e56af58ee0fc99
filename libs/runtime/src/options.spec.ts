import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import {
  addOptions,
  CleanExit,
  DEFAULT_EXIT_CODES,
  createProgram,
  daemonOptions,
  formatDuration,
  kubeconfigOption,
  logLevelOption,
  metricsOptions,
  type OptionSpecs,
  type OptionsProgram,
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

/**
 * The table tests of one schema, a test a row: each input of `parses` gives its value, each of
 * `rejects` fails with its message.
 */
function schemaTable(schema: z.ZodType, rows: { parses?: Row[]; rejects?: BadRow[] }): void {
  if (rows.parses?.length) {
    it.each(rows.parses)('%p → %p', (input, expected) => {
      expect(ok(schema, input)).toEqual(expected);
    });
  }
  if (rows.rejects?.length) {
    it.each(rows.rejects)('rejects %p: %p', (input, message) => {
      expect(bad(schema, input)).toBe(message);
    });
  }
}

/** Rows of inputs that each parse to themselves. */
const unchanged = (inputs: string[]): Row[] => inputs.map((input) => [input, input]);
/** Rows of inputs that all fail with one message. */
const allFail = (message: string, inputs: string[]): BadRow[] => inputs.map((input) => [input, message]);

describe('schemas', () => {
  describe('duration', () => {
    schemaTable(schemas.duration(), {
      parses: [
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
      ],
      rejects: allFail('must be a duration like 10s', [
        'abc',
        '10',
        '-1s',
        '10sec',
        '1d',
        '',
        's',
        '1h 30m',
        '1.2.3s',
      ]),
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
    schemaTable(schemas.port(), {
      parses: [
        ['1', 1],
        ['443', 443],
        ['65535', 65535],
        [' 8080 ', 8080],
      ],
      rejects: allFail('must be a port number from 1 to 65535', [
        '0',
        '65536',
        '-1',
        '80.5',
        'http',
        '',
        '0x50',
        '1e3',
        '123456',
      ]),
    });
    it('allows 0 with allowZero', () => {
      expect(ok(schemas.port({ allowZero: true }), '0')).toBe(0);
      expect(bad(schemas.port({ allowZero: true }), '70000')).toBe('must be a port number from 0 to 65535');
    });
  });

  describe('integer', () => {
    schemaTable(schemas.integer(), {
      parses: [
        ['1420', 1420],
        ['-3', -3],
        ['+7', 7],
      ],
      rejects: allFail('must be an integer', ['1.5', 'abc', '99999999999999999999']),
    });
    it('applies bounds', () => {
      const mtu = schemas.integer({ min: 1280, max: 9000 });
      expect(bad(mtu, '576')).toBe('must be at least 1280');
      expect(bad(mtu, '9001')).toBe('must be at most 9000');
    });
  });

  describe('ipAddress', () => {
    schemaTable(schemas.ipAddress(), {
      parses: [
        ...unchanged(['10.0.0.1', '::1', 'fd00::1:2', '::ffff:192.0.2.1']),
        [' 192.168.1.1 ', '192.168.1.1'],
      ],
      rejects: allFail('must be an IP address', ['10.0.0.256', 'example.com', '01.2.3.4', '10.0.0.0/8']),
    });
  });

  describe('cidr', () => {
    schemaTable(schemas.cidr(), {
      parses: unchanged([
        '10.0.0.0/8',
        '10.244.1.0/24',
        '0.0.0.0/0',
        '192.168.1.1/32',
        'fd00::/64',
        '::/0',
        '2001:db8::1/128',
      ]),
      rejects: allFail('must be a CIDR like 10.0.0.0/8 or fd00::/64', [
        '10.0.0.0',
        '10.0.0.0/33',
        'fd00::/129',
        '10.0.0.0/',
        '10.0.0.0/8/8',
        '10.0.0.0/-1',
        'fe80::1%eth0/64',
        'host/24',
      ]),
    });
  });

  describe('ipAddress and cidr of one IP version', () => {
    it.each<[string, z.ZodType, string, string]>([
      ['ipAddress v4', schemas.ipAddress({ version: 4 }), 'fd00::1', 'must be an IPv4 address'],
      ['ipAddress v6', schemas.ipAddress({ version: 6 }), '10.0.0.1', 'must be an IPv6 address'],
      ['cidr v4', schemas.cidr({ version: 4 }), 'fd00::/64', 'must be a CIDR like 10.0.0.0/8'],
      ['cidr v6', schemas.cidr({ version: 6 }), '10.0.0.0/8', 'must be a CIDR like fd00::/64'],
    ])('%s rejects %p: %p', (_name, schema, input, message) => {
      expect(bad(schema, input)).toBe(message);
    });
  });

  describe('hostPort', () => {
    schemaTable(schemas.hostPort(), {
      parses: [
        ['example.com:443', { host: 'example.com', port: 443 }],
        ['10.0.0.1:51820', { host: '10.0.0.1', port: 51820 }],
        ['[fd00::1]:443', { host: 'fd00::1', port: 443 }],
        ['kubernetes.default.svc:6443', { host: 'kubernetes.default.svc', port: 6443 }],
        ['localhost:8080', { host: 'localhost', port: 8080 }],
      ],
      rejects: [
        ...allFail('must be host:port like example.com:443 or [fd00::1]:443', [
          'example.com',
          ':443',
          'bad_host:443',
          '-bad.com:443',
          '10.0.0.300:443',
          '[10.0.0.1]:443',
          '[fd00::1]',
        ]),
        ...allFail('must be a port number from 1 to 65535', ['example.com:0', 'example.com:http']),
        ['fd00::1:443', 'must be host:port; put IPv6 addresses in brackets like [fd00::1]:443'],
      ],
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
    schemaTable(schemas.bool(), {
      parses: [
        ...['true', 'TRUE', '1', 'yes', 'Yes'].map((input): Row => [input, true]),
        ...['false', '0', 'no', ' NO '].map((input): Row => [input, false]),
      ],
      rejects: allFail('must be true or false (or 1/0, yes/no)', ['', 'y', 'on', '2', 'truthy']),
    });
  });

  describe('list', () => {
    schemaTable(schemas.list(), {
      parses: [
        ['a,b,c', ['a', 'b', 'c']],
        [' a , b ,, c, ', ['a', 'b', 'c']],
        ['', []],
        ['single', ['single']],
      ],
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
    schemaTable(schemas.url(), {
      parses: unchanged(['https://example.com', 'http://10.0.0.1:8080/path?q=1', 'https://[fd00::1]:6443']),
      rejects: [
        ...allFail('must be a URL like http://example.com:8443/path', ['example.com', '']),
        ['ftp://example.com', 'must be a http or https URL'],
      ],
    });
    it('restricts protocols', () => {
      const wss = schemas.url({ protocols: ['wss'] });
      expect(ok(wss, 'wss://relay.example.com/tunnel')).toBe('wss://relay.example.com/tunnel');
      expect(bad(wss, 'https://relay.example.com')).toBe('must be a wss URL');
    });
  });

  describe('logLevel', () => {
    schemaTable(schemas.logLevel(), {
      parses: [...unchanged(['info', 'silent', 'trace']), ['DEBUG', 'debug']],
      rejects: allFail('must be one of fatal, error, warn, info, debug, trace, silent', [
        'verbose',
        '',
        'warning',
      ]),
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

/** The help text of `program` (whitespace collapsed); `--help` must end in CleanExit. */
function helpOf(program: OptionsProgram<OptionSpecs>): string {
  const out = captureOutput(program);
  expect(() => parseOptions(program, argv('--help'), {})).toThrow(CleanExit);
  return out.join('').replace(/\s+/g, ' ');
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
    const help = helpOf(demoProgram());
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

  it("lists a command's own exit codes instead of runMain's three", () => {
    const program = createProgram({
      name: 'lab',
      options: {},
      exitCodes: { ...DEFAULT_EXIT_CODES, 130: 'interrupted while starting' },
    });
    expect(helpOf(program)).toContain(
      'Exit codes: 0 success, or graceful shutdown on SIGTERM/SIGINT 1 runtime error, failed cleanup or shutdown timeout 2 invalid flag, environment variable or configuration 130 interrupted while starting',
    );
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

describe('repeatable: a flag given several times (Go StringSlice)', () => {
  const program = () =>
    createProgram({
      name: 'demo',
      options: {
        cidrs: {
          flag: '--cidr <cidrs>',
          env: 'CIDRS',
          description: 'CIDRs',
          schema: schemas.list(schemas.cidr()),
          default: [],
          repeatable: true,
        },
        once: { flag: '--once <cidrs>', description: 'not repeatable', schema: schemas.list(), default: [] },
      },
    });

  it('joins repeated values, and still takes a comma-separated one', () => {
    expect(
      parseOptions(program(), argv('--cidr', '10.0.0.0/8', '--cidr=fd00::/64,192.0.2.0/24'), {}),
    ).toEqual({
      cidrs: ['10.0.0.0/8', 'fd00::/64', '192.0.2.0/24'],
      once: [],
    });
    expect(parseOptions(program(), argv(), { CIDRS: '10.0.0.0/8' }).cidrs).toEqual(['10.0.0.0/8']);
  });

  it('keeps the last value of a flag that is not repeatable (commander)', () => {
    expect(parseOptions(program(), argv('--once', 'a', '--once', 'b')).once).toEqual(['b']);
  });

  it('names the bad item', () => {
    expect(() => parseOptions(program(), argv('--cidr', '10.0.0.0/8', '--cidr', 'nope'), {})).toThrow(
      /--cidr \(CIDRS\): item 2: must be a CIDR/,
    );
  });
});

describe('aliases: former flag and env var names keep working', () => {
  const program = () =>
    createProgram({
      name: 'renamed',
      options: {
        interval: {
          flag: '--check-interval <duration>',
          env: 'CHECK_INTERVAL',
          description: 'time between checks',
          schema: schemas.duration(),
          default: '1s',
          aliases: { flags: ['--interval', '--period'], env: ['INTERVAL'] },
        },
        verbose: {
          flag: '--verbose',
          description: 'say more',
          schema: schemas.bool(),
          default: false,
          aliases: { flags: ['--chatty'] },
        },
      },
    });

  it('reads a former flag and a former env var, the new names first', () => {
    expect(parseOptions(program(), argv('--interval', '5s'), {})).toEqual({ interval: 5000, verbose: false });
    expect(parseOptions(program(), argv('--period=7s', '--chatty'), {})).toEqual({
      interval: 7000,
      verbose: true,
    });
    expect(parseOptions(program(), argv(), { INTERVAL: '3s' })).toMatchObject({ interval: 3000 });
    expect(parseOptions(program(), argv(), { INTERVAL: '3s', CHECK_INTERVAL: '2s' })).toMatchObject({
      interval: 2000,
    });
    expect(parseOptions(program(), argv('--interval', '9s'), { CHECK_INTERVAL: '2s' })).toMatchObject({
      interval: 9000,
    });
  });

  it('names the name that was used in errors', () => {
    expect(usageError(() => parseOptions(program(), argv('--interval', 'x'), {})).message).toBe(
      '--interval: must be a duration like 10s, got "x"',
    );
    expect(usageError(() => parseOptions(program(), argv(), { INTERVAL: 'x' })).message).toBe(
      '--check-interval (INTERVAL): must be a duration like 10s, got "x"',
    );
  });

  it('refuses the flag and its alias together', () => {
    expect(
      usageError(() => parseOptions(program(), argv('--check-interval', '1s', '--interval', '2s'), {}))
        .message,
    ).toBe('--check-interval and --interval are the same option: give --check-interval only');
  });

  it('lists them as aliases in the help (the alias flags have no line of their own)', () => {
    const help = helpOf(program());
    expect(help).toContain(
      '--check-interval <duration> time between checks (env: CHECK_INTERVAL, default: "1s"; aliases: --interval, --period, INTERVAL)',
    );
    expect(help).toContain('--verbose say more (default: false; aliases: --chatty)');
    expect(help).not.toMatch(/^\s*--interval/m);
  });

  it('checks alias names when the option is added', () => {
    const spec = { flag: '--a <v>', description: 'd', schema: z.string() };
    expect(() =>
      createProgram({ name: 'x', options: { a: { ...spec, aliases: { flags: ['-b'] } } } }),
    ).toThrow('option a: alias "-b" must be a long flag like --old-name');
    expect(() =>
      createProgram({ name: 'x', options: { a: { ...spec, aliases: { env: ['B-1'] } } } }),
    ).toThrow('option a: env var name "B-1" is not valid');
  });
});

describe('validate: cross-field checks after the schemas', () => {
  const program = () =>
    createProgram({
      name: 'sidecar',
      options: {
        podName: {
          flag: '--pod-name <name>',
          env: 'POD_NAME',
          description: 'pod',
          schema: z.string().optional(),
        },
        podNamespace: {
          flag: '--pod-namespace <ns>',
          env: 'POD_NAMESPACE',
          description: 'namespace',
          schema: z.string().optional(),
        },
        server: {
          flag: '--server <url>',
          description: 'server',
          schema: schemas.url(),
          default: 'http://a:1',
        },
      },
      validate(opts, { name }) {
        if (Boolean(opts.podName) !== Boolean(opts.podNamespace)) {
          throw new UsageError(
            `${name('podName')} and ${name('podNamespace')} go together: give both or neither`,
          );
        }
        if (opts.server.includes('bad')) throw new Error(`cannot use ${opts.server}:\nnot a tunnel URL`);
        return { ...opts, server: opts.server.replace(/^http/, 'ws') };
      },
    });

  it('returns the normalised options when they pass', () => {
    expect(parseOptions(program(), argv('--pod-name', 'p'), { POD_NAMESPACE: 'ns' })).toEqual({
      podName: 'p',
      podNamespace: 'ns',
      server: 'ws://a:1',
    });
  });

  it('throws its UsageError, naming the options with their env vars', () => {
    const err = usageError(() => parseOptions(program(), argv('--pod-name', 'p'), {}));
    expect(err.message).toBe(
      '--pod-name (POD_NAME) and --pod-namespace (POD_NAMESPACE) go together: give both or neither',
    );
    expect(err.exitCode).toBe(2);
  });

  it('turns any other error into a one-line UsageError', () => {
    const err = usageError(() => parseOptions(program(), argv('--server', 'http://bad:1'), {}));
    expect(err.message).toBe('cannot use http://bad:1: not a tunnel URL');
  });

  it('does not run when a schema already failed (one error at a time)', () => {
    const err = usageError(() => parseOptions(program(), argv('--server', 'nope', '--pod-name', 'p'), {}));
    expect(err.message).toBe('--server: must be a URL like http://example.com:8443/path, got "nope"');
  });

  it('keeps the options when it returns nothing', () => {
    const p = createProgram({
      name: 'x',
      options: { n: { flag: '--n <n>', description: 'n', schema: schemas.integer(), default: 1 } },
      validate: () => undefined,
    });
    expect(parseOptions(p, argv('--n', '2'), {})).toEqual({ n: 2 });
  });
});

describe('shared daemon options', () => {
  it('metricsOptions: the same flags everywhere, env vars under the app prefix', () => {
    const p = createProgram({
      name: 'agent',
      options: metricsOptions({
        envPrefix: 'TOWER',
        defaultPort: 8081,
        zero: 'any',
        readiness: 'ready while connected',
      }),
    });
    expect(parseOptions(p, argv(), {})).toEqual({ metricsHost: '0.0.0.0', metricsPort: 8081 });
    expect(parseOptions(p, argv('--metrics-port', '0', '--metrics-host', '127.0.0.1'), {})).toEqual({
      metricsHost: '127.0.0.1',
      metricsPort: 0,
    });
    expect(parseOptions(p, argv(), { TOWER_METRICS_PORT: '9100', TOWER_METRICS_HOST: '::1' })).toEqual({
      metricsHost: '::1',
      metricsPort: 9100,
    });
    const help = helpOf(p);
    expect(help).toContain(
      '--metrics-port <port> port of /healthz, /readyz (ready while connected) and /metrics; 0 picks a free port (env: TOWER_METRICS_PORT, default: 8081)',
    );
    expect(help).toContain(
      '--metrics-host <address> address of /healthz, /readyz and /metrics (env: TOWER_METRICS_HOST, default: "0.0.0.0")',
    );
  });

  it("metricsOptions with zero 'off': 0 parses to undefined (serve nothing)", () => {
    const p = createProgram({
      name: 'client-sidecar',
      options: metricsOptions({ envPrefix: 'PODGW', defaultPort: 0, zero: 'off' }),
    });
    const off = parseOptions(p, argv(), {});
    expect(off).toEqual({ metricsHost: '0.0.0.0', metricsPort: undefined });
    // Compile-time: the port may be undefined.
    const port: number | undefined = off.metricsPort;
    expect(port).toBeUndefined();
    expect(parseOptions(p, argv('--metrics-port', '9000'), {}).metricsPort).toBe(9000);
  });

  // gateway-sidecar and client-sidecar served these as --health-port/--health-host and
  // PODGW_HEALTH_PORT/PODGW_HEALTH_HOST (the pod-gateway chart passes --health-port=…).
  it.each(['off', 'any'] as const)(
    "formerName 'health' keeps --health-port 9000 and PODGW_HEALTH_PORT=9000 working (zero %p)",
    (zero) => {
      const p = () =>
        createProgram({
          name: 'gateway-sidecar',
          options: metricsOptions({ envPrefix: 'PODGW', defaultPort: 8080, zero, formerName: 'health' }),
        });
      expect(parseOptions(p(), argv('--health-port', '9000'), {})).toEqual({
        metricsHost: '0.0.0.0',
        metricsPort: 9000,
      });
      expect(parseOptions(p(), argv('--health-port=9000', '--health-host=127.0.0.1'), {})).toEqual({
        metricsHost: '127.0.0.1',
        metricsPort: 9000,
      });
      expect(
        parseOptions(p(), argv(), { PODGW_HEALTH_PORT: '9000', PODGW_HEALTH_HOST: '127.0.0.1' }),
      ).toEqual({
        metricsHost: '127.0.0.1',
        metricsPort: 9000,
      });
      expect(
        parseOptions(p(), argv(), { PODGW_METRICS_PORT: '9001', PODGW_HEALTH_PORT: '9000' }).metricsPort,
      ).toBe(9001);
      expect(usageError(() => parseOptions(p(), argv(), { PODGW_HEALTH_PORT: '70000' })).message).toBe(
        '--metrics-port (PODGW_HEALTH_PORT): must be a port number from 0 to 65535, got "70000"',
      );
      expect(helpOf(p())).toContain(
        '(env: PODGW_METRICS_PORT, default: 8080; aliases: --health-port, PODGW_HEALTH_PORT)',
      );
    },
  );

  it('an empty env prefix gives bare names', () => {
    const { metricsPort, metricsHost } = metricsOptions({ envPrefix: '', defaultPort: 9090, zero: 'any' });
    expect([metricsPort.env, metricsHost.env]).toEqual(['METRICS_PORT', 'METRICS_HOST']);
  });

  it('daemonOptions: log level, shutdown timeout and the metrics endpoint, typed', () => {
    const p = createProgram({
      name: 'd',
      options: {
        ...daemonOptions({ envPrefix: 'D', defaultPort: 9090, zero: 'any' }),
        kubeconfig: kubeconfigOption,
      },
    });
    const opts = parseOptions(p, argv('--shutdown-timeout', '10s'), { LOG_LEVEL: 'debug', KUBECONFIG: '/k' });
    expect(opts).toEqual({
      logLevel: 'debug',
      shutdownTimeout: 10_000,
      metricsHost: '0.0.0.0',
      metricsPort: 9090,
      kubeconfig: '/k',
    });
    const typed: { shutdownTimeout: number; metricsPort: number; kubeconfig: string | undefined } = opts;
    expect(typed.metricsPort).toBe(9090);
  });
});
