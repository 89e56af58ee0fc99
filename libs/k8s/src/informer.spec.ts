import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { RecordingLogger } from '@knet/runtime';
import { ResilientInformer } from './informer';
import { kubeRequest } from './request';

// An API server stand-in on loopback for one resource: lists and watches answer as the test says,
// with the API server's own 429 while a resource's watch cache starts (KEP-4568: a watch is
// refused, not held, until the cache is ready), and otherwise a watch that streams until closed.

jest.setTimeout(30_000);

const PATH = '/apis/example.com/v1/widgets';
const MIN = 200;

/** What kube-apiserver answers while the watch cache of a resource is (re)initializing. */
const INITIALIZING = {
  status: 429,
  headers: { 'Retry-After': '1' },
  body: {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'storage is (re)initializing',
    reason: 'TooManyRequests',
    details: { retryAfterSeconds: 1 },
    code: 429,
  },
};
const INTERNAL = {
  status: 500,
  headers: {},
  body: {
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    message: 'etcd is down',
    reason: 'InternalError',
    code: 500,
  },
};
type Refusal = typeof INITIALIZING | typeof INTERNAL;

const widget = (name: string, resourceVersion: string): KubernetesObject => ({
  apiVersion: 'example.com/v1',
  kind: 'Widget',
  metadata: { name, resourceVersion },
});

let server: Server;
let kc: KubeConfig;
/** The next lists and watches are refused with these, in order; then they are answered. */
let listRefusals: Refusal[] = [];
let watchRefusals: Refusal[] = [];
/** The watches answered 200, open until the test or the client closes them. */
const streams: ServerResponse[] = [];
let watches = 0;
let lists = 0;
/** Watches answered 200 and not yet closed (by either side). */
let openWatches = 0;
/** While set, lists are answered only once it resolves. */
let listGate: Promise<void> | undefined;

function refuse(res: ServerResponse, r: Refusal): void {
  res.writeHead(r.status, { 'Content-Type': 'application/json', ...r.headers });
  res.end(JSON.stringify(r.body) + '\n');
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname !== PATH) return refuse(res, { ...INTERNAL, status: 404 });
  if (url.searchParams.get('watch') === 'true') {
    watches++;
    const refusal = watchRefusals.shift();
    if (refusal) return refuse(res, refusal);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    openWatches++;
    res.on('close', () => openWatches--);
    streams.push(res);
    return;
  }
  lists++;
  await listGate;
  const refusal = listRefusals.shift();
  if (refusal) return refuse(res, refusal);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(
    JSON.stringify({
      apiVersion: 'example.com/v1',
      kind: 'WidgetList',
      metadata: { resourceVersion: '5' },
      items: [widget('a', '5')],
    }),
  );
}

beforeAll(async () => {
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true },
    { name: 'u' },
  );
});
let informer: ResilientInformer<KubernetesObject> | undefined;
let logger: RecordingLogger;
let seen: string[];
beforeEach(() => {
  listRefusals = [];
  watchRefusals = [];
  watches = 0;
  lists = 0;
  listGate = undefined;
  logger = new RecordingLogger();
  seen = [];
  informer = new ResilientInformer<KubernetesObject>({
    kc,
    path: PATH,
    list: () => kubeRequest<KubernetesListObject<KubernetesObject>>(kc, { method: 'GET', path: PATH }),
    onAdd: (o) => seen.push(`add:${o.metadata?.name}`),
    logger,
    minBackoffMs: MIN,
    maxBackoffMs: 10_000,
  });
});
afterEach(async () => {
  await informer?.stop();
  for (const s of streams.splice(0)) s.destroy();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function waitFor(what: string, fn: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** 'synced' when the promise has resolved by now, 'pending' otherwise. */
const syncState = (i: ResilientInformer<KubernetesObject>) =>
  Promise.race([i.synced.then(() => 'synced'), new Promise((r) => setImmediate(() => r('pending')))]);

/** The restarts the informer logged: the status it met and the delay it chose. */
const retries = () =>
  logger.lines
    .filter((l) => l.msg === 'informer stopped by an error; restarting')
    .map((l) => ({ code: l.fields.code, retryInMs: l.fields.retryInMs as number }));

describe('ResilientInformer.watching', () => {
  it("is false while the watch is refused with 429 'storage is (re)initializing', true once a watch is answered", async () => {
    const i = informer!;
    expect(i.watching).toBe(false);
    watchRefusals = [INITIALIZING, INITIALIZING, INITIALIZING];
    await i.start();
    // The list has answered: the cache is complete as of then, but follows nothing yet.
    expect(await syncState(i)).toBe('synced');
    expect(i.list().map((o) => o.metadata?.name)).toEqual(['a']);
    expect(i.watching).toBe(false);
    await waitFor('the informer to watch', () => i.watching);
    expect(watches).toBe(4);
    expect(streams).toHaveLength(1);
    // Each 429 is retried after the first delay, never a doubled one.
    expect(retries().map((r) => r.code)).toEqual([429, 429, 429]);
    for (const r of retries()) expect(r.retryInMs).toBeLessThanOrEqual(MIN * 1.2);
    // The watch it established delivers.
    streams[0]!.write(JSON.stringify({ type: 'ADDED', object: widget('b', '6') }) + '\n');
    await waitFor('add:b', () => seen.includes('add:b'));
    await i.stop();
    expect(i.watching).toBe(false);
  });

  it('is false from a broken watch until a restart watches again; other errors double the delay', async () => {
    const i = informer!;
    await i.start();
    expect(i.watching).toBe(true);
    watchRefusals = [INTERNAL, INTERNAL, INTERNAL];
    streams.shift()!.destroy(); // the API server goes away mid-watch
    await waitFor('the informer to see the watch break', () => !i.watching);
    await waitFor('the informer to watch again', () => i.watching);
    expect(watches).toBe(5);
    const delays = retries();
    expect(delays.map((r) => r.code)).toEqual([0, 500, 500, 500]);
    // 200, 400, 800, 1600 ms ± 20 %: each longer than the one before.
    const ms = delays.map((r) => r.retryInMs);
    for (let k = 1; k < ms.length; k++) expect(ms[k]).toBeGreaterThan(ms[k - 1]!);
    // Watching again, the delay is back to the first.
    logger.lines.splice(0);
    streams.shift()!.destroy();
    await waitFor('the informer to see the watch break again', () => !i.watching);
    await waitFor('the informer to watch once more', () => i.watching);
    expect(retries()[0]!.retryInMs).toBeLessThanOrEqual(MIN * 1.2);
  });

  it('resolves synced only after a list has succeeded, and watches only after that', async () => {
    const i = informer!;
    listRefusals = [INTERNAL, INITIALIZING];
    await i.start();
    expect(await syncState(i)).toBe('pending');
    expect(i.list()).toEqual([]);
    expect(i.watching).toBe(false);
    await waitFor('the informer to watch', () => i.watching);
    expect(await syncState(i)).toBe('synced');
    expect(i.list().map((o) => o.metadata?.name)).toEqual(['a']);
    expect(retries().map((r) => r.code)).toEqual([500, 429]);
  });

  it('closes the watch client-node opens when stop() came while the list was under way', async () => {
    const i = informer!;
    let answerList!: () => void;
    listGate = new Promise((r) => (answerList = r));
    const started = i.start();
    await waitFor('the list request', () => lists === 1);
    await i.stop();
    answerList();
    await started;
    expect(watches).toBe(1); // client-node watched all the same
    await waitFor('the late watch to be closed', () => openWatches === 0);
    expect(i.watching).toBe(false);
  });
});
