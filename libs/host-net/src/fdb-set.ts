import { normalizeIp, parseIp } from './addr-math';
import { change } from './drift';
import { ZERO_MAC, type BridgeFdb, type FdbEntry, type FdbEntrySpec } from './fdb';
import { DeviceSet, orElse, unless } from './owned-set';
import type { Logger } from './runner';

export interface FdbSetOptions {
  /** The VXLAN device whose forwarding entries these are. */
  dev: string;
  /**
   * Which live entries are this set's, and removed when not desired: `device` (default) — every
   * entry of the device's own table that points at a remote VTEP (`dst`), learned ones included
   * (pod-gateway's client: the gateway is its only peer); or only the entries whose `dst` is inside
   * these prefixes.
   */
  owned?: 'device' | readonly string[];
  logger?: Logger;
}

/** A desired forwarding entry of a VXLAN device. */
export interface DesiredFdbEntry {
  /** Default the all-zeros MAC: broadcast, unknown unicast and multicast are flooded to `dst`. */
  mac?: string;
  /** The remote VTEP. */
  dst: string;
  /** Only when it differs from the device's VNI (`bridge fdb` prints it only then). */
  vni?: number;
  /** Only when it differs from the device's `dstport` (`bridge fdb` prints it only then). */
  port?: number;
}

interface WantEntry {
  mac: string;
  dst: string;
  vni?: number;
  port?: number;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The remote entries of one VXLAN device's forwarding table as desired state (the flood list:
 * all-zeros entries, one per remote VTEP; or a MAC → VTEP entry). Entries are keyed by MAC and
 * VTEP; one whose VNI or port differs is deleted and appended again. Owned entries not desired are
 * removed first, so a client that moves to a new gateway never floods to the old one. Entries of a
 * bridge's table (`master`) are never touched.
 */
export class FdbSet extends DeviceSet<readonly DesiredFdbEntry[], WantEntry, FdbEntry> {
  constructor(
    private readonly fdb: BridgeFdb,
    private readonly options: FdbSetOptions,
  ) {
    super('fdb', 'fdb', options);
  }

  /** The live remote entries of the device this set owns (none when the device is missing). */
  async owned(): Promise<FdbEntry[]> {
    const live = await orElse(['no-device'], [], () => this.fdb.list({ dev: this.options.dev }));
    return live
      .filter((e) => e.dst !== undefined && e.master === undefined && this.inOwnedPrefixes(e.dst))
      .sort((a, b) => this.liveKey(a).localeCompare(this.liveKey(b))); // the kernel lists in hash order
  }

  protected normalize(desired: readonly DesiredFdbEntry[]): WantEntry[] {
    const unicast = new Map<string, string>();
    return desired.map((d) => {
      const mac = (d.mac ?? ZERO_MAC).toLowerCase();
      const where = `${this.label}: entry ${mac} dst ${d.dst}`;
      if (!MAC.test(mac)) throw new TypeError(`${where}: invalid MAC address`);
      if (!parseIp(d.dst)) throw new TypeError(`${where}: dst is not an IP address`);
      const dst = normalizeIp(d.dst);
      if (!this.inOwnedPrefixes(dst))
        throw new TypeError(`${where}: dst is outside ${(this.prefixes ?? []).join(', ')}`);
      if (mac !== ZERO_MAC && !isMulticast(mac)) {
        // The kernel keeps one VTEP per unicast MAC (append to another is ignored).
        const other = unicast.get(mac);
        if (other !== undefined && other !== dst)
          throw new TypeError(`${where}: ${mac} already goes to ${other}`);
        unicast.set(mac, dst);
      }
      const want: WantEntry = { mac, dst };
      if (d.vni !== undefined) want.vni = d.vni;
      if (d.port !== undefined) want.port = d.port;
      return want;
    });
  }

  protected wantKey(e: WantEntry): string {
    return `${e.mac} ${e.dst}`;
  }

  protected liveKey(e: FdbEntry): string {
    return `${e.mac.toLowerCase()} ${normalizeIp(e.dst ?? '')}`;
  }

  protected compare(want: WantEntry, have: FdbEntry): string[] {
    const out: string[] = [];
    if (want.vni !== have.vni) out.push(change('vni', have.vni, want.vni));
    if (want.port !== have.port) out.push(change('port', have.port, want.port));
    return out;
  }

  protected describeWant(e: WantEntry): string {
    return describeEntry(e, this.options.dev);
  }

  protected describeLive(e: FdbEntry): string {
    return describeEntry({ ...e, dst: e.dst ?? '' }, this.options.dev);
  }

  protected async add(e: WantEntry): Promise<void> {
    await this.fdb.append({ ...e, dev: this.options.dev });
  }

  protected async change(want: WantEntry, have: FdbEntry): Promise<void> {
    await this.remove(have);
    await this.add(want);
  }

  protected async remove(e: FdbEntry): Promise<void> {
    // The kernel deletes a remote only when VNI and port match too.
    const spec: FdbEntrySpec = { mac: e.mac, dev: this.options.dev, dst: e.dst ?? '' };
    if (e.vni !== undefined) spec.vni = e.vni;
    if (e.port !== undefined) spec.port = e.port;
    await unless(['not-found', 'no-device'], () => this.fdb.delete(spec));
  }
}

function isMulticast(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

/** As `bridge fdb` prints it: `00:00:00:00:00:00 dst 192.0.2.2 [vni N] [port N] dev vxlan0`. */
function describeEntry(e: { mac: string; dst: string; vni?: number; port?: number }, dev: string): string {
  return [
    `${e.mac} dst ${e.dst}`,
    e.vni !== undefined ? ` vni ${e.vni}` : '',
    e.port !== undefined ? ` port ${e.port}` : '',
    ` dev ${dev}`,
  ].join('');
}
