import { KubeConfig } from '@kubernetes/client-node';
import { RecordingLogger } from '@knet/runtime';
import { statusError } from './errors';
import { formatMicroTime, LeaderElector } from './leader';
import type { KubeRequest } from './request';

// Unit tests of the elector's timing on a fake clock (Jest's fake timers move Date.now and
// setTimeout together) and an in-memory Lease endpoint that fails like the API server (404,
// 409 Conflict on a stale resourceVersion, 409 AlreadyExists) and can stall or answer late.

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);
const LEASE = 15_000;
const DEADLINE = 10_000;
const RETRY = 2_000;

interface StoredLease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; renewTime?: string; leaseTransitions?: number };
}

interface Seen {
  method: KubeRequest['method'];
  at: number;
  abortedAt?: number;
}

type Behaviour = { stall: true } | { answerAfterMs: number };

/** The Lease endpoints of one namespace, in memory. */
class FakeLeaseApi {
  lease: StoredLease | undefined;
  private rv = 0;
  readonly seen: Seen[] = [];
  /** How the next requests of a method behave (the default: answered at once). */
  readonly behaviour = new Map<KubeRequest['method'], Behaviour>();

  readonly request = async (req: KubeRequest): Promise<unknown> => {
    const seen: Seen = { method: req.method, at: Date.now() };
    this.seen.push(seen);
    const { signal } = req;
    signal?.addEventListener('abort', () => (seen.abortedAt = Date.now()), { once: true });
    if (signal?.aborted) throw abortError();
    const how = this.behaviour.get(req.method);
    if (how && 'stall' in how) {
      // The API server holds the request; only the caller's signal ends it (as kubeRequest does).
      return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(abortError())));
    }
    const answer = this.serve(req);
    // Late: the write is done at once, its answer arrives later (already on the wire, so an abort
    // on the caller's side does not stop it).
    if (how) await new Promise((r) => setTimeout(r, how.answerAfterMs));
    else await Promise.resolve();
    if ('error' in answer) throw answer.error;
    return answer.value;
  };

  /** What another writer does: the Lease as `holder` renewed it now. */
  writeAs(holder: string): void {
    this.lease = {
      metadata: { name: 'l', namespace: 'ns', resourceVersion: String(++this.rv) },
      spec: { ...this.lease?.spec, holderIdentity: holder, renewTime: new Date().toISOString() },
    };
  }

  private serve(req: KubeRequest): { value: unknown } | { error: unknown } {
    const copy = (l: StoredLease) => JSON.parse(JSON.stringify(l)) as StoredLease;
    if (req.method === 'GET') {
      if (!this.lease) return { error: statusError(404, 'NotFound', 'leases "l" not found') };
      return { value: copy(this.lease) };
    }
    const body = copy(req.body as StoredLease);
    if (req.method === 'POST') {
      if (this.lease) return { error: statusError(409, 'AlreadyExists', 'leases "l" already exists') };
    } else if (req.method === 'PUT') {
      if (!this.lease) return { error: statusError(404, 'NotFound', 'leases "l" not found') };
      if (body.metadata.resourceVersion !== this.lease.metadata.resourceVersion)
        return { error: statusError(409, 'Conflict', 'the object has been modified') };
    } else {
      return { error: statusError(405, 'MethodNotAllowed', req.method) };
    }
    body.metadata.resourceVersion = String(++this.rv);
    this.lease = body;
    return { value: copy(body) };
  }
}

function abortError(): Error {
  return Object.assign(new Error('request aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

interface Bed {
  api: FakeLeaseApi;
  elector: LeaderElector;
  logger: RecordingLogger;
  /** Times of onStartedLeading, with the signal it got. */
  started: { at: number; signal: AbortSignal }[];
  stopped: number[];
}

function bed(): Bed {
  const api = new FakeLeaseApi();
  const logger = new RecordingLogger();
  const started: Bed['started'] = [];
  const stopped: number[] = [];
  const elector = new LeaderElector({
    kc: new KubeConfig(),
    namespace: 'ns',
    name: 'l',
    identity: 'me',
    leaseDurationMs: LEASE,
    renewDeadlineMs: DEADLINE,
    retryPeriodMs: RETRY,
    request: api.request,
    logger,
    onStartedLeading: (signal) => started.push({ at: Date.now(), signal }),
    onStoppedLeading: () => stopped.push(Date.now()),
  });
  return { api, elector, logger, started, stopped };
}

const advance = (ms: number) => jest.advanceTimersByTimeAsync(ms);

/** Started at T0 (acquires at once), renewed at T0 + RETRY: leading with lastRenew = T0 + RETRY. */
async function leading(): Promise<Bed> {
  const b = bed();
  b.elector.start();
  await advance(0);
  expect(b.started.map((s) => s.at)).toEqual([T0]);
  await advance(RETRY);
  expect(b.api.seen.filter((s) => s.method === 'PUT').map((s) => s.at)).toEqual([T0 + RETRY]);
  return b;
}

let current: Bed | undefined;
beforeEach(() => {
  jest.useFakeTimers({ now: T0 });
});
afterEach(async () => {
  const stopping = current?.elector.stop();
  current = undefined;
  await jest.runOnlyPendingTimersAsync();
  await stopping;
  jest.useRealTimers();
});

describe('LeaderElector on a stalled API server', () => {
  it('steps down at exactly lastRenew + renewDeadline while a PUT hangs, and aborts that PUT then', async () => {
    const b = (current = await leading());
    b.api.behaviour.set('PUT', { stall: true });
    await advance(RETRY); // the renewal at T0 + 2·RETRY: GET answered, PUT hangs
    const put = b.api.seen.at(-1)!;
    expect(put).toMatchObject({ method: 'PUT', at: T0 + 2 * RETRY });

    const stepDown = T0 + RETRY + DEADLINE;
    await advance(stepDown - 1 - Date.now());
    expect(b.stopped).toEqual([]);
    expect(b.started[0]!.signal.aborted).toBe(false);
    expect(put.abortedAt).toBeUndefined();

    await advance(1);
    expect(b.stopped).toEqual([stepDown]);
    expect(b.started[0]!.signal.aborted).toBe(true);
    expect(put.abortedAt).toBe(stepDown);
    expect(b.elector.isLeader).toBe(false);
  });

  it('after stepping down it is a candidate: leads again only through a new acquire and onStartedLeading', async () => {
    const b = (current = await leading());
    b.api.behaviour.set('PUT', { stall: true });
    await advance(RETRY + DEADLINE); // past the step-down, with attempts as a candidate still hanging
    expect(b.stopped).toHaveLength(1);
    expect(b.started).toHaveLength(1);

    b.api.behaviour.delete('PUT');
    // A hanging attempt ends by its deadline; the one after it goes through.
    await advance(DEADLINE + 3 * RETRY);
    expect(b.started).toHaveLength(2);
    expect(b.started[1]!.at).toBeGreaterThan(b.stopped[0]!);
    expect(b.started[1]!.signal.aborted).toBe(false);
    expect(b.elector.isLeader).toBe(true);
  });

  it('a renewal answered after the deadline does not count (no silent re-elevation)', async () => {
    const b = (current = await leading());
    const stepDown = T0 + RETRY + DEADLINE;
    // The PUT at T0 + 2·RETRY is written at once, but its answer arrives after the step-down.
    b.api.behaviour.set('PUT', { answerAfterMs: stepDown + 500 - (T0 + 2 * RETRY) });
    await advance(stepDown + 500 - Date.now());
    expect(b.api.lease?.spec.renewTime).toBe(formatMicroTime(new Date(T0 + 2 * RETRY))); // it did land
    expect(b.stopped).toEqual([stepDown]);
    expect(b.elector.isLeader).toBe(false);
    expect(b.started).toHaveLength(1);
    expect(b.logger.messages('warn')).toContain(
      'the Lease was written after the renew deadline; not leading on that write',
    );
  });

  it('the deadline counts from when the renewal started, not from when it was answered', async () => {
    const b = (current = bed());
    b.elector.start();
    await advance(0);
    // The renewal at T0 + RETRY is answered 3 s later; then the API server stalls completely.
    b.api.behaviour.set('PUT', { answerAfterMs: 3000 });
    await advance(RETRY + 3000);
    b.api.behaviour.set('GET', { stall: true });
    b.api.behaviour.set('PUT', { stall: true });
    await advance(T0 + RETRY + DEADLINE - 1 - Date.now());
    expect(b.stopped).toEqual([]);
    await advance(1);
    expect(b.stopped).toEqual([T0 + RETRY + DEADLINE]);
  });

  it('a candidate whose acquiring write is answered after the deadline does not lead on it', async () => {
    const b = (current = bed());
    b.api.behaviour.set('POST', { answerAfterMs: DEADLINE + 500 });
    b.elector.start();
    await advance(DEADLINE + 500);
    expect(b.api.lease?.spec.holderIdentity).toBe('me');
    expect(b.started).toEqual([]);
    expect(b.elector.isLeader).toBe(false);
  });

  it('a candidate request that hangs is aborted renewDeadline after the attempt started', async () => {
    const b = (current = bed());
    b.api.behaviour.set('GET', { stall: true });
    b.elector.start();
    await advance(DEADLINE);
    expect(b.api.seen[0]).toEqual({ method: 'GET', at: T0, abortedAt: T0 + DEADLINE });
  });
});

describe('LeaderElector: other ways out', () => {
  it('a leader that sees another holder steps down at once, not at the deadline', async () => {
    const b = (current = await leading());
    b.api.writeAs('usurper');
    await advance(RETRY);
    expect(b.stopped).toEqual([T0 + 2 * RETRY]);
    expect(b.started[0]!.signal.aborted).toBe(true);
  });

  it('stop() clears the step-down timer and releases the Lease', async () => {
    const b = await leading();
    await b.elector.stop();
    expect(b.stopped).toEqual([T0 + RETRY]);
    expect(b.api.lease?.spec.holderIdentity).toBe('');
    expect(jest.getTimerCount()).toBe(0);
    await advance(LEASE);
    expect(b.stopped).toHaveLength(1);
  });

  it('stop() on a stalled API server gives up the release after renewDeadline and leaves no timer', async () => {
    const b = await leading();
    b.api.behaviour.set('GET', { stall: true });
    let done = false;
    const stopping = b.elector.stop().then(() => (done = true));
    await advance(DEADLINE - 1);
    expect(done).toBe(false);
    await advance(1);
    await stopping;
    expect(b.stopped).toEqual([T0 + RETRY]);
    expect(b.logger.messages('warn')).toContain('could not release the lease; it expires by itself');
    expect(jest.getTimerCount()).toBe(0);
  });
});
