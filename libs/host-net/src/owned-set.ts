import { describeDrift, type DriftObject, type SetResult, type StateDrift, type StateDriver } from './drift';
import { parsePrefix, prefixContains } from './addr-math';
import { CommandError, type CommandErrorKind } from './errors';
import { protocolName } from './ip-names';
import type { Family } from './ip-types';
import type { Logger } from './runner';

/** How one desired item compares with the live one of the same key. */
interface Changed<W, L> {
  want: W;
  have: L;
  changes: string[];
}

interface Plan<W, L> {
  missing: W[];
  extra: L[];
  changed: Changed<W, L>[];
}

/**
 * The algorithm the collection drivers (RouteTable, RuleSet, AddressSet, FdbSet) share: read the
 * live items this set owns, pair them with the desired ones by key, then add the missing ones,
 * change the differing ones and remove the owned ones no longer desired. A subclass says what it
 * owns, how items are keyed, compared, described, added, changed and removed.
 *
 * The first failing command stops a pass and is thrown; the live state is read afresh by every
 * call, so the next `set` carries on from wherever the last one stopped.
 */
export abstract class OwnedSet<D, W, L> implements StateDriver<D> {
  private last: W[] | undefined;

  protected constructor(
    private readonly object: DriftObject,
    protected readonly logger: Logger | undefined,
  ) {}

  /** Validates the desired state (throwing TypeError before anything runs) into comparable items. */
  protected abstract normalize(desired: D): W[];
  /** The live items this set owns. */
  abstract owned(): Promise<L[]>;
  protected abstract wantKey(want: W): string;
  protected abstract liveKey(have: L): string;
  /** What differs between a desired item and the live one of the same key (`field have → want`). */
  protected abstract compare(want: W, have: L): string[];
  protected abstract describeWant(want: W): string;
  protected abstract describeLive(have: L): string;
  protected abstract add(want: W): Promise<void>;
  protected abstract change(want: W, have: L): Promise<void>;
  protected abstract remove(have: L): Promise<void>;
  /** Remove before adding (a removed item may take others with it: they are re-read and re-added). */
  protected readonly removeFirst: boolean = false;
  /** What the log and errors call this set, e.g. `route table 1107 proto 77`. */
  protected abstract readonly label: string;

  async drift(desired?: D): Promise<StateDrift[]> {
    const want = desired === undefined ? (this.last ?? []) : this.normalize(desired);
    return this.report(this.plan(want, await this.owned()));
  }

  async set(desired: D): Promise<SetResult> {
    const want = this.normalize(desired);
    this.last = want;
    const plan = this.plan(want, await this.owned());
    const drift = this.report(plan);
    if (drift.length === 0) return { changed: false, drift };
    this.logger?.debug({ driver: this.label, drift: drift.map(describeDrift) }, 'host-net: drift, applying');
    let missing = plan.missing;
    if (this.removeFirst && plan.extra.length > 0) {
      for (const have of plan.extra) await this.remove(have);
      missing = this.plan(want, await this.owned()).missing;
    }
    for (const w of missing) await this.add(w);
    for (const c of plan.changed) await this.change(c.want, c.have);
    if (!this.removeFirst) for (const have of plan.extra) await this.remove(have);
    return { changed: true, drift };
  }

  async cleanup(): Promise<SetResult> {
    const extra = await this.owned();
    const drift = this.report({ missing: [], extra, changed: [] });
    if (extra.length > 0)
      this.logger?.debug({ driver: this.label, count: extra.length }, 'host-net: cleanup');
    for (const have of extra) await this.remove(have);
    return { changed: extra.length > 0, drift };
  }

  private plan(want: readonly W[], live: readonly L[]): Plan<W, L> {
    const byKey = new Map<string, L>();
    for (const l of live) if (!byKey.has(this.liveKey(l))) byKey.set(this.liveKey(l), l);
    const wanted = new Set<string>();
    const plan: Plan<W, L> = { missing: [], extra: [], changed: [] };
    for (const w of want) {
      const key = this.wantKey(w);
      if (wanted.has(key)) continue;
      wanted.add(key);
      const have = byKey.get(key);
      if (!have) plan.missing.push(w);
      else {
        const changes = this.compare(w, have);
        if (changes.length > 0) plan.changed.push({ want: w, have, changes });
      }
    }
    // Every live item not desired is extra, duplicates of a desired key included.
    plan.extra = live.filter((l) => !wanted.has(this.liveKey(l)) || byKey.get(this.liveKey(l)) !== l);
    return plan;
  }

  private report(plan: Plan<W, L>): StateDrift[] {
    const object = this.object;
    return [
      ...plan.missing.map((w): StateDrift => ({ object, kind: 'missing', subject: this.describeWant(w) })),
      ...plan.changed.map((c): StateDrift => ({
        object,
        kind: 'changed',
        subject: this.describeWant(c.want),
        changes: c.changes,
      })),
      ...plan.extra.map((l): StateDrift => ({ object, kind: 'extra', subject: this.describeLive(l) })),
    ];
  }
}

/** Runs `fn`, ignoring a CommandError of one of `kinds` (e.g. deleting what is already gone). */
export async function unless(kinds: readonly CommandErrorKind[], fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof CommandError && kinds.includes(err.kind))) throw err;
  }
}

/** `fn()`, or `fallback` when it fails with a CommandError of one of `kinds` (e.g. a missing device). */
export async function orElse<T>(
  kinds: readonly CommandErrorKind[],
  fallback: T,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CommandError && kinds.includes(err.kind)) return fallback;
    throw err;
  }
}

/**
 * An {@link OwnedSet} of one device's items (addresses, FDB entries), owning all of the device's or
 * only those inside configured prefixes. Removes first: an item may block its replacement.
 */
export abstract class DeviceSet<D, W, L> extends OwnedSet<D, W, L> {
  protected override readonly removeFirst = true;
  protected readonly label: string;
  /** The owned prefixes, or undefined when the whole device is owned. */
  protected readonly prefixes: readonly string[] | undefined;

  protected constructor(
    object: DriftObject,
    what: string,
    options: { dev: string; owned?: 'device' | readonly string[]; logger?: Logger },
  ) {
    super(object, options.logger);
    this.label = `${what} of ${options.dev}`;
    const owned = options.owned ?? 'device';
    if (owned !== 'device') {
      for (const p of owned)
        if (!parsePrefix(p)) throw new TypeError(`${this.label}: owned prefix ${p} is not a prefix`);
    }
    this.prefixes = owned === 'device' ? undefined : owned;
  }

  /** Whether `address` is inside the owned prefixes (always, when the whole device is owned). */
  protected inOwnedPrefixes(address: string): boolean {
    return this.prefixes === undefined || this.prefixes.some((p) => prefixContains(p, address));
  }
}

/**
 * What routes and rules have in common: they are owned by a protocol number the kernel keeps with
 * them, in the families a set manages.
 */
export class ProtocolOwnership {
  readonly protocol: string;
  readonly families: readonly Family[];

  constructor(
    protocol: string | number,
    families: readonly Family[] = ['inet', 'inet6'],
    /** What the errors call the set: `this table`, `this set`. */
    private readonly what: string,
  ) {
    this.protocol = protocolName(protocol);
    this.families = families;
  }

  /** The items `list` returns for each family that carry the protocol (none for IPv6 without it). */
  async owned<T extends { protocol?: string }>(list: (family: Family) => Promise<T[]>): Promise<T[]> {
    const out: T[] = [];
    for (const family of this.families) {
      let items: T[];
      try {
        items = await list(family);
      } catch (err) {
        // A kernel without IPv6 (`ipv6.disable=1`) has no IPv6 routes or rules to own.
        const noFamily = err instanceof CommandError && /Address family not supported/i.test(err.stderr);
        if (family === 'inet6' && noFamily) continue;
        throw err;
      }
      out.push(...items.filter((i) => i.protocol === this.protocol));
    }
    return out;
  }

  /** Throws a TypeError unless a desired item (`where`) is of a managed family and names no other protocol. */
  check(where: string, family: Family, protocol: string | number | undefined): void {
    if (protocol !== undefined && protocolName(protocol) !== this.protocol) {
      throw new TypeError(`${where} names protocol ${protocol}: leave it out or use ${this.protocol}`);
    }
    if (!this.families.includes(family)) {
      throw new TypeError(`${where} is ${family}, but ${this.what} manages ${this.families.join(', ')} only`);
    }
  }
}
