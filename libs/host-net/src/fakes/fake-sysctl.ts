import { sysctlArgs, type Sysctl } from '../sysctl';
import type { LinkRegistry } from './fake-bridge-fdb';
import { ipFailure } from './fake-ip-route';

/** Keys a fresh network namespace has, with their usual defaults. */
export const DEFAULT_SYSCTLS: Readonly<Record<string, string>> = {
  'net.ipv4.ip_forward': '0',
  'net.ipv4.conf.all.forwarding': '0',
  'net.ipv4.conf.all.rp_filter': '0',
  'net.ipv4.conf.all.src_valid_mark': '0',
  'net.ipv4.conf.all.proxy_arp': '0',
  'net.ipv4.conf.all.accept_local': '0',
  'net.ipv4.conf.default.forwarding': '0',
  'net.ipv4.conf.default.rp_filter': '0',
  'net.ipv4.conf.default.proxy_arp': '0',
  'net.ipv4.conf.default.accept_local': '0',
  'net.ipv6.conf.all.forwarding': '0',
  'net.ipv6.conf.all.disable_ipv6': '0',
  'net.ipv6.conf.default.forwarding': '0',
  'net.ipv6.conf.default.disable_ipv6': '0',
  'net.ipv4.ip_local_port_range': '32768\t60999',
};

const PER_IF = /^net\.(ipv4|ipv6)\.conf\.([^.]+)\.(.+)$/;

/**
 * In-memory {@link Sysctl}. Unknown keys fail like procps ("cannot stat /proc/sys/..."). With a
 * link registry (a FakeIpRoute), `net.ipv4.conf.IFACE.*` exists for existing links and starts from
 * the `default` value, like the kernel.
 */
export class FakeSysctl implements Sysctl {
  private readonly values: Map<string, string>;

  constructor(
    initial: Record<string, string> = {},
    private readonly links?: LinkRegistry,
  ) {
    this.values = new Map(Object.entries({ ...DEFAULT_SYSCTLS, ...initial }));
  }

  private resolve(key: string, args: string[]): string {
    const fail = (): never =>
      ipFailure(
        args,
        1,
        `sysctl: cannot stat /proc/sys/${key.replace(/\./g, '/')}: No such file or directory`,
        'sysctl',
      );
    const m = PER_IF.exec(key);
    if (m && this.links && m[2] !== 'all' && m[2] !== 'default') {
      if (!this.links.hasLink(m[2] as string)) return fail();
      return this.values.get(key) ?? this.values.get(`net.${m[1]}.conf.default.${m[3]}`) ?? fail();
    }
    return this.values.get(key) ?? fail();
  }

  async get(key: string): Promise<string> {
    return this.resolve(key, sysctlArgs.get(key));
  }

  async set(key: string, value: string | number): Promise<void> {
    const args = sysctlArgs.set(key, value);
    this.resolve(key, args);
    this.values.set(key, String(value));
  }
}
