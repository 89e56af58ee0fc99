// Which default upstreams the server may ask right now. pod-gateway's kill switch: a query for a
// name outside the split domains may only leave through the VPN, so an upstream whose route does
// not leave by the VPN interface (the VPN is down, or not up yet, or the VPN client has not
// rewritten resolv.conf and it still names the cluster DNS) is not asked; the client gets SERVFAIL.
import { errorMessage, silentLogger, type Logger } from '@knet/runtime';
import { upstreamName, type Upstream } from './types';

/** Consulted on every forwarded query that no split rule matched; must answer synchronously. */
export interface UpstreamGate {
  /** Of the default upstreams, those that may be asked now (none: the query gets SERVFAIL). */
  allowed(upstreams: readonly Upstream[]): readonly Upstream[];
  /** The default upstreams changed (resolv.conf, setUpstreams): new ones are checked before use. */
  upstreamsChanged(upstreams: readonly Upstream[]): void;
}

export interface RouteGateOptions {
  /** Upstreams are asked only while their route leaves by this interface (the VPN's: tun0, wg0). */
  via: string;
  /** The interface the kernel would send a packet to `address` by, or undefined when unreachable. */
  routeDev: (address: string) => Promise<string | undefined>;
  /** How often routes are looked up again (default 1000 ms): the longest a route change goes unseen. */
  intervalMs?: number;
  logger?: Logger;
}

/** An upstream's last check: may it be asked, and why not. */
interface Verdict {
  ok: boolean;
  /** The interface its route leaves by (`unreachable` when none). */
  dev: string;
}

/**
 * {@link UpstreamGate} by route: an upstream is allowed while `ip route get <upstream>` leaves by
 * `via`. Fails closed: an upstream not checked yet (just read from resolv.conf) is not allowed
 * until its first lookup, and one whose lookup fails is not allowed. Routes are looked up again
 * every `intervalMs`, and at once when the upstreams change. The kill switch's iptables rules stay
 * the backstop for the interval: they drop what leaves the gateway by another interface, except DNS
 * to the cluster DNS (for the split domains), which this gate is what keeps closed.
 */
export class RouteUpstreamGate implements UpstreamGate {
  private readonly log: Logger;
  private readonly verdicts = new Map<string, Verdict>();
  private upstreams: readonly Upstream[] = [];
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private again = false;
  private blocked_ = 0;

  constructor(private readonly o: RouteGateOptions) {
    this.log = o.logger ?? silentLogger;
  }

  /** Upstreams refused at the last check (a gauge for metrics). */
  get blocked(): number {
    return this.blocked_;
  }

  /** Upstreams allowed at the last check. */
  get open(): number {
    return this.upstreams.filter((u) => this.verdicts.get(u.canonical)?.ok).length;
  }

  allowed(upstreams: readonly Upstream[]): readonly Upstream[] {
    let all = true;
    for (const u of upstreams) {
      if (this.verdicts.get(u.canonical)?.ok !== true) all = false;
    }
    return all ? upstreams : upstreams.filter((u) => this.verdicts.get(u.canonical)?.ok === true);
  }

  upstreamsChanged(upstreams: readonly Upstream[]): void {
    this.upstreams = upstreams;
    const keep = new Set(upstreams.map((u) => u.canonical));
    for (const k of this.verdicts.keys()) if (!keep.has(k)) this.verdicts.delete(k);
    void this.check();
  }

  /** Looks the routes up now and every `intervalMs` until stop(). */
  start(): Promise<void> {
    this.timer ??= setInterval(() => void this.check(), this.o.intervalMs ?? 1000);
    this.timer.unref();
    return this.check();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round of route lookups (a call during a round runs one more round after it). */
  check(): Promise<void> {
    if (this.checking) {
      this.again = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.again = false;
        await this.checkOnce();
      } while (this.again);
    })().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    const upstreams = this.upstreams;
    const results = await Promise.all(
      upstreams.map(async (u): Promise<[Upstream, Verdict]> => {
        try {
          const dev = (await this.o.routeDev(u.address)) ?? 'unreachable';
          return [u, { ok: dev === this.o.via, dev }];
        } catch (err) {
          return [u, { ok: false, dev: `unknown (${errorMessage(err)})` }];
        }
      }),
    );
    if (upstreams !== this.upstreams) {
      this.again = true; // changed while looking: the next round checks the new ones
      return;
    }
    for (const [u, v] of results) {
      const before = this.verdicts.get(u.canonical);
      this.verdicts.set(u.canonical, v);
      if (before?.ok === v.ok && before.dev === v.dev) continue;
      const fields = { upstream: upstreamName(u), route: v.dev, vpnInterface: this.o.via };
      if (v.ok) this.log.info(fields, 'DNS upstream routed through the VPN: asked again');
      else {
        this.log.warn(
          fields,
          `DNS upstream not routed through ${this.o.via}: names outside the split domains get SERVFAIL while it is not (kill switch)`,
        );
      }
    }
    this.blocked_ = results.filter(([, v]) => !v.ok).length;
  }
}
