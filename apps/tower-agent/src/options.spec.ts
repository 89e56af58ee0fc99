import { UsageError, parseOptions } from '@knet/runtime';
import { generateHostKey } from '@knet/tunnel';
import { livenessTimeoutOf, program } from './options';

const [a, b] = [generateHostKey().fingerprint, generateHostKey().fingerprint];
const required = { TOWER_CLUSTER_NAME: 'alpha', TOWER_TOKEN: 't'.repeat(32) };

function parse(args: string[], env: Record<string, string> = {}) {
  return parseOptions(program, ['node', 'tower-agent', ...args], { ...required, ...env });
}

describe('tower-agent options', () => {
  describe('--fingerprint (key rotation)', () => {
    it.each([
      ['one flag', [`--fingerprint=${a}`], {}, [a]],
      ['the flag repeated', [`--fingerprint=${a}`, '--fingerprint', b], {}, [a, b]],
      ['comma-separated in the env', [], { TOWER_FINGERPRINT: `${a}, ${b}` }, [a, b]],
      ['comma-separated in one flag (as the chart passes them)', [`--fingerprint=${a},${b}`], {}, [a, b]],
      [
        'without the prefix or with padding, duplicates dropped',
        [`--fingerprint=${a.slice(7)}=`, `--fingerprint=${a}`],
        {},
        [a],
      ],
    ])('%s', (_what, args, env, want) => {
      expect(parse(args, env).fingerprint).toEqual(want);
    });

    it('names the bad one', () => {
      expect(() => parse([`--fingerprint=${a}`, '--fingerprint=MD5:aa'])).toThrow(
        new UsageError(
          '--fingerprint (TOWER_FINGERPRINT): item 2: must be a SHA-256 fingerprint like SHA256:<43 base64 characters>, ' +
            `got "${a},MD5:aa"`,
        ),
      );
    });
  });

  describe('--liveness-timeout', () => {
    it.each([
      ['default: 10 min with the default 2 min backoff cap', [], 10 * 60_000],
      ['default: 5x a larger cap', ['--max-retry-interval=4m'], 20 * 60_000],
      ['as given', ['--liveness-timeout=5m'], 5 * 60_000],
      ['0: never fails', ['--liveness-timeout=0'], 0],
    ])('%s', (_what, args, want) => {
      expect(livenessTimeoutOf(parse([`--fingerprint=${a}`, ...args]))).toBe(want);
    });

    it('refuses one that would restart the agent while it waits to retry', () => {
      expect(() => parse([`--fingerprint=${a}`, '--liveness-timeout=3m'])).toThrow(
        new UsageError(
          '--liveness-timeout (TOWER_LIVENESS_TIMEOUT) must be 0 or at least twice --max-retry-interval ' +
            '(TOWER_MAX_RETRY_INTERVAL) (4m), or the agent is restarted while it waits to retry',
        ),
      );
    });
  });
});
