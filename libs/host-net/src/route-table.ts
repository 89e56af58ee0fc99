import { canonicalPrefix, normalizeIp, parsePrefix } from './addr-math';
import { change } from './drift';
import { routeFamily } from './ip-args';
import { tableName } from './ip-names';
import type { Family, IpRoute, Route, RouteSpec } from './ip-types';
import { OwnedSet, ProtocolOwnership, unless } from './owned-set';
import type { Logger } from './runner';

export interface RouteTableOptions {
  /** The routing table (`main`, or a number of one's own, e.g. Kilo's 1107). */
  table: string | number;
  /**
   * The route protocol that marks the routes as this table's (`proto N`, a number or an rt_protos
   * name). Routes of the table with another protocol are never touched.
   */
  protocol: string | number;
  /** The families it manages (default both). */
  families?: readonly Family[];
  logger?: Logger;
}

/** A desired route, normalised: family, canonical dst, table and protocol filled in. */
interface WantRoute extends RouteSpec {
  family: Family;
  table: string;
  protocol: string;
}

/**
 * The routes of one table owned by one route protocol, IPv4 and IPv6, as desired state.
 *
 * A route's key is its family, destination and metric (IPv6's default 1024): a desired route
 * whose key is taken by a route that differs (gateway, device, source, scope, type) is changed in
 * place with `ip route replace`, and so is a foreign route at a desired key — the kernel keeps one
 * route per key. Owned routes whose key is not desired are deleted (with `proto N`, so never a
 * foreign one). `onlink` and `mtu` are applied but not compared (`ip -j route` does not show them).
 */
export class RouteTable extends OwnedSet<readonly RouteSpec[], WantRoute, Route> {
  private readonly table: string;
  private readonly ownership: ProtocolOwnership;
  protected readonly label: string;

  constructor(
    private readonly ip: IpRoute,
    options: RouteTableOptions,
  ) {
    super('route', options.logger);
    this.table = tableName(options.table);
    this.ownership = new ProtocolOwnership(options.protocol, options.families, 'this table');
    this.label = `route table ${this.table} proto ${this.ownership.protocol}`;
  }

  /** The live routes of the table with this protocol. */
  async owned(): Promise<Route[]> {
    return this.ownership.owned((family) => this.ip.listRoutes({ table: this.table, family }));
  }

  protected normalize(desired: readonly RouteSpec[]): WantRoute[] {
    return desired.map((r) => {
      const where = `${this.label}: route ${r.dst}`;
      if (r.table !== undefined && tableName(r.table) !== this.table) {
        throw new TypeError(`${where} names table ${r.table}: leave it out or use ${this.table}`);
      }
      if (r.dst !== 'default' && !parsePrefix(r.dst)) throw new TypeError(`${where}: not a prefix`);
      const family = routeFamily(r);
      this.ownership.check(where, family, r.protocol);
      const want: WantRoute = {
        ...r,
        family,
        dst: canonicalPrefix(r.dst),
        table: this.table,
        protocol: this.ownership.protocol,
      };
      if (r.via !== undefined) want.via = normalizeIp(r.via);
      if (r.src !== undefined) want.src = normalizeIp(r.src);
      return want;
    });
  }

  protected wantKey(r: WantRoute): string {
    return `${r.family} ${r.dst} ${r.metric ?? defaultMetric(r.family)}`;
  }

  protected liveKey(r: Route): string {
    return `${r.family} ${r.dst} ${r.metric ?? defaultMetric(r.family)}`;
  }

  protected compare(want: WantRoute, have: Route): string[] {
    const out: string[] = [];
    const type = want.type ?? 'unicast';
    if (type !== have.type) out.push(change('type', have.type, type));
    if (want.via !== have.gateway) out.push(change('via', have.gateway, want.via));
    if (want.dev !== undefined && want.dev !== have.dev) out.push(change('dev', have.dev, want.dev));
    if (want.src !== undefined && want.src !== have.prefsrc) out.push(change('src', have.prefsrc, want.src));
    if (want.scope !== undefined && want.scope !== (have.scope ?? 'global')) {
      out.push(change('scope', have.scope ?? 'global', want.scope));
    }
    return out;
  }

  protected describeWant(r: WantRoute): string {
    return this.describe(r.type ?? 'unicast', r.dst, r.via, r.dev, r.src, r.metric);
  }

  protected describeLive(r: Route): string {
    return this.describe(r.type, r.dst, r.gateway, r.dev, r.prefsrc, r.metric);
  }

  /** As `ip route` prints it (the table unless main). */
  private describe(
    type: string,
    dst: string,
    via: string | undefined,
    dev: string | undefined,
    src: string | undefined,
    metric: number | undefined,
  ): string {
    return [
      type === 'unicast' ? '' : `${type} `,
      dst,
      via ? ` via ${via}` : '',
      dev ? ` dev ${dev}` : '',
      src ? ` src ${src}` : '',
      metric !== undefined ? ` metric ${metric}` : '',
      this.table === 'main' ? '' : ` table ${this.table}`,
    ].join('');
  }

  protected async add(r: WantRoute): Promise<void> {
    await this.ip.replaceRoute(r);
  }

  protected async change(r: WantRoute): Promise<void> {
    await this.ip.replaceRoute(r);
  }

  protected async remove(r: Route): Promise<void> {
    const spec: RouteSpec = {
      dst: r.dst,
      family: r.family,
      table: this.table,
      protocol: this.ownership.protocol,
    };
    if (r.type !== 'unicast') spec.type = r.type as RouteSpec['type'];
    if (r.metric !== undefined) spec.metric = r.metric;
    // Gone meanwhile (e.g. with its device): nothing left to remove.
    await unless(['not-found', 'no-device'], () => this.ip.deleteRoute(spec));
  }
}

/** The metric the kernel gives a route without one. */
function defaultMetric(family: Family): number {
  return family === 'inet6' ? 1024 : 0;
}
