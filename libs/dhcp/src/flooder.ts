// Making a limited broadcast out of a VXLAN device reach a client.
//
// A VXLAN device sends broadcast frames only to the remote VTEPs listed in all-zeros FDB entries
// (`00:00:00:00:00:00 dst VTEP`). pod-gateway's gateway vxlan0 has none: it learns client MAC →
// VTEP from incoming frames, which is enough for unicast but drops every broadcast. So before a
// broadcast reply the server asks the flooder to make sure the client's VTEP is in the flood list.
import { ZERO_MAC, type BridgeFdb, type FdbEntry } from '@knet/host-net';
import { errorMessage, silentLogger, type Logger } from '@knet/runtime';
import type { FdbEvent, FdbWatcher } from './fdb-watch';
import { normalizeMac } from './ipv4';

/** Makes limited broadcasts on the serving device reach the VTEP behind a client MAC. */
export interface VtepFlooder {
  /** Called before a broadcast reply to `chaddr`. Should not take long; errors are logged. */
  ensure(chaddr: string): Promise<void>;
  /** Called after leases ended with the chaddrs of the remaining active leases. */
  prune?(activeChaddrs: readonly string[]): Promise<void>;
  /** Called by DhcpServer.start() / stop(). */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /** The VTEP (pod IP) behind a client MAC, if known: the server may then send it replies directly. */
  vtepOf?(chaddr: string): Promise<string | undefined>;
}

export interface FdbVtepFlooderOptions {
  fdb: BridgeFdb;
  /** The VXLAN device, e.g. `vxlan0`. */
  dev: string;
  logger?: Logger;
  /** A chaddr ensured less than this long ago is not looked up again. Default 10 s. */
  cacheTtlMs?: number;
  now?: () => number;
  /**
   * Watch the FDB (e.g. {@link BridgeFdbWatcher}) instead of listing it per client: the client's
   * learned VTEP is known from the event of its first frame and the flood entry is appended
   * through one running `bridge -batch`, so a lease costs no process. Without it, or while it is
   * not working, each new client costs a `bridge fdb show` and a `bridge fdb append`.
   */
  watcher?: FdbWatcher;
  /** With a watcher: longest wait for the learn / append event before listing instead (default 250 ms). */
  watchWaitMs?: number;
}

/**
 * {@link VtepFlooder} on `bridge fdb`: looks up the learned entry for the chaddr (`bridge fdb show
 * dev vxlan0`) and appends `00:00:00:00:00:00 dst <VTEP>` if missing. When the chaddr was not
 * learned (the client used another chaddr than its frames' source MAC), every learned VTEP of the
 * device gets an entry. `prune` removes all-zeros entries whose VTEP serves no active lease any
 * more; it treats every all-zeros entry of the device as its own (the gateway's VXLAN device is
 * dedicated and starts without any), and does nothing while an active lease cannot be mapped to a
 * VTEP (never cut off a client that holds a lease).
 */
export class FdbVtepFlooder implements VtepFlooder {
  private readonly logger: Logger;
  private readonly ttl: number;
  private readonly now: () => number;
  /** chaddr → VTEPs it was flooded to, and when. */
  private readonly vteps = new Map<string, { dsts: string[]; at: number }>();
  private listing: Promise<FdbEntry[]> | undefined;
  private readonly appending = new Map<string, Promise<void>>();
  /** From the watcher: learned MAC → VTEP, and the VTEPs with a flood entry. */
  private watching = false;
  private readonly learned = new Map<string, string>();
  private readonly flooded = new Set<string>();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: FdbVtepFlooderOptions) {
    this.logger = options.logger ?? silentLogger;
    this.ttl = options.cacheTtlMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Starts the watcher (if any) and seeds its view with one listing. A failing watcher is logged. */
  async start(): Promise<void> {
    const watcher = this.options.watcher;
    if (!watcher || this.watching) return;
    try {
      await watcher.start(
        (e) => this.onEvent(e),
        (why) => {
          this.watching = false;
          this.logger.warn({ why }, 'dhcp: FDB watcher stopped; listing the FDB per client instead');
        },
      );
      this.watching = true;
      for (const e of await this.options.fdb.list({ dev: this.options.dev })) {
        if (e.dst) this.onEvent({ deleted: false, mac: e.mac, dev: this.options.dev, dst: e.dst });
      }
    } catch (err) {
      this.watching = false;
      this.logger.warn(
        { error: errorMessage(err) },
        'dhcp: cannot watch the FDB; listing it per client instead',
      );
    }
  }

  async stop(): Promise<void> {
    this.watching = false;
    await this.options.watcher?.stop();
  }

  private onEvent(e: FdbEvent): void {
    if (e.dev !== this.options.dev || !e.dst) return;
    const mac = normalizeMac(e.mac);
    if (mac === ZERO_MAC) {
      if (e.deleted) this.flooded.delete(e.dst);
      else this.flooded.add(e.dst);
    } else if (e.deleted) {
      if (this.learned.get(mac) === e.dst) this.learned.delete(mac);
    } else {
      this.learned.set(mac, e.dst);
    }
    for (const w of [...this.waiters]) w();
  }

  /** Resolves true as soon as `ready()` holds (re-checked on every event), false after `ms`. */
  private waitFor(ready: () => boolean, ms: number): Promise<boolean> {
    if (ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(ok);
      };
      const check = () => {
        if (ready()) done(true);
      };
      const timer = setTimeout(() => done(false), ms);
      this.waiters.add(check);
    });
  }

  /** The watched way: true when the client's VTEP is flooded, false to fall back to listing. */
  private async ensureWatched(mac: string): Promise<boolean> {
    const watcher = this.options.watcher;
    if (!watcher || !this.watching) return false;
    const wait = this.options.watchWaitMs ?? 250;
    if (!(await this.waitFor(() => this.learned.has(mac), wait))) return false;
    const dst = this.learned.get(mac) as string;
    if (!this.flooded.has(dst)) {
      if (!this.appending.has(dst)) {
        watcher.appendFlood(this.options.dev, dst);
        this.logger.info(
          { dev: this.options.dev, vtep: dst },
          'dhcp: added all-zeros FDB entry for a client VTEP',
        );
        const p = this.waitFor(() => this.flooded.has(dst), wait * 4).then(() => undefined);
        this.appending.set(dst, p);
        void p.finally(() => this.appending.delete(dst));
      }
      await this.appending.get(dst);
      if (!this.flooded.has(dst)) return false;
    }
    this.vteps.set(mac, { dsts: [dst], at: this.now() });
    return true;
  }

  /** One `bridge fdb show` shared by concurrent callers. */
  private list(): Promise<FdbEntry[]> {
    this.listing ??= this.options.fdb.list({ dev: this.options.dev }).finally(() => {
      this.listing = undefined;
    });
    return this.listing;
  }

  private append(dst: string): Promise<void> {
    let p = this.appending.get(dst);
    if (!p) {
      p = this.options.fdb
        .append({ mac: ZERO_MAC, dev: this.options.dev, dst })
        .catch((err: Error & { kind?: string }) => {
          if (err.kind !== 'exists') throw err;
        })
        .finally(() => this.appending.delete(dst));
      this.appending.set(dst, p);
      this.logger.info(
        { dev: this.options.dev, vtep: dst },
        'dhcp: added all-zeros FDB entry for a client VTEP',
      );
    }
    return p;
  }

  /**
   * The VTEP behind `chaddr`: watched, as soon as the learn event of the client's frame arrives
   * (at most `watchWaitMs`); else from one listing. Undefined when it was not learned.
   */
  async vtepOf(chaddr: string): Promise<string | undefined> {
    const mac = normalizeMac(chaddr);
    if (this.options.watcher && this.watching) {
      const wait = this.options.watchWaitMs ?? 250;
      if (await this.waitFor(() => this.learned.has(mac), wait)) return this.learned.get(mac);
    }
    return (await this.list()).find((e) => e.mac.toLowerCase() === mac && e.dst)?.dst;
  }

  async ensure(chaddr: string): Promise<void> {
    const mac = normalizeMac(chaddr);
    const cached = this.vteps.get(mac);
    if (cached && this.now() - cached.at < this.ttl) return;
    if (await this.ensureWatched(mac)) return;
    const entries = await this.list();
    const learned = entries.find((e) => e.mac.toLowerCase() === mac && e.dst);
    const flooded = new Set(entries.filter((e) => e.mac === ZERO_MAC && e.dst).map((e) => e.dst as string));
    const dsts = learned?.dst
      ? [learned.dst]
      : [...new Set(entries.filter((e) => e.mac !== ZERO_MAC && e.dst).map((e) => e.dst as string))];
    if (dsts.length === 0) {
      this.logger.debug({ chaddr: mac, dev: this.options.dev }, 'dhcp: no learned VTEP for the client yet');
      return;
    }
    if (!learned) {
      this.logger.debug(
        { chaddr: mac, vteps: dsts },
        'dhcp: chaddr not learned; flooding to every learned VTEP',
      );
    }
    await Promise.all(dsts.filter((d) => !flooded.has(d)).map((d) => this.append(d)));
    this.vteps.set(mac, { dsts, at: this.now() });
  }

  async prune(activeChaddrs: readonly string[]): Promise<void> {
    const active = new Set(activeChaddrs.map(normalizeMac));
    for (const mac of this.vteps.keys()) if (!active.has(mac)) this.vteps.delete(mac);
    const entries = await this.list();
    const learned = new Map(
      entries.filter((e) => e.mac !== ZERO_MAC && e.dst).map((e) => [e.mac.toLowerCase(), e.dst as string]),
    );
    const inUse = new Set<string>();
    for (const mac of active) {
      const dsts = [
        ...(this.vteps.get(mac)?.dsts ?? []),
        ...(learned.has(mac) ? [learned.get(mac) as string] : []),
      ];
      if (dsts.length === 0) {
        this.logger.debug(
          { chaddr: mac },
          'dhcp: an active lease has no known VTEP; not pruning flood entries',
        );
        return;
      }
      for (const d of dsts) inUse.add(d);
    }
    for (const e of entries) {
      if (e.mac !== ZERO_MAC || !e.dst || inUse.has(e.dst)) continue;
      try {
        await this.options.fdb.delete({ mac: ZERO_MAC, dev: this.options.dev, dst: e.dst });
        this.logger.info(
          { dev: this.options.dev, vtep: e.dst },
          'dhcp: removed all-zeros FDB entry (no active lease)',
        );
      } catch (err) {
        this.logger.warn(
          { dev: this.options.dev, vtep: e.dst, error: errorMessage(err) },
          'dhcp: cannot remove FDB entry',
        );
      }
    }
  }
}
