import { CommandError, formatCommandLine } from './errors';
import { familyOf, ipArgs } from './ip-args';
import { parseAddresses, parseLinks, parseNeighbours, parseRoutes, parseRules } from './ip-parse';
import type {
  Address,
  Family,
  IpRoute,
  Link,
  LinkChanges,
  Neighbour,
  NeighbourSpec,
  Route,
  RouteSpec,
  Rule,
  RuleSpec,
  VethOptions,
  VxlanOptions,
} from './ip-types';
import type { CommandRunner } from './runner';

/** {@link IpRoute} over the real `ip` binary (`ip -j` for reads). */
export class ExecIpRoute implements IpRoute {
  constructor(private readonly runner: CommandRunner) {}

  private async ip(args: string[], input?: string): Promise<string> {
    const { stdout } = await this.runner.run('ip', args, input === undefined ? {} : { input });
    return stdout;
  }

  async listLinks(): Promise<Link[]> {
    const args = ipArgs.listLinks();
    return parseLinks(await this.ip(args), formatCommandLine(['ip', ...args]));
  }

  async getLink(name: string): Promise<Link> {
    const args = ipArgs.getLink(name);
    const links = parseLinks(await this.ip(args), formatCommandLine(['ip', ...args]));
    const link = links.find((l) => l.name === name);
    if (!link) {
      throw new CommandError({
        command: ['ip', ...args],
        exitCode: 1,
        stderr: `Device "${name}" does not exist.`,
      });
    }
    return link;
  }

  async findLink(name: string): Promise<Link | undefined> {
    try {
      return await this.getLink(name);
    } catch (err) {
      if (err instanceof CommandError && err.kind === 'no-device') return undefined;
      throw err;
    }
  }

  async addVeth(name: string, peer: string, options?: VethOptions): Promise<void> {
    await this.ip(ipArgs.addVeth(name, peer, options));
  }

  async addBridge(name: string, options?: { mtu?: number }): Promise<void> {
    await this.ip(ipArgs.addBridge(name, options));
  }

  async addVxlan(name: string, options: VxlanOptions): Promise<void> {
    await this.ip(ipArgs.addVxlan(name, options));
  }

  async addWireGuard(name: string): Promise<void> {
    await this.ip(ipArgs.addWireGuard(name));
  }

  async setLink(name: string, changes: LinkChanges): Promise<void> {
    await this.ip(ipArgs.setLink(name, changes));
  }

  async deleteLink(name: string): Promise<void> {
    await this.ip(ipArgs.deleteLink(name));
  }

  async listAddresses(options?: { dev?: string; family?: Family }): Promise<Address[]> {
    const args = ipArgs.listAddresses(options);
    return parseAddresses(await this.ip(args), formatCommandLine(['ip', ...args]));
  }

  async addAddress(dev: string, cidr: string, options?: { nodad?: boolean }): Promise<void> {
    await this.ip(ipArgs.addAddress(dev, cidr, options));
  }

  async deleteAddress(dev: string, cidr: string): Promise<void> {
    await this.ip(ipArgs.deleteAddress(dev, cidr));
  }

  async flushAddresses(dev: string, options?: { family?: Family }): Promise<void> {
    await this.ip(ipArgs.flushAddresses(dev, options));
  }

  async listRoutes(options: { table?: string | number; family?: Family } = {}): Promise<Route[]> {
    const args = ipArgs.listRoutes(options);
    const table = String(options.table ?? 'main');
    try {
      return parseRoutes(
        await this.ip(args),
        options.family ?? 'inet',
        table,
        formatCommandLine(['ip', ...args]),
      );
    } catch (err) {
      // A numbered table springs into existence with its first route; before that it is empty.
      if (err instanceof CommandError && /FIB table does not exist/.test(err.stderr)) return [];
      throw err;
    }
  }

  async routeTo(dst: string): Promise<Route | undefined> {
    const args = ipArgs.routeTo(dst);
    try {
      const family = familyOf(dst);
      return parseRoutes(await this.ip(args), family, 'main', formatCommandLine(['ip', ...args]))[0];
    } catch (err) {
      if (err instanceof CommandError && /unreachable|No route to host/i.test(err.stderr)) return undefined;
      throw err;
    }
  }

  async replaceRoute(route: RouteSpec): Promise<void> {
    await this.ip(ipArgs.replaceRoute(route));
  }

  async deleteRoute(route: RouteSpec): Promise<void> {
    await this.ip(ipArgs.deleteRoute(route));
  }

  async listRules(options: { family?: Family } = {}): Promise<Rule[]> {
    const args = ipArgs.listRules(options);
    return parseRules(await this.ip(args), options.family ?? 'inet', formatCommandLine(['ip', ...args]));
  }

  async addRule(rule: RuleSpec): Promise<void> {
    await this.ip(ipArgs.addRule(rule));
  }

  async deleteRule(rule: RuleSpec): Promise<void> {
    await this.ip(ipArgs.deleteRule(rule));
  }

  async listNeighbours(options: { dev?: string; family?: Family } = {}): Promise<Neighbour[]> {
    const args = ipArgs.listNeighbours(options);
    return parseNeighbours(await this.ip(args), options.dev, formatCommandLine(['ip', ...args]));
  }

  async replaceNeighbour(neighbour: NeighbourSpec): Promise<void> {
    await this.ip(ipArgs.replaceNeighbour(neighbour));
  }

  async deleteNeighbour(neighbour: { dst: string; dev: string }): Promise<void> {
    await this.ip(ipArgs.deleteNeighbour(neighbour));
  }
}
