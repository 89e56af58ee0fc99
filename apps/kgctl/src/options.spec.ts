import { UsageError, parseOptions } from '@knet/runtime';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'kgctl', ...args];

describe('kgctl options', () => {
  it('has defaults and env fallbacks', () => {
    expect(parseOptions(program, argv(), { 'KGCTL_ITEMS': 'a,b' })).toMatchObject({
      items: ['a', 'b'],
      interval: 30_000,
      metricsPort: 9090,
      logLevel: 'info',
    });
  });

  it.each([
    [['--items=a,a'], /--items \(KGCTL_ITEMS\): each name may appear once/],
    [['--interval=soon'], /--interval \(KGCTL_INTERVAL\)/],
  ])('refuses %j with one line', (args, message) => {
    const e = (() => {
      try {
        parseOptions(program, argv(...args), {});
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(UsageError);
    expect(String((e as UsageError).message)).toMatch(message);
    expect(String((e as UsageError).message)).not.toContain('\n');
  });
});
