// Is an address still in use on the overlay? The gateway's own neighbour table knows: every pod
// that routes through the gateway has an entry there (the gateway must resolve it to answer it).
import { readFileSync } from 'node:fs';
import { isIPv4, normalizeMac } from './ipv4';

/** Says which MAC, if any, uses an address on the serving link. */
export interface AddressInUseCheck {
  /** The link-layer address the kernel has a complete (valid) neighbour entry for, if any. */
  holder(ip: string): Promise<string | undefined>;
}

/** ATF_COM in /proc/net/arp's flags: the entry is complete (REACHABLE, STALE, DELAY, PROBE, PERMANENT). */
const ATF_COM = 0x2;

/**
 * `/proc/net/arp` → IP → MAC of the complete entries (`dev`: only that device's). Lines that do not
 * parse are skipped.
 */
export function parseProcNetArp(text: string, dev?: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n').slice(1)) {
    const [ip, , flags, mac, , device] = line.trim().split(/\s+/);
    if (!ip || !isIPv4(ip) || !flags || !mac || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) continue;
    if ((Number.parseInt(flags, 16) & ATF_COM) === 0) continue;
    if (dev !== undefined && device !== dev) continue;
    out.set(ip, normalizeMac(mac));
  }
  return out;
}

export interface NeighbourTableCheckOptions {
  /** Only entries of this device (default: any; overlay addresses only exist on the overlay device). */
  dev?: string;
  /** Default /proc/net/arp (the network namespace of this process). */
  path?: string;
}

/**
 * {@link AddressInUseCheck} on the kernel's neighbour table, read from `/proc/net/arp` (no process,
 * no packet, ~0.05 ms). It sees every pod that exchanged traffic
 * with this gateway since its network namespace exists; a pod that has not cannot use the address
 * through this gateway either (clients reach each other only through it).
 */
export class NeighbourTableCheck implements AddressInUseCheck {
  constructor(private readonly options: NeighbourTableCheckOptions = {}) {}

  /**
   * Read synchronously: the kernel renders the file from memory (tens of µs), less than a trip
   * through libuv's thread pool would add to every offer.
   */
  holder(ip: string): Promise<string | undefined> {
    try {
      const text = readFileSync(this.options.path ?? '/proc/net/arp', 'utf8');
      return Promise.resolve(parseProcNetArp(text, this.options.dev).get(ip));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
