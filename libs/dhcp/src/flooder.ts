// Making a limited broadcast out of a VXLAN device reach a client.
//
// A VXLAN device sends broadcast frames only to the remote VTEPs listed in all-zeros FDB entries
// (`00:00:00:00:00:00 dst VTEP`). pod-gateway's gateway vxlan0 has none: it learns client MAC →
// VTEP from incoming frames, which is enough for unicast but drops every broadcast. So before a
// broadcast reply the server asks the flooder to make sure the client's VTEP is in the flood list.
import { ZERO_MAC, type BridgeFdb, type FdbEntry } from '@knet/host-net';
import { errorMessage, silentLogger, type Logger } from '@knet/runtime';
import { normalizeMac } from './ipv4';

/** Makes limited broadcasts on the serving device reach the VTEP behind a client MAC. */
export interface VtepFlooder {
  /** Called before a broadcast reply to `chaddr`. Should not take long; errors are logged. */
  ensure(chaddr: string): Promise<void>;
  /** Called after leases ended with the chaddrs of the remaining active leases. */
  prune?(activeChaddrs: readonly string[]): Promise<void>;
}

export interface FdbVtepFlooderOptions {
  fdb: BridgeFdb;
  /** The VXLAN device, e.g. `vxlan0`. */
  dev: string;
  logger?: Logger;
  /** A chaddr ensured less than this long ago is not looked up again. Default 10 s. */
  cacheTtlMs?: number;
  now?: () => number;
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

  constructor(private readonly options: FdbVtepFlooderOptions) {
    this.logger = options.logger ?? silentLogger;
    this.ttl = options.cacheTtlMs ?? 10_000;
    this.now = options.now ?? Date.now;
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

  async ensure(chaddr: string): Promise<void> {
    const mac = normalizeMac(chaddr);
    const cached = this.vteps.get(mac);
    if (cached && this.now() - cached.at < this.ttl) return;
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
