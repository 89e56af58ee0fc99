import { normalizeIp, parsePrefix, prefixContains } from '../addr-math';
import { CommandError, CommandNotFoundError } from '../errors';
import { familyOf } from '../ip-args';
import type { Route } from '../ip-types';
import { ExecPinger } from '../ping';
import type { CommandRunner, RunResult } from '../runner';
import type { FakeIpRoute } from './fake-ip-route';

export interface FakePingerOptions {
  /** Answer from this fake's links, addresses and main routes, as the kernel would. */
  ip?: FakeIpRoute;
  /** When false, `ping` is missing (CommandNotFoundError, as without iputils-ping). Default true. */
  installed?: boolean;
}

/**
 * In-memory {@link Pinger}: {@link ExecPinger} over a simulated `ping`, so results and errors are
 * the real ones. Remote hosts answer once {@link answer}ed. With a FakeIpRoute it decides like the
 * kernel: a missing `-I` device fails (`SO_BINDTODEVICE`), a down one and a destination without
 * a route are "Network is unreachable", the host's own addresses answer (on `-I DEV` only those
 * of DEV), an IPv4 destination without a route is tried on-link from an explicit device. Only the
 * main table is consulted (no policy rules).
 */
export class FakePinger extends ExecPinger {
  private readonly sim: PingSimulator;

  constructor(options: FakePingerOptions = {}) {
    const sim = new PingSimulator(options);
    super(sim);
    this.sim = sim;
  }

  /** Makes `address` answer (a host beyond the links), optionally only when reached over `device`. */
  answer(address: string, options: { device?: string } = {}): this {
    this.sim.responders.set(normalizeIp(address), options.device);
    return this;
  }

  /** Makes `address` stop answering. */
  silence(address: string): this {
    this.sim.responders.delete(normalizeIp(address));
    return this;
  }

  /** Every echo request sent: its address and `-I` device. */
  get sent(): readonly { address: string; device?: string }[] {
    return this.sim.sent;
  }
}

class PingSimulator implements CommandRunner {
  readonly responders = new Map<string, string | undefined>();
  readonly sent: { address: string; device?: string }[] = [];

  constructor(private readonly options: FakePingerOptions) {}

  async run(cmd: string, args: readonly string[]): Promise<RunResult> {
    const command = [cmd, ...args];
    if (cmd !== 'ping') throw new TypeError(`FakePinger runs ping only, not ${cmd}`);
    if (this.options.installed === false) throw new CommandNotFoundError('ping', { command });
    const at = args.indexOf('-I');
    const device = at >= 0 ? args[at + 1] : undefined;
    const address = normalizeIp(args.at(-1) ?? '');
    this.sent.push(device === undefined ? { address } : { address, device });
    const fail = (exitCode: number, stderr = ''): never => {
      throw new CommandError({ command, exitCode, stderr });
    };
    const ok: RunResult = { stdout: '', stderr: '' };
    const answers = (via: string | undefined): boolean => {
      if (!this.responders.has(address)) return false;
      const only = this.responders.get(address);
      return only === undefined || only === via;
    };
    const ip = this.options.ip;
    if (!ip) return answers(device) ? ok : fail(1);

    const unreachable = 'ping: connect: Network is unreachable';
    const links = await ip.listLinks();
    const addresses = await ip.listAddresses();
    const loopback =
      address === '::1' || (familyOf(address) === 'inet' && prefixContains('127.0.0.0/8', address));
    const ownOn = (dev: string | undefined): boolean =>
      (dev === undefined || dev === 'lo') && loopback
        ? true
        : addresses.some((a) => (dev === undefined || a.dev === dev) && normalizeIp(a.local) === address);
    const local = ownOn(undefined);

    if (device !== undefined) {
      const link = links.find((l) => l.name === device);
      if (!link) return fail(2, `ping: SO_BINDTODEVICE ${device}: No such device`);
      if (!link.up) return fail(2, unreachable);
      if (local) return ownOn(device) ? ok : fail(1);
      // IPv4 from a bound device without a route assumes the destination is on-link; IPv6 does not.
      if (familyOf(address) === 'inet6' && !(await this.route(ip, address, device)))
        return fail(2, unreachable);
      return answers(device) ? ok : fail(1);
    }
    if (local) return links.find((l) => l.name === 'lo')?.up ? ok : fail(2, unreachable);
    const route = await this.route(ip, address);
    if (!route) return fail(2, unreachable);
    return answers(route.dev) ? ok : fail(1);
  }

  /** The longest-prefix route of the main table to `address` (over `device` if given). */
  private async route(ip: FakeIpRoute, address: string, device?: string): Promise<Route | undefined> {
    const routes = await ip.listRoutes({ family: familyOf(address) });
    let best: { route: Route; length: number } | undefined;
    for (const route of routes) {
      if (route.type !== 'unicast' || (device !== undefined && route.dev !== device)) continue;
      const length = route.dst === 'default' ? 0 : (parsePrefix(route.dst)?.length ?? -1);
      const matches = route.dst === 'default' || prefixContains(route.dst, address);
      if (matches && length >= 0 && (!best || length > best.length)) best = { route, length };
    }
    return best?.route;
  }
}
