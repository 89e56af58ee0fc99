import {
  AddressSet,
  CommandError,
  IptablesReconciler,
  RouteTable,
  RuleSet,
  WireGuardDevice,
  describeDrift,
  type HostNet,
  type Logger,
  type RuleSpec,
  type StateDrift,
  type WgInterfaceState,
} from '@knet/host-net';
import { KILO_TABLE, TUNL_INTERFACE } from '@knet/kilo';
import type { DesiredDatapath } from '@knet/kilo';

/**
 * The route and rule protocol that marks what kilo-agent put in place. Kilo uses `proto static`
 * and remembers its routes in memory, so a crashed kg leaks them and a restarted one cannot tell
 * them from an administrator's static routes; a protocol of our own lets a restarted agent (and
 * `--clean-up`) find exactly its own, and never touch anyone else's.
 */
export const ROUTE_PROTOCOL = 107;
/** Priority of the table-1107 rules (Kilo lets the kernel pick one; a rule needs one to be found again). */
export const RULE_PRIORITY = 1107;
/** Prefix of the iptables chains this agent owns (Kilo's names: KILO-NAT, KILO-IPIP). */
export const CHAIN_PREFIX = 'KILO-';

export interface DatapathOptions {
  iface: string;
  /** `--create-interface`: false means a wireguard-go sidecar creates the device, never us. */
  createInterface: boolean;
  logger?: Logger;
}

export interface ApplyReport {
  /** One line per repaired drift (empty when nothing changed). */
  repaired: string[];
  /** Whether `wg syncconf` (or a device creation) ran. */
  wireguardChanged: boolean;
}

/**
 * The node's datapath as desired state, through the drivers of @knet/host-net, in Kilo's apply
 * order: iptables, the IPIP tunnel's address, the WireGuard device (address, config only when it
 * differs — every peer compared — then up on a leader, down elsewhere), routes and rules last
 * (they may go through the device). Every driver owns only what it created.
 */
export class Datapath {
  private readonly wg: WireGuardDevice;
  private readonly addresses: AddressSet;
  private readonly tunnel: AddressSet;
  private readonly main: RouteTable;
  private readonly kilo: RouteTable;
  private readonly rules: RuleSet;
  private readonly ipt4: IptablesReconciler;
  private readonly ipt6: IptablesReconciler;
  private tunnelUsed = false;

  constructor(
    private readonly net: HostNet,
    private readonly o: DatapathOptions,
  ) {
    const logger = o.logger ? { logger: o.logger } : {};
    this.wg = new WireGuardDevice(net, { name: o.iface, ...logger });
    this.addresses = new AddressSet(net.ip, { dev: o.iface, ...logger });
    this.tunnel = new AddressSet(net.ip, { dev: TUNL_INTERFACE, family: 'inet', ...logger });
    this.main = new RouteTable(net.ip, { table: 'main', protocol: ROUTE_PROTOCOL, ...logger });
    this.kilo = new RouteTable(net.ip, { table: KILO_TABLE, protocol: ROUTE_PROTOCOL, ...logger });
    this.rules = new RuleSet(net.ip, { protocol: ROUTE_PROTOCOL, ...logger });
    this.ipt4 = new IptablesReconciler(net.iptables, [], { ownedPrefix: CHAIN_PREFIX, ...logger });
    this.ipt6 = new IptablesReconciler(net.ip6tables, [], { ownedPrefix: CHAIN_PREFIX, ...logger });
  }

  /** The live WireGuard device (`wg show`), or undefined when it does not exist yet. */
  async readDevice(): Promise<WgInterfaceState | undefined> {
    if (!(await this.net.ip.findLink(this.o.iface))) return undefined;
    return this.net.wg.show(this.o.iface);
  }

  /** Makes the live datapath equal to `d`; returns what it repaired. */
  async apply(d: DesiredDatapath): Promise<ApplyReport> {
    const repaired: string[] = [];
    const note = (drift: readonly StateDrift[]) => repaired.push(...drift.map(describeDrift));
    const v4 = await this.ipt4.set(d.iptables.inet);
    repaired.push(...v4.drift.map(describeDrift));
    if (d.iptables.inet6.length > 0 || (await this.ipt6.drift()).length > 0) {
      const v6 = await this.ipt6.set(d.iptables.inet6);
      repaired.push(...v6.drift.map(describeDrift));
    }
    if (d.tunnelAddress !== undefined) {
      await this.ensureTunnel();
      note((await this.tunnel.set([d.tunnelAddress])).drift);
    } else if (this.tunnelUsed) {
      note((await this.tunnel.cleanup()).drift);
      this.tunnelUsed = false;
    }
    if (!this.o.createInterface && !(await this.net.ip.findLink(this.o.iface))) {
      throw new Error(
        `WireGuard interface ${this.o.iface} does not exist, and --create-interface=false says another container (a wireguard-go sidecar) creates it: start that container, or drop --create-interface=false`,
      );
    }
    const wg = await this.wg.set(d.wireguard);
    note(wg.drift);
    note((await this.addresses.set(d.addresses)).drift);
    note((await this.main.set(d.routes.main)).drift);
    note((await this.kilo.set(d.routes.kilo)).drift);
    note((await this.rules.set(d.rules.map(withPriority))).drift);
    return { repaired, wireguardChanged: wg.changed };
  }

  /**
   * Kilo's clean-up: iptables rules and chains, routes and rules it made; the device only with
   * `iface` (`--clean-up-interface`). Errors are collected, so one failure does not stop the rest.
   */
  async cleanup(iface: boolean): Promise<string[]> {
    const errors: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (e) {
        errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    };
    await step('iptables', () => this.ipt4.cleanup());
    await step('ip6tables', () => this.ipt6.cleanup());
    await step('routes (main)', () => this.main.cleanup());
    await step(`routes (table ${KILO_TABLE})`, () => this.kilo.cleanup());
    await step('rules', () => this.rules.cleanup());
    if (this.tunnelUsed) await step(`${TUNL_INTERFACE} address`, () => this.tunnel.cleanup());
    if (iface) await step(`interface ${this.o.iface}`, () => this.wg.cleanup());
    else await step(`${this.o.iface} down`, () => this.setDownIfPresent());
    return errors;
  }

  private async setDownIfPresent(): Promise<void> {
    if (await this.net.ip.findLink(this.o.iface)) await this.net.ip.setLink(this.o.iface, { up: false });
  }

  /** tunl0 is the ipip module's fallback device: present in every namespace once the module is loaded. */
  private async ensureTunnel(): Promise<void> {
    const link = await this.net.ip.findLink(TUNL_INTERFACE);
    if (!link) {
      throw new Error(
        `--encapsulate needs the IPIP device ${TUNL_INTERFACE}, which the kernel's ipip module provides: load it (modprobe ipip) or run with --encapsulate never`,
      );
    }
    this.tunnelUsed = true;
    if (!link.flags?.includes('UP')) {
      try {
        await this.net.ip.setLink(TUNL_INTERFACE, { up: true });
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        throw new Error(`cannot bring ${TUNL_INTERFACE} up: ${e.message}`);
      }
    }
  }
}

function withPriority(r: RuleSpec): RuleSpec {
  return r.priority === undefined ? { ...r, priority: RULE_PRIORITY } : r;
}
