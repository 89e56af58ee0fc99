import { LocalNames, nameKey } from './hosts';
import { encodeName } from './wire';

describe('LocalNames', () => {
  it('answers names and reverse names of their addresses', () => {
    const l = new LocalNames();
    l.set(
      new Map([
        ['pod-a', ['172.16.0.21']],
        ['Pod-B.', ['172.16.0.22', '172.16.0.23']],
      ]),
    );
    expect(l.lookup(nameKey('pod-a'))?.a).toEqual([Buffer.from([172, 16, 0, 21])]);
    expect(l.lookup(nameKey('POD-B'))?.a).toHaveLength(2);
    expect(l.lookup(nameKey('21.0.16.172.in-addr.arpa'))).toEqual({ a: [], ptr: [encodeName('pod-a')] });
    expect(l.lookup(nameKey('23.0.16.172.in-addr.arpa'))?.ptr).toEqual([encodeName('pod-b')]);
    expect(l.lookup(nameKey('pod-c'))).toBeUndefined();
    expect(l.size).toBe(5);
  });

  it('with a domain, name.domain resolves too and PTR gives the full name', () => {
    const l = new LocalNames('Pods.Local.');
    l.set(
      new Map([
        ['pod-a', ['172.16.0.21']],
        ['pod-b.pods.local', ['172.16.0.22']],
      ]),
    );
    expect(l.lookup(nameKey('pod-a'))?.a).toHaveLength(1);
    expect(l.lookup(nameKey('pod-a.pods.local'))?.a).toHaveLength(1);
    expect(l.lookup(nameKey('pod-b.pods.local'))?.a).toHaveLength(1);
    expect(l.lookup(nameKey('21.0.16.172.in-addr.arpa'))?.ptr).toEqual([encodeName('pod-a.pods.local')]);
    expect(l.lookup(nameKey('22.0.16.172.in-addr.arpa'))?.ptr).toEqual([encodeName('pod-b.pods.local')]);
  });

  it('several names for one address give several PTRs; duplicates collapse', () => {
    const l = new LocalNames();
    l.set(
      new Map([
        ['a', ['10.0.0.1', '10.0.0.1']],
        ['b', ['10.0.0.1']],
      ]),
    );
    expect(l.lookup(nameKey('a'))?.a).toHaveLength(1);
    expect(l.lookup(nameKey('1.0.0.10.in-addr.arpa'))?.ptr).toEqual([encodeName('a'), encodeName('b')]);
  });

  it('skips invalid names and non-IPv4 values, and replaces the table on each set', () => {
    const l = new LocalNames();
    const { skipped } = l.set(
      new Map([
        ['ok', ['10.0.0.1', 'fd00::1']],
        ['', ['10.0.0.2']],
        ['x'.repeat(64), ['10.0.0.3']],
        ['bad..name', ['10.0.0.4']],
      ]),
    );
    expect(skipped).toHaveLength(4);
    expect(l.lookup(nameKey('ok'))?.a).toHaveLength(1);
    l.set(new Map());
    expect(l.lookup(nameKey('ok'))).toBeUndefined();
    expect(l.size).toBe(0);
  });
});
