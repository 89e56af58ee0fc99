import { addressIndex, ipOf, nthAddress, prefixLength } from './ip';

/**
 * WireGuard IPs of the segments: Kilo's allocator (pkg/mesh/ip.go `newAllocator`/`next`) and
 * knet's stable variant of it.
 */

/** Kilo's `allocator`: hands out the addresses of a subnet in order, skipping its network address. */
export interface Allocator {
  /**
   * The next address as `<ip>/<subnet length>` (Kilo's `next()` returns the IP with the subnet's
   * mask), or undefined once the subnet is exhausted.
   */
  next(): string | undefined;
}

/**
 * Kilo's `newAllocator(subnet)`: the first address handed out is the network address + 1
 * (`10.4.0.0/16` → `10.4.0.1/16`), then +2, … up to and including the last address of the subnet
 * (Kilo does not spare a broadcast address: a /31 gives its `.1`, a /32 gives nothing).
 *
 * Kilo starts counting from the subnet's address as given; `--subnet` is parsed with
 * `net.ParseCIDR`, which masks it, so we start from the network address.
 *
 * One difference: Kilo's `next()` returns a non-nil value with an empty IP the first time it runs
 * past the end (only the call after that returns nil), so `NewTopology` hands the first segment
 * past the end an empty WireGuard IP. Ours returns undefined at once.
 */
export function newAllocator(subnet: string): Allocator {
  const length = prefixLength(subnet);
  let index = 0;
  let done = false;
  return {
    next(): string | undefined {
      if (done) return undefined;
      index++;
      const address = nthAddress(subnet, index);
      if (address === undefined) {
        done = true;
        return undefined;
      }
      return `${address}/${length}`;
    },
  };
}

/**
 * Whether Kilo's allocator could ever hand out `address` from `subnet`: inside it, same family,
 * and not the network address itself.
 */
export function isAllocatable(subnet: string, address: string): boolean {
  const index = addressIndex(subnet, ipOf(address));
  return index !== undefined && index >= 1;
}

/** The address Kilo gives the segment at `index` (0-based, segments sorted by key), if any. */
export function sortOrderAddress(subnet: string, index: number): string | undefined {
  return nthAddress(subnet, index + 1);
}

export interface AssignOptions {
  /** knet's stable WireGuard IPs (default true); false gives Kilo's pure sort order. */
  stable?: boolean;
}

/**
 * The WireGuard IP (bare address) of each segment, in segment order; undefined where the subnet
 * has no address left.
 *
 * `published[i]` is what segment i's leader publishes in `kilo.squat.ai/wireguard-ip` (a CIDR such
 * as `10.4.0.3/16`, or undefined).
 *
 * With `stable: false` this is exactly Kilo's `NewTopology`: segment i gets the (i+1)-th address
 * of the subnet, whatever anyone published.
 *
 * With `stable: true` (the default) a segment's address is, in this order of preference:
 * 1. the address its leader publishes, if it is inside the subnet, allocatable (see
 *    {@link isAllocatable}) and not already taken by an earlier segment;
 * 2. else its sort-order address (the one Kilo would give it), unless a segment claimed that
 *    address in step 1 or it is otherwise taken;
 * 3. else the lowest free allocatable address.
 *
 * Why: a real Kilo leader always publishes its sort-order address, so for Kilo-led segments both
 * implementations agree. Our leaders keep their published address when a location is added or
 * removed, so nothing renumbers and hand-written Peer configs (which route to a segment's
 * WireGuard IP) stay valid. With no published addresses the result equals Kilo's exactly.
 */
export function assignWireGuardIPs(
  subnet: string,
  published: readonly (string | undefined)[],
  options: AssignOptions = {},
): (string | undefined)[] {
  const stable = options.stable ?? true;
  const result: (string | undefined)[] = published.map(() => undefined);
  const taken = new Set<string>();
  const take = (i: number, address: string): void => {
    result[i] = address;
    taken.add(address);
  };
  if (stable) {
    published.forEach((cidr, i) => {
      if (cidr === undefined || cidr === '') return;
      const address = ipOf(cidr);
      if (isAllocatable(subnet, address) && !taken.has(address)) take(i, address);
    });
  }
  published.forEach((_, i) => {
    if (result[i] !== undefined) return;
    const address = sortOrderAddress(subnet, i);
    if (address !== undefined && !taken.has(address)) take(i, address);
  });
  if (!stable) return result;
  let cursor = 1;
  published.forEach((_, i) => {
    if (result[i] !== undefined) return;
    for (
      let address = nthAddress(subnet, cursor);
      address !== undefined;
      address = nthAddress(subnet, ++cursor)
    ) {
      if (!taken.has(address)) {
        take(i, address);
        return;
      }
    }
  });
  return result;
}
