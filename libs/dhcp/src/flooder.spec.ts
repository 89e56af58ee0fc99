import { FakeBridgeFdb, ZERO_MAC, type BridgeFdb } from '@knet/host-net';
import { RecordingLogger } from '@knet/runtime';
import { parseFdbMonitorLine, type FdbEvent, type FdbWatcher } from './fdb-watch';
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

/** An FdbWatcher over a FakeBridgeFdb: appends go to the fake and come back as events. */
class FakeWatcher implements FdbWatcher {
  onEvent: ((e: FdbEvent) => void) | undefined;
  readonly appended: string[] = [];
  constructor(
    private readonly fdb: BridgeFdb,
    private readonly behaviour: 'ok' | 'no-start' = 'ok',
  ) {}
  async start(onEvent: (e: FdbEvent) => void): Promise<void> {
    if (this.behaviour === 'no-start') throw new Error('spawn bridge ENOENT');
    this.onEvent = onEvent;
  }
  appendFlood(dev: string, dst: string): void {
    this.appended.push(dst);
    void this.fdb.append({ mac: ZERO_MAC, dev, dst }).then(() => {
      setImmediate(() => this.onEvent?.({ deleted: false, mac: ZERO_MAC, dev, dst }));
    });
  }
  /** The kernel learned `mac` behind `dst` (a client's first frame). */
  learn(mac: string, dst: string): void {
    this.onEvent?.({ deleted: false, mac, dev: DEV, dst });
  }
  async stop(): Promise<void> {
    this.onEvent = undefined;
  }
}

describe('FdbVtepFlooder with an FdbWatcher', () => {
  it('floods the VTEP learned from the client’s first frame through the watcher: no listing per client', async () => {
    const fdb = new FakeBridgeFdb();
    const { wrapped, calls } = counting(fdb);
    const watcher = new FakeWatcher(fdb);
    const flooder = new FdbVtepFlooder({ fdb: wrapped, dev: DEV, watcher });
    await flooder.start();
    expect(calls.list).toBe(1); // the seed
    const ensured = flooder.ensure(A); // the DISCOVER can arrive before the learn event
    watcher.learn(A, '192.0.2.10');
    await ensured;
    watcher.learn(B, '192.0.2.10'); // a second client behind the same VTEP
    await flooder.ensure(B);
    expect(watcher.appended).toEqual(['192.0.2.10']);
    expect(await floodList(fdb)).toEqual(['192.0.2.10']);
    expect(calls).toEqual({ list: 1, append: 0, delete: 0 });
    await flooder.stop();
  });

  it('lists per client as before when the watcher cannot start or the learn event does not come', async () => {
    const logger = new RecordingLogger();
    const fdb = await learnedFdb();
    const { wrapped, calls } = counting(fdb);
    const broken = new FdbVtepFlooder({
      fdb: wrapped,
      dev: DEV,
      logger,
      watcher: new FakeWatcher(fdb, 'no-start'),
    });
    await broken.start();
    expect(logger.messages('warn')).toEqual(['dhcp: cannot watch the FDB; listing it per client instead']);
    await broken.ensure(A);
    expect(await floodList(fdb)).toEqual(['192.0.2.10']);

    const silent = new FdbVtepFlooder({
      fdb: wrapped,
      dev: DEV,
      watcher: new FakeWatcher(fdb),
      watchWaitMs: 20,
    });
    await silent.start();
    const listed = calls.list;
    await silent.ensure(B); // learned before the watcher started: known from the seed listing
    expect(calls.list).toBe(listed);
    await silent.ensure('02:00:5e:00:53:0c'); // never learned: listed after 20 ms
    expect(calls.list).toBe(listed + 1);
  });
});

describe('parseFdbMonitorLine', () => {
  it.each([
    [
      '02:00:5E:00:53:01 dev vxlan0 dst 192.0.2.10 self ',
      { deleted: false, mac: '02:00:5e:00:53:01', dev: 'vxlan0', dst: '192.0.2.10' },
    ],
    [
      'Deleted 02:00:5e:00:53:01 dev vxlan0 dst 192.0.2.10 self ',
      { deleted: true, mac: '02:00:5e:00:53:01', dev: 'vxlan0', dst: '192.0.2.10' },
    ],
    [
      '00:00:00:00:00:00 dev vxlan0 dst 192.0.2.5 self permanent',
      { deleted: false, mac: ZERO_MAC, dev: 'vxlan0', dst: '192.0.2.5' },
    ],
    ['33:33:00:00:00:01 dev eth0 self permanent', { deleted: false, mac: '33:33:00:00:00:01', dev: 'eth0' }],
  ])('%s', (line, event) => {
    expect(parseFdbMonitorLine(line)).toEqual(event);
  });

  it('ignores what is not an entry', () => {
    expect(parseFdbMonitorLine('')).toBeUndefined();
    expect(parseFdbMonitorLine('garbage dev')).toBeUndefined();
  });
});
