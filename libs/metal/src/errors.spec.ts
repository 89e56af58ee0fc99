import { errorBodyMessages, isMetalError, isRetryable, kindOfStatus, MetalApiError, redact } from './errors';

describe('kindOfStatus', () => {
  it.each([
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [404, 'gone'],
    [422, 'invalid'],
    [429, 'transient'],
    [503, 'transient'],
    [400, 'terminal'],
    [409, 'terminal'],
    [410, 'terminal'],
    [500, 'terminal'],
    [502, 'terminal'],
    [504, 'terminal'],
    [302, 'terminal'],
  ])('%i → %s', (status, kind) => {
    expect(kindOfStatus(status)).toBe(kind);
  });
});

describe('errorBodyMessages', () => {
  it.each<[string, string, string[]]>([
    ['errors', '{"errors":["a","b"]}', ['a', 'b']],
    ['error', '{"error":"not found"}', ['not found']],
    ['both', '{"errors":["a"],"error":"b"}', ['a', 'b']],
    ['blank and non-string entries dropped', '{"errors":["", " ", 3, null, "x"]}', ['x']],
    ['lines joined', '{"error":"line one\\n  line two"}', ['line one line two']],
    ['not JSON', '<html>oops</html>', []],
    ['cut JSON', '{"errors":["abc', []],
    ['another shape', '{"message":"x"}', []],
    ['a JSON string', '"x"', []],
    ['empty', '', []],
  ])('%s', (_what, text, expected) => {
    expect(errorBodyMessages(text)).toEqual(expected);
  });

  it('keeps at most 10 messages of at most 300 characters', () => {
    const messages = errorBodyMessages(JSON.stringify({ errors: Array(20).fill('m'.repeat(500)) }));
    expect(messages).toHaveLength(10);
    expect(messages[0]).toHaveLength(300);
    expect(messages[0]?.endsWith('…')).toBe(true);
  });
});

describe('MetalApiError', () => {
  it('is one line naming the call, with the kind and fields callers branch on', () => {
    const e = new MetalApiError({
      kind: 'transient',
      status: 429,
      method: 'GET',
      path: '/devices/d1',
      errors: ['slow down'],
      retryAfterMs: 2000,
      detail: '429 rate-limited\nretry in 2 s',
    });
    expect(e.message).toBe('Metal API GET /devices/d1: 429 rate-limited retry in 2 s');
    expect(e).toMatchObject({ name: 'MetalApiError', kind: 'transient', status: 429, retryAfterMs: 2000 });
    expect(isRetryable(e)).toBe(true);
    expect(isMetalError(e, 'transient')).toBe(true);
    expect(isMetalError(e, 'gone')).toBe(false);
    expect(
      isRetryable(new MetalApiError({ kind: 'gone', status: 404, method: 'GET', path: '/x', detail: '404' })),
    ).toBe(false);
    expect(isRetryable(new Error('x'))).toBe(false);
  });

  it('redact replaces every occurrence of each secret', () => {
    expect(redact('a SECRET b SECRET c other', ['SECRET', 'other', ''])).toBe(
      'a [REDACTED] b [REDACTED] c [REDACTED]',
    );
  });
});
