import {
  childLogger,
  createLogger,
  DEFAULT_REDACT_PATHS,
  type Logger,
  type LoggerOptions,
  RecordingLogger,
  REDACTED,
  silentLogger,
} from './index';

function capture(options: Omit<LoggerOptions, 'destination'>) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    ...options,
    destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  return { logger, lines };
}

describe('createLogger', () => {
  it('writes one JSON object per line with label level, ISO time, name, pid and msg', () => {
    const { logger, lines } = capture({ name: 'wg-agent' });
    logger.info({ peer: 'a' }, 'peer added');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      name: 'wg-agent',
      pid: process.pid,
      peer: 'a',
      msg: 'peer added',
    });
    expect(new Date(lines[0]?.['time'] as string).toISOString()).toBe(lines[0]?.['time']);
  });

  it('logs at info and above by default and honours the level', () => {
    const info = capture({ name: 'x' });
    info.logger.debug('hidden');
    info.logger.warn('shown');
    expect(info.lines.map((l) => l['msg'])).toEqual(['shown']);

    const trace = capture({ name: 'x', level: 'trace' });
    trace.logger.trace('t');
    expect(trace.lines.map((l) => l['level'])).toEqual(['trace']);

    const silent = capture({ name: 'x', level: 'silent' });
    silent.logger.fatal('nothing');
    expect(silent.lines).toEqual([]);
  });

  it('rejects an unknown level', () => {
    expect(() => createLogger({ name: 'x', level: 'loud' as 'info' })).toThrow(/unknown log level "loud"/);
  });

  it('redacts secret-looking fields at the top level and nested by default', () => {
    const { logger, lines } = capture({ name: 'x' });
    logger.info(
      {
        token: 't',
        password: 'p',
        privateKey: 'k',
        key: 'k2',
        secret: 's',
        authorization: 'Bearer x',
        peer: { presharedKey: 'psk', endpoint: '1.2.3.4:51820', auth: { token: 'deep' } },
        req: { headers: { authorization: 'Bearer y', accept: '*/*' } },
        name: 'visible',
      },
      'm',
    );
    const line = lines[0] ?? {};
    expect(line).toMatchObject({
      token: REDACTED,
      password: REDACTED,
      privateKey: REDACTED,
      key: REDACTED,
      secret: REDACTED,
      authorization: REDACTED,
      peer: { presharedKey: REDACTED, endpoint: '1.2.3.4:51820', auth: { token: REDACTED } },
      req: { headers: { authorization: REDACTED, accept: '*/*' } },
    });
    expect(JSON.stringify(line)).not.toMatch(/Bearer|psk|deep/);
    expect(DEFAULT_REDACT_PATHS).toEqual(
      expect.arrayContaining(['token', '*.token', 'password', 'privateKey']),
    );
  });

  it('redaction is configurable: replaced, extended or off', () => {
    const replaced = capture({ name: 'x', redact: ['spec.caData'] });
    replaced.logger.info({ token: 't', spec: { caData: 'ca' } });
    expect(replaced.lines[0]).toMatchObject({ token: 't', spec: { caData: REDACTED } });

    const extended = capture({ name: 'x', additionalRedactPaths: ['kubeconfig'] });
    extended.logger.info({ token: 't', kubeconfig: 'yaml' });
    expect(extended.lines[0]).toMatchObject({ token: REDACTED, kubeconfig: REDACTED });

    const off = capture({ name: 'x', redact: false });
    off.logger.info({ token: 't' });
    expect(off.lines[0]).toMatchObject({ token: 't' });
  });

  it('child loggers add their bindings and keep redaction', () => {
    const { logger, lines } = capture({ name: 'x', bindings: { node: 'worker-1' } });
    const child = childLogger(logger, 'mesh', { iface: 'wg0' });
    child.info({ token: 'secret-value' }, 'up');
    logger.child({ peer: 'p1' }).warn('slow');
    expect(lines[0]).toMatchObject({
      name: 'x',
      node: 'worker-1',
      component: 'mesh',
      iface: 'wg0',
      token: REDACTED,
    });
    expect(lines[1]).toMatchObject({ level: 'warn', peer: 'p1', node: 'worker-1' });
  });

  it('serializes errors under err with type, message and stack', () => {
    const { logger, lines } = capture({ name: 'x' });
    logger.error({ err: new TypeError('bad thing') }, 'failed');
    expect(lines[0]?.['err']).toMatchObject({ type: 'TypeError', message: 'bad thing' });
    expect((lines[0]?.['err'] as { stack: string }).stack).toContain('logger.spec.ts');
  });
});

describe('Logger (the narrow type libraries take)', () => {
  /** What a library does with the logger it is given. */
  function libraryWork(logger: Logger): void {
    logger.debug({ dev: 'vxlan0' }, 'checking');
    logger.info('plain message');
    logger.child({ component: 'fdb' }).warn({ err: new Error('gone') }, 'entry vanished');
    logger.error({ code: 7 });
  }

  it('pino (createLogger) is one: both call forms and child write JSON lines', () => {
    const { logger, lines } = capture({ name: 'lib' });
    libraryWork(logger);
    expect(lines.map((l) => [l['level'], l['msg']])).toEqual([
      ['info', 'plain message'],
      ['warn', 'entry vanished'],
      ['error', undefined],
    ]);
    expect(lines[1]).toMatchObject({ component: 'fdb', err: { message: 'gone' } });
  });

  it('silentLogger drops everything, its children too', () => {
    expect(() => libraryWork(silentLogger)).not.toThrow();
    expect(silentLogger.child({ a: 1 })).toBe(silentLogger);
  });

  it('RecordingLogger keeps every line, with the bindings of children merged into the fields', () => {
    const logger = new RecordingLogger();
    libraryWork(logger);
    expect(logger.lines).toEqual([
      { level: 'debug', msg: 'checking', fields: { dev: 'vxlan0' } },
      { level: 'info', msg: 'plain message', fields: {} },
      { level: 'warn', msg: 'entry vanished', fields: { component: 'fdb', err: new Error('gone') } },
      { level: 'error', msg: '', fields: { code: 7 } },
    ]);
    expect(logger.messages('warn')).toEqual(['entry vanished']);
    expect(logger.messages()).toEqual(['checking', 'plain message', 'entry vanished', '']);
    expect(logger.text()).toContain('"dev":"vxlan0"');
    expect(logger.text()).not.toContain('s3cret');
  });
});
