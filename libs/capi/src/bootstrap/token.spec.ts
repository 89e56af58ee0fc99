import { BootstrapError } from './errors';
import { thrown } from './fixtures';
import {
  BOOTSTRAP_TOKEN_GROUP,
  bootstrapTokenRemainingMs,
  bootstrapTokenSecret,
  newBootstrapToken,
  parseBootstrapToken,
  parseDuration,
  rfc3339,
} from './token';

const decode = (data: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

describe('newBootstrapToken', () => {
  it('is [a-z0-9]{6}.[a-z0-9]{16} and unique over 2000 draws', () => {
    const tokens = Array.from({ length: 2000 }, () => newBootstrapToken());
    for (const t of tokens) expect(t).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('is deterministic for injected bytes and skips bytes that would bias it (>= 252)', () => {
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i % 2 ? 255 : i)));
    // Every other byte is 255 and dropped; each 32-byte draw gives 0, 2, …, 30 (16 characters).
    expect(newBootstrapToken(bytes)).toBe(newBootstrapToken(bytes));
    expect(newBootstrapToken(bytes)).toBe('02468a.cegikmoqsu02468a');
  });

  it('uses every character of the alphabet about equally', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++)
      for (const c of newBootstrapToken().replace('.', '')) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(36);
    const expected = (3000 * 22) / 36;
    for (const n of counts.values()) expect(Math.abs(n - expected) / expected).toBeLessThan(0.15);
  });
});

describe('parseBootstrapToken', () => {
  it('splits id and secret', () => {
    expect(parseBootstrapToken('abcdef.0123456789abcdef')).toEqual({
      id: 'abcdef',
      secret: '0123456789abcdef',
    });
  });

  it.each([
    'ABCDEF.0123456789abcdef',
    'abcdef0123456789abcdef',
    'abcde.0123456789abcdef',
    'abcdef.0123456789abcdeg!',
  ])('refuses %s without echoing it', (token) => {
    const e = thrown(() => parseBootstrapToken(token));
    expect(e).toBeInstanceOf(BootstrapError);
    expect(e).toMatchObject({ kind: 'invalid-input' });
    expect((e as Error).message).not.toContain(token);
  });
});

describe('bootstrapTokenSecret', () => {
  const expires = new Date('2026-03-01T12:30:45.678Z');
  const secret = bootstrapTokenSecret('abcdef.0123456789abcdef', expires);

  it('is kube-system/bootstrap-token-<id> of type bootstrap.kubernetes.io/token', () => {
    expect(secret.metadata).toEqual({ name: 'bootstrap-token-abcdef', namespace: 'kube-system' });
    expect(secret.type).toBe('bootstrap.kubernetes.io/token');
  });

  it('carries id, secret, RFC 3339 expiration, both usages and the kubeadm node group', () => {
    expect(decode(secret.data)).toEqual({
      'token-id': 'abcdef',
      'token-secret': '0123456789abcdef',
      expiration: '2026-03-01T12:30:45Z',
      'usage-bootstrap-authentication': 'true',
      'usage-bootstrap-signing': 'true',
      'auth-extra-groups': BOOTSTRAP_TOKEN_GROUP,
      description: 'bootstrap token for a Cluster API machine',
    });
    expect(BOOTSTRAP_TOKEN_GROUP).toBe('system:bootstrappers:kubeadm:default-node-token');
  });

  it.each([
    ['2026-03-01T11:30:45Z', 3600_000],
    ['2026-03-01T12:30:44Z', 1000],
    ['2026-03-01T12:30:45Z', 0],
    ['2026-03-01T13:30:45Z', -3600_000],
  ])('at %s has %d ms left', (now, left) => {
    expect(bootstrapTokenRemainingMs(secret, new Date(now))).toBe(left);
  });

  it('a token without expiration never runs out; a garbled one is an error', () => {
    expect(bootstrapTokenRemainingMs({ data: {} }, new Date())).toBe(Infinity);
    expect(() =>
      bootstrapTokenRemainingMs(
        { data: { expiration: Buffer.from('tomorrow').toString('base64') } },
        new Date(),
      ),
    ).toThrow(/RFC 3339/);
  });

  it('rfc3339 drops milliseconds', () => {
    expect(rfc3339(new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 999)))).toBe('2030-01-02T03:04:05Z');
  });
});

describe('parseDuration (Go durations as kubeadm and tokenTTL write them)', () => {
  it.each([
    ['24h', 86_400_000],
    ['30m', 1_800_000],
    ['1h30m', 5_400_000],
    ['24h0m0s', 86_400_000],
    ['90s', 90_000],
    ['1.5h', 5_400_000],
    ['500ms', 500],
  ])('%s = %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '24', 'h', '1d', '-5m', '10 m'])('refuses %j', (text) => {
    expect(() => parseDuration(text)).toThrow(BootstrapError);
  });
});
