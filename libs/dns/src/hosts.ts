// Local names (the DHCP leases): name → IPv4 addresses, and the reverse (PTR) names of those
// addresses, kept in wire form so a query's lower-cased qname bytes look them up directly.
import { encodeName, ipv4Bytes, reverseName } from './wire';
import { normalizeDomain } from './split';

export interface LocalEntry {
  /** A-record RDATA (4 bytes each). */
  readonly a: readonly Buffer[];
  /** PTR-record RDATA (wire names). */
  readonly ptr: readonly Buffer[];
}

/** The lookup key of a dotted name: its lower-cased wire form as a latin1 string. */
export function nameKey(name: string): string {
  return encodeName(name.toLowerCase()).toString('latin1');
}

export class LocalNames {
  private table = new Map<string, LocalEntry>();
  readonly domain: string | undefined;

  /** With a `domain`, `name.domain` resolves too and PTR answers give `name.domain`. */
  constructor(domain?: string) {
    const d = domain === undefined ? '' : normalizeDomain(domain);
    this.domain = d === '' ? undefined : d;
  }

  /** Number of names (forward and reverse) answered. */
  get size(): number {
    return this.table.size;
  }

  /**
   * Replaces the table. Names are lower-cased and lose a trailing dot; names that are not valid
   * DNS names and values that are not IPv4 addresses are skipped and returned.
   */
  set(hosts: ReadonlyMap<string, readonly string[]>): { skipped: string[] } {
    const a = new Map<string, Buffer[]>();
    const ptr = new Map<string, Buffer[]>();
    const skipped: string[] = [];
    const add = (m: Map<string, Buffer[]>, key: string, rdata: Buffer) => {
      const list = m.get(key) ?? [];
      if (!list.some((b) => b.equals(rdata))) list.push(rdata);
      m.set(key, list);
    };
    for (const [rawName, addresses] of hosts) {
      const name = normalizeDomain(rawName);
      const fqdn = this.domain && !name.endsWith(`.${this.domain}`) ? `${name}.${this.domain}` : name;
      let keys: string[];
      let target: Buffer;
      try {
        keys = [nameKey(name)];
        if (fqdn !== name) keys.push(nameKey(fqdn));
        target = encodeName(fqdn);
      } catch {
        skipped.push(rawName);
        continue;
      }
      if (name === '') {
        skipped.push(rawName);
        continue;
      }
      for (const address of addresses) {
        const bytes = ipv4Bytes(address);
        if (!bytes) {
          skipped.push(`${rawName} ${address}`);
          continue;
        }
        for (const k of keys) add(a, k, bytes);
        add(ptr, nameKey(reverseName(address)), target);
      }
    }
    const table = new Map<string, LocalEntry>();
    for (const [k, list] of a) table.set(k, { a: list, ptr: [] });
    for (const [k, list] of ptr) table.set(k, { a: table.get(k)?.a ?? [], ptr: list });
    this.table = table;
    return { skipped };
  }

  /** The entry for a lower-cased wire name (see {@link nameKey}). */
  lookup(key: string): LocalEntry | undefined {
    return this.table.get(key);
  }
}
