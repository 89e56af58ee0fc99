import { fdbArgs, ZERO_MAC, type BridgeFdb, type FdbEntry, type FdbEntrySpec } from '../fdb';
import { ipFailure } from './fake-ip-route';
import { normalizeIp } from '../addr-math';

/** Anything that can say whether a link exists, and which one it is (FakeIpRoute does). */
export interface LinkRegistry {
  hasLink(name: string): boolean;
  /** The link's ifindex: entries of a deleted link do not come back with a new link of that name. */
  linkIndex?(name: string): number | undefined;
}

/**
 * In-memory {@link BridgeFdb}. With a link registry (a FakeIpRoute), unknown devices fail like
 * `bridge` does. Appending an entry that exists is a no-op and deleting a missing all-zeros remote
 * succeeds silently — both as the kernel's VXLAN driver does; deleting any other missing entry fails.
 */
export class FakeBridgeFdb implements BridgeFdb {
  private entries: FdbEntry[] = [];
  /** The ifindex of the link each entry was added to (the kernel drops a link's entries with it). */
  private readonly owners = new WeakMap<FdbEntry, number | undefined>();

  constructor(private readonly links?: LinkRegistry) {}

  private check(args: string[], dev: string): void {
    if (this.links && !this.links.hasLink(dev)) ipFailure(args, 255, `Cannot find device "${dev}"`, 'bridge');
  }

  async list(options: { dev?: string } = {}): Promise<FdbEntry[]> {
    if (options.dev) this.check(fdbArgs.list(options), options.dev);
    this.forgetGone();
    return this.entries
      .filter((e) => !options.dev || e.dev === options.dev)
      .map((e) => ({ ...e, flags: [...e.flags] }));
  }

  /** Drops the entries of links that were deleted (and maybe re-created since). */
  private forgetGone(): void {
    const links = this.links;
    if (!links) return;
    this.entries = this.entries.filter(
      (e) => links.hasLink(e.dev) && (links.linkIndex?.(e.dev) ?? 0) === (this.owners.get(e) ?? 0),
    );
  }

  private toEntry(spec: FdbEntrySpec): FdbEntry {
    const entry: FdbEntry = {
      mac: spec.mac.toLowerCase(),
      dev: spec.dev,
      flags: [spec.target ?? 'self'],
      state: spec.state === 'dynamic' ? '' : (spec.state ?? 'permanent'),
    };
    if (spec.dst) entry.dst = normalizeIp(spec.dst);
    if (spec.vni !== undefined) entry.vni = spec.vni;
    if (spec.port !== undefined) entry.port = spec.port;
    if (entry.state === '') delete entry.state;
    this.owners.set(entry, this.links?.linkIndex?.(spec.dev));
    return entry;
  }

  private same(e: FdbEntry, spec: FdbEntrySpec, withDst: boolean): boolean {
    return (
      e.mac === spec.mac.toLowerCase() &&
      e.dev === spec.dev &&
      (!withDst || (e.dst ?? '') === (spec.dst ? normalizeIp(spec.dst) : ''))
    );
  }

  /** The remote the kernel matches on delete: dst, and the VNI and port (the device's when not given). */
  private sameRemote(e: FdbEntry, spec: FdbEntrySpec): boolean {
    return this.same(e, spec, true) && e.vni === spec.vni && e.port === spec.port;
  }

  async append(spec: FdbEntrySpec): Promise<void> {
    this.check(fdbArgs.change('append', spec), spec.dev);
    this.forgetGone();
    if (this.entries.some((e) => this.same(e, spec, true))) return;
    // Only all-zeros and multicast MACs have several remotes: appending to a unicast one is ignored.
    const multi = (parseInt(spec.mac.slice(0, 2), 16) & 1) === 1 || spec.mac === ZERO_MAC;
    if (!multi && this.entries.some((e) => this.same(e, spec, false))) return;
    this.entries.push(this.toEntry(spec));
  }

  async replace(spec: FdbEntrySpec): Promise<void> {
    this.check(fdbArgs.change('replace', spec), spec.dev);
    this.forgetGone();
    const i = this.entries.findIndex((e) => this.same(e, spec, false));
    if (i >= 0) this.entries[i] = this.toEntry(spec);
    else this.entries.push(this.toEntry(spec));
  }

  async delete(spec: FdbEntrySpec): Promise<void> {
    const args = fdbArgs.change('del', spec);
    this.check(args, spec.dev);
    this.forgetGone();
    const i = this.entries.findIndex((e) =>
      spec.dst === undefined ? this.same(e, spec, false) : this.sameRemote(e, spec),
    );
    if (i >= 0) {
      this.entries.splice(i, 1);
      return;
    }
    // The MAC is known but not with this remote: the VXLAN driver reports success, changing nothing.
    if (spec.dst !== undefined && this.entries.some((e) => this.same(e, spec, false))) return;
    ipFailure(args, 255, 'RTNETLINK answers: No such file or directory', 'bridge');
  }
}
