import { normalizeIp, parsePrefix, prefixContains } from './addr-math';
import { familyOf } from './ip-args';
import type { Address, Family, IpRoute } from './ip-types';
import { DeviceSet, orElse, unless } from './owned-set';
import type { Logger } from './runner';

export interface AddressSetOptions {
  /** The device whose addresses these are. */
  dev: string;
  /** Manage one family only (pod-gateway: `inet`, "the only IPv4 address of vxlan0"). */
  family?: Family;
  /**
   * Which live addresses are this set's, and removed when not desired: `device` (default) — every
   * address of the device (of `family`) except the kernel's IPv6 link-local ones; or only the
   * addresses inside these prefixes (e.g. Kilo's WireGuard subnet), leaving any other alone.
   */
  owned?: 'device' | readonly string[];
  /** Add IPv6 addresses with `nodad` (usable at once, no duplicate address detection). */
  nodad?: boolean;
  logger?: Logger;
}

interface WantAddress {
  family: Family;
  local: string;
  prefixLength: number;
}

/**
 * The addresses of one device as desired state: desired CIDRs (`192.0.2.1/24`, `2001:db8::1/64`)
 * are added, owned addresses not desired are removed — first, so an IPv6 address can change its
 * prefix length, and re-checked after, since removing a primary IPv4 address takes its
 * secondaries with it. A missing device has no addresses (adding to it fails with `no-device`).
 */
export class AddressSet extends DeviceSet<readonly string[], WantAddress, Address> {
  constructor(
    private readonly ip: IpRoute,
    private readonly options: AddressSetOptions,
  ) {
    super('address', 'addresses', options);
  }

  /** The live addresses of the device this set owns. */
  async owned(): Promise<Address[]> {
    const { dev, family } = this.options;
    const live = await orElse(['no-device'], [], () =>
      this.ip.listAddresses(family === undefined ? { dev } : { dev, family }),
    );
    return live.filter((a) => this.owns(a.local, a.family, a.scope));
  }

  private owns(local: string, family: Family, scope?: string): boolean {
    if (this.options.family !== undefined && family !== this.options.family) return false;
    if (this.prefixes) return this.inOwnedPrefixes(local);
    return !(family === 'inet6' && scope === 'link' && prefixContains('fe80::/10', local));
  }

  protected normalize(desired: readonly string[]): WantAddress[] {
    return desired.map((cidr) => {
      const p = parsePrefix(cidr);
      const [address = ''] = cidr.split('/');
      if (!p) throw new TypeError(`${this.label}: ${cidr} is not an address with prefix length`);
      const want: WantAddress = {
        family: familyOf(address),
        local: normalizeIp(address),
        prefixLength: p.length,
      };
      if (!this.owns(want.local, want.family)) {
        const scope = this.options.family ? `${this.options.family} ` : '';
        const within = this.prefixes ? ` within ${this.prefixes.join(', ')}` : '';
        throw new TypeError(`${this.label}: ${cidr} is not one it manages (${scope}addresses${within})`);
      }
      return want;
    });
  }

  protected wantKey(a: WantAddress): string {
    return `${a.local}/${a.prefixLength}`;
  }

  protected liveKey(a: Address): string {
    return `${normalizeIp(a.local)}/${a.prefixLength}`;
  }

  protected compare(): string[] {
    return [];
  }

  protected describeWant(a: WantAddress): string {
    return `${a.local}/${a.prefixLength} dev ${this.options.dev}`;
  }

  protected describeLive(a: Address): string {
    return `${a.cidr} dev ${this.options.dev}`;
  }

  protected async add(a: WantAddress): Promise<void> {
    const cidr = `${a.local}/${a.prefixLength}`;
    await this.ip.addAddress(this.options.dev, cidr, this.options.nodad ? { nodad: true } : {});
  }

  protected async change(): Promise<void> {
    // Never called: an address is its key.
  }

  protected async remove(a: Address): Promise<void> {
    // Gone meanwhile (with its primary, or its device): nothing left to remove.
    await unless(['not-found', 'no-device'], () => this.ip.deleteAddress(this.options.dev, a.cidr));
  }
}
