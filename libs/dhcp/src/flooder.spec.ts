import { FakeBridgeFdb, ZERO_MAC, type BridgeFdb } from '@knet/host-net';
import { FdbVtepFlooder } from './flooder';

const DEV = 'vxlan0';
const A = '02:00:5e:00:53:0a';
const B = '02:00:5e:00:53:0b';

/** A gateway vxlan0 that learned A behind 192.0.2.10 and B behind 192.0.2.11 (no flood entries). */
async function learnedFdb(): Promise<FakeBridgeFdb> {
  const fdb = new FakeBridgeFdb();
  await fdb.replace({ mac: A, dev: DEV, dst: '192.0.2.10', state: 'dynamic' });
  await fdb.replace({ mac: B, dev: DEV, dst: '192.0.2.11', state: 'dynamic' });
  return fdb;
}

const floodList = async (fdb: BridgeFdb) =>
  (await fdb.list({ dev: DEV }))
    .filter((e) => e.mac === ZERO_MAC)
    .map((e) => e.dst)
    .sort();

/** Counts list/append/delete calls. */
function counting(fdb: BridgeFdb) {
  const calls = { list: 0, append: 0, delete: 0 };
  const wrapped: BridgeFdb = {
    list: (o) => (calls.list++, fdb.list(o)),
    append: (e) => (calls.append++, fdb.append(e)),
    replace: (e) => fdb.replace(e),
    delete: (e) => (calls.delete++, fdb.delete(e)),
  };
  return { wrapped, calls };
}

describe('FdbVtepFlooder', () => {
  it('adds an all-zeros entry for the VTEP the chaddr was learned from, once', async () => {
    const fdb = await learnedFdb();
    const { wrapped, calls } = counting(fdb);
    const now = { t: 0 };
    const flooder = new FdbVtepFlooder({ fdb: wrapped, dev: DEV, now: () => now.t });
    await flooder.ensure(A.toUpperCase().replace(/:/g, '-'));
    expect(await floodList(fdb)).toEqual(['192.0.2.10']);
    await flooder.ensure(A); // cached
    expect(calls).toEqual({ list: 1, append: 1, delete: 0 });
    now.t = 60_000;
    await flooder.ensure(A); // looked up again, entry already there
    expect(calls).toEqual({ list: 2, append: 1, delete: 0 });
  });

  it('floods to every learned VTEP when the chaddr was not learned', async () => {
    const fdb = await learnedFdb();
    const flooder = new FdbVtepFlooder({ fdb, dev: DEV });
    await flooder.ensure('02:00:5e:00:53:99');
    expect(await floodList(fdb)).toEqual(['192.0.2.10', '192.0.2.11']);
  });

  it('does nothing before anything was learned', async () => {
    const fdb = new FakeBridgeFdb();
    await new FdbVtepFlooder({ fdb, dev: DEV }).ensure(A);
    expect(await fdb.list()).toEqual([]);
  });

  it('shares one lookup between concurrent callers', async () => {
    const fdb = await learnedFdb();
    const { wrapped, calls } = counting(fdb);
    const flooder = new FdbVtepFlooder({ fdb: wrapped, dev: DEV });
    await Promise.all([flooder.ensure(A), flooder.ensure(B), flooder.ensure(A)]);
    expect(calls.list).toBe(1);
    expect(await floodList(fdb)).toEqual(['192.0.2.10', '192.0.2.11']);
  });

  it('prunes entries whose VTEP has no active lease left, and only those', async () => {
    const fdb = await learnedFdb();
    const flooder = new FdbVtepFlooder({ fdb, dev: DEV });
    await flooder.ensure(A);
    await flooder.ensure(B);
    await flooder.prune([B]);
    expect(await floodList(fdb)).toEqual(['192.0.2.11']);
    await flooder.prune([]);
    expect(await floodList(fdb)).toEqual([]);
  });

  it('does not prune while an active lease cannot be mapped to a VTEP', async () => {
    const fdb = await learnedFdb();
    await fdb.append({ mac: ZERO_MAC, dev: DEV, dst: '192.0.2.10' });
    await fdb.append({ mac: ZERO_MAC, dev: DEV, dst: '192.0.2.12' });
    const flooder = new FdbVtepFlooder({ fdb, dev: DEV }); // e.g. after a restart
    await flooder.prune(['02:00:5e:00:53:77']);
    expect(await floodList(fdb)).toEqual(['192.0.2.10', '192.0.2.12']);
    await flooder.prune([A]);
    expect(await floodList(fdb)).toEqual(['192.0.2.10']);
  });

  it('reports a failing bridge command to the caller', async () => {
    const fdb = new FakeBridgeFdb();
    const broken: BridgeFdb = {
      list: () => Promise.reject(new Error('bridge: command not found')),
      append: (e) => fdb.append(e),
      replace: (e) => fdb.replace(e),
      delete: (e) => fdb.delete(e),
    };
    await expect(new FdbVtepFlooder({ fdb: broken, dev: DEV }).ensure(A)).rejects.toThrow(
      'bridge: command not found',
    );
  });
});
