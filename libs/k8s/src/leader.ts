import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '@knet/runtime';
import { decodeApiError, isAlreadyExists, isConflict, isNotFound, wrapApiError } from './errors';
import { kubeRequest, type KubeRequest } from './request';

/**
 * metav1.MicroTime as the API server parses it: RFC 3339 with exactly six fractional digits.
 * (A JS Date serializes with three, which the API server rejects for Lease renewTime/acquireTime.)
 */
export function formatMicroTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  spec: LeaseSpec;
}

export interface LeaderElectorOptions {
  kc: KubeConfig;
  namespace: string;
  /** Lease name, e.g. "tower-proxy". */
  name: string;
  /** Unique per candidate, e.g. the pod name. */
  identity: string;
  /** How long a lease is valid without renewal (default 15 s). Followers wait this long after the last renewal they saw. */
  leaseDurationMs?: number;
  /** A leader that cannot renew for this long steps down (default 10 s; must be < leaseDuration). */
  renewDeadlineMs?: number;
  /** Time between attempts to acquire or renew (default 2 s). */
  retryPeriodMs?: number;
  /** On stop(), give the lease up at once so a follower takes over without waiting (default true). */
  releaseOnStop?: boolean;
  onStartedLeading?: (signal: AbortSignal) => void;
  onStoppedLeading?: () => void;
  onNewLeader?: (identity: string) => void;
  logger?: Logger;
  /** Clock, for tests. */
  now?: () => number;
  /** How the Lease requests reach the API server (default `kubeRequest` with `kc`), for tests. */
  request?: (req: KubeRequest) => Promise<unknown>;
}

/**
 * Lease-based leader election (coordination.k8s.io/v1), the algorithm of client-go's
 * leaderelection: a candidate takes the Lease when it is absent, free, or not renewed for
 * leaseDuration as observed by its own clock (so clock skew between nodes does not matter);
 * writes are conditional on resourceVersion, so exactly one candidate wins a race.
 *
 * A leader leads only until `lastRenew + renewDeadline`, where `lastRenew` is when its last
 * successful renewal *started* (the renewTime it wrote: a follower cannot have seen that write
 * earlier, and then waits a whole leaseDuration, which is longer). An independent timer steps it
 * down at that instant even while a GET or PUT still hangs on a stalled API server, and every
 * request of an attempt is aborted at the same deadline (client-go runs each renewal under a
 * context with the RenewDeadline timeout). A write that is answered after its deadline does not
 * count: the elector is then a candidate like any other and leads again only through a new
 * attempt, with a new onStartedLeading.
 */
export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly now: () => number;
  private readonly request: (req: KubeRequest) => Promise<unknown>;
  private observed: { holder: string; renewTime: string; at: number } | undefined;
  /** When the last successful acquire or renewal started. */
  private lastRenew = 0;
  private leading = false;
  private leaderAbort: AbortController | undefined;
  /** The next attempt. */
  private timer: NodeJS.Timeout | undefined;
  /** Fires at lastRenew + renewDeadline while leading. */
  private stepDownTimer: NodeJS.Timeout | undefined;
  /** Aborts the requests of the attempt in flight. */
  private attempt: AbortController | undefined;
  private running = false;
  /** Bumped by start() and stop(), so an attempt of an earlier run does not schedule more. */
  private generation = 0;
  private currentLeader = '';
  private readonly path: string;

  constructor(private readonly o: LeaderElectorOptions) {
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
    this.now = o.now ?? (() => Date.now());
    this.request = o.request ?? ((req) => kubeRequest(o.kc, req));
    if (this.renewDeadlineMs >= this.leaseDurationMs)
      throw new Error('leader election: renewDeadline must be shorter than leaseDuration');
    if (this.retryPeriodMs >= this.renewDeadlineMs)
      throw new Error('leader election: retryPeriod must be shorter than renewDeadline');
    if (!o.identity) throw new Error('leader election: identity must not be empty');
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(o.namespace)}/leases`;
  }

  /** Starts campaigning in the background. */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.tick(++this.generation);
  }

  /** Whether this candidate leads now. */
  get isLeader(): boolean {
    return this.leading;
  }

  private async tick(generation: number): Promise<void> {
    this.timer = undefined;
    if (!this.running || generation !== this.generation) return;
    const started = this.now();
    // A leader's attempt ends where its leadership does; a candidate's a renewDeadline from now.
    const deadline = (this.leading ? this.lastRenew : started) + this.renewDeadlineMs;
    const attempt = new AbortController();
    this.attempt = attempt;
    const expire = setTimeout(
      () => attempt.abort(new Error(`no answer within the renew deadline (${this.renewDeadlineMs} ms)`)),
      Math.max(0, deadline - started),
    );
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew(attempt.signal, started);
    } catch (e) {
      const d = decodeApiError(e);
      this.o.logger?.warn(
        { lease: this.o.name, code: d.code, err: d.message },
        'leader election attempt failed',
      );
    } finally {
      clearTimeout(expire);
      if (this.attempt === attempt) this.attempt = undefined;
    }
    if (!this.running || generation !== this.generation) return;
    if (ok && (attempt.signal.aborted || this.now() >= deadline)) {
      // The write went through, but too late to lead on: a follower may already have seen it
      // expire. Not leading; the next attempt starts over.
      this.o.logger?.warn(
        { lease: this.o.name, identity: this.o.identity },
        'the Lease was written after the renew deadline; not leading on that write',
      );
      ok = false;
    }
    if (ok) {
      this.lastRenew = started;
      this.armStepDown();
      if (!this.leading) this.becomeLeader();
    } else if (this.leading && this.currentLeader !== this.o.identity) {
      this.loseLeadership(`the Lease is held by ${this.currentLeader || 'nobody'}`);
    }
    const jitter = this.leading ? 1 : 1 + Math.random() * 0.2;
    this.timer = setTimeout(() => void this.tick(generation), this.retryPeriodMs * jitter);
  }

  /** One attempt; true when we hold the lease afterwards. Exposed for tests. */
  async tryAcquireOrRenew(signal?: AbortSignal, at: number = this.now()): Promise<boolean> {
    const now = new Date(at);
    const seconds = Math.ceil(this.leaseDurationMs / 1000);
    const leasePath = `${this.path}/${encodeURIComponent(this.o.name)}`;
    let lease: Lease;
    try {
      lease = (await this.request({ method: 'GET', path: leasePath, signal })) as Lease;
    } catch (e) {
      if (!isNotFound(e)) throw wrapApiError(`get Lease ${this.o.namespace}/${this.o.name}`, e);
      const fresh: Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: {
          holderIdentity: this.o.identity,
          leaseDurationSeconds: seconds,
          acquireTime: formatMicroTime(now),
          renewTime: formatMicroTime(now),
          leaseTransitions: 0,
        },
      };
      try {
        await this.request({ method: 'POST', path: this.path, body: fresh, signal });
      } catch (ce) {
        if (isAlreadyExists(ce)) return false; // someone else was faster
        throw wrapApiError(`create Lease ${this.o.namespace}/${this.o.name}`, ce);
      }
      this.observe(fresh.spec);
      return true;
    }

    const spec = lease.spec ?? {};
    this.observe(spec);
    const holder = spec.holderIdentity ?? '';
    const observedAt = this.observed?.at ?? this.now();
    const durationMs = (spec.leaseDurationSeconds ?? seconds) * 1000;
    if (holder && holder !== this.o.identity && observedAt + durationMs > this.now()) {
      return false; // held by a live leader
    }
    const takeover = holder !== this.o.identity;
    lease.spec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: seconds,
      acquireTime: takeover ? formatMicroTime(now) : (spec.acquireTime ?? formatMicroTime(now)),
      renewTime: formatMicroTime(now),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (takeover && holder ? 1 : 0),
    };
    try {
      await this.request({ method: 'PUT', path: leasePath, body: lease, signal });
    } catch (e) {
      if (isConflict(e)) return false; // lost the race; the winner's write is what we will observe next
      throw wrapApiError(`update Lease ${this.o.namespace}/${this.o.name}`, e);
    }
    this.observe(lease.spec);
    return true;
  }

  private observe(spec: LeaseSpec): void {
    const holder = spec.holderIdentity ?? '';
    const renewTime = spec.renewTime ?? '';
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
      this.observed = { holder, renewTime, at: this.now() };
    }
    if (holder !== this.currentLeader) {
      this.currentLeader = holder;
      if (holder) {
        this.o.logger?.info({ lease: this.o.name, leader: holder }, 'new leader observed');
        this.o.onNewLeader?.(holder);
      }
    }
  }

  /** (Re)arms the step-down at lastRenew + renewDeadline, independent of any request in flight. */
  private armStepDown(): void {
    clearTimeout(this.stepDownTimer);
    this.stepDownTimer = setTimeout(
      () => {
        this.stepDownTimer = undefined;
        this.loseLeadership(`not renewed within the renew deadline (${this.renewDeadlineMs} ms)`);
      },
      Math.max(0, this.lastRenew + this.renewDeadlineMs - this.now()),
    );
  }

  private becomeLeader(): void {
    this.leading = true;
    this.leaderAbort = new AbortController();
    this.o.logger?.info({ lease: this.o.name, identity: this.o.identity }, 'started leading');
    this.o.onStartedLeading?.(this.leaderAbort.signal);
  }

  private loseLeadership(why: string): void {
    clearTimeout(this.stepDownTimer);
    this.stepDownTimer = undefined;
    if (!this.leading) return;
    this.leading = false;
    // A renewal still in flight is abandoned: if it lands, it is not a reason to lead.
    this.attempt?.abort(new Error(`stepped down: ${why}`));
    this.leaderAbort?.abort(new Error(`lost leadership: ${why}`));
    this.o.logger?.warn({ lease: this.o.name, identity: this.o.identity, why }, 'stopped leading');
    this.o.onStoppedLeading?.();
  }

  /** Stops campaigning; a leader steps down and (by default) frees the lease for a fast hand-over. */
  async stop(): Promise<void> {
    this.running = false;
    this.generation++;
    clearTimeout(this.timer);
    this.timer = undefined;
    const wasLeader = this.leading;
    this.loseLeadership('stopped');
    this.attempt?.abort(new Error('leader election stopped'));
    if (wasLeader && (this.o.releaseOnStop ?? true)) {
      // Best effort, and bounded: a stalled API server must not hold up the shutdown.
      const release = new AbortController();
      const expire = setTimeout(
        () => release.abort(new Error(`no answer within ${this.renewDeadlineMs} ms`)),
        this.renewDeadlineMs,
      );
      const leasePath = `${this.path}/${encodeURIComponent(this.o.name)}`;
      try {
        const lease = (await this.request({
          method: 'GET',
          path: leasePath,
          signal: release.signal,
        })) as Lease;
        if (lease.spec?.holderIdentity === this.o.identity) {
          lease.spec = {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: formatMicroTime(new Date(this.now())),
          };
          await this.request({ method: 'PUT', path: leasePath, body: lease, signal: release.signal });
        }
      } catch (e) {
        this.o.logger?.warn(
          { lease: this.o.name, err: decodeApiError(e).message },
          'could not release the lease; it expires by itself',
        );
      } finally {
        clearTimeout(expire);
      }
    }
  }
}
