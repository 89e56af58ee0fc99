import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '@knet/runtime';
import { decodeApiError, isAlreadyExists, isConflict, isNotFound, wrapApiError } from './errors';
import { kubeRequest } from './request';

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
}

/**
 * Lease-based leader election (coordination.k8s.io/v1), the algorithm of client-go's
 * leaderelection: a candidate takes the Lease when it is absent, free, or not renewed for
 * leaseDuration as observed by its own clock (so clock skew between nodes does not matter);
 * writes are conditional on resourceVersion, so exactly one candidate wins a race.
 */
export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly now: () => number;
  private observed: { holder: string; renewTime: string; at: number } | undefined;
  private lastRenew = 0;
  private leading = false;
  private leaderAbort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private currentLeader = '';
  private readonly path: string;

  constructor(private readonly o: LeaderElectorOptions) {
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
    this.now = o.now ?? Date.now;
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
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) {
        this.lastRenew = this.now();
        if (!this.leading) this.becomeLeader();
      } else if (this.leading && this.now() - this.lastRenew > this.renewDeadlineMs) {
        this.loseLeadership('could not renew within the renew deadline');
      }
    } catch (e) {
      const d = decodeApiError(e);
      this.o.logger?.warn(
        { lease: this.o.name, code: d.code, err: d.message },
        'leader election attempt failed',
      );
      if (this.leading && this.now() - this.lastRenew > this.renewDeadlineMs) {
        this.loseLeadership('could not renew within the renew deadline');
      }
    }
    if (this.running) {
      const jitter = this.leading ? 1 : 1 + Math.random() * 0.2;
      this.timer = setTimeout(() => void this.tick(), this.retryPeriodMs * jitter);
    }
  }

  /** One attempt; true when we hold the lease afterwards. Exposed for tests. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date(this.now());
    const seconds = Math.ceil(this.leaseDurationMs / 1000);
    let lease: Lease;
    try {
      lease = await kubeRequest<Lease>(this.o.kc, {
        method: 'GET',
        path: `${this.path}/${encodeURIComponent(this.o.name)}`,
      });
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
        await kubeRequest(this.o.kc, { method: 'POST', path: this.path, body: fresh });
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
      await kubeRequest(this.o.kc, {
        method: 'PUT',
        path: `${this.path}/${encodeURIComponent(this.o.name)}`,
        body: lease,
      });
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

  private becomeLeader(): void {
    this.leading = true;
    this.leaderAbort = new AbortController();
    this.o.logger?.info({ lease: this.o.name, identity: this.o.identity }, 'started leading');
    this.o.onStartedLeading?.(this.leaderAbort.signal);
  }

  private loseLeadership(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.leaderAbort?.abort(new Error(`lost leadership: ${why}`));
    this.o.logger?.warn({ lease: this.o.name, identity: this.o.identity, why }, 'stopped leading');
    this.o.onStoppedLeading?.();
  }

  /** Stops campaigning; a leader steps down and (by default) frees the lease for a fast hand-over. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    const wasLeader = this.leading;
    this.loseLeadership('stopped');
    if (wasLeader && (this.o.releaseOnStop ?? true)) {
      try {
        const lease = await kubeRequest<Lease>(this.o.kc, {
          method: 'GET',
          path: `${this.path}/${encodeURIComponent(this.o.name)}`,
        });
        if (lease.spec?.holderIdentity === this.o.identity) {
          lease.spec = {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: formatMicroTime(new Date(this.now())),
          };
          await kubeRequest(this.o.kc, {
            method: 'PUT',
            path: `${this.path}/${encodeURIComponent(this.o.name)}`,
            body: lease,
          });
        }
      } catch (e) {
        this.o.logger?.warn(
          { lease: this.o.name, err: decodeApiError(e).message },
          'could not release the lease; it expires by itself',
        );
      }
    }
  }
}
