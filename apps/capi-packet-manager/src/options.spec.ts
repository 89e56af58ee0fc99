import { UsageError, parseOptions } from '@knet/runtime';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'capi-packet-manager', ...args];

describe('capi-packet-manager options', () => {
  it('has defaults and env fallbacks', () => {
    expect(parseOptions(program, argv(), { CAPI_PACKET_MANAGER_ITEMS: 'a,b' })).toMatchObject({
      items: ['a', 'b'],
      interval: 30_000,
      metricsPort: 9090,
      logLevel: 'info',
    });
  });

  it.each([
    [['--items=a,a'], /--items \(CAPI_PACKET_MANAGER_ITEMS\): each name may appear once/],
    [['--interval=soon'], /--interval \(CAPI_PACKET_MANAGER_INTERVAL\)/],
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
