import { normalizeIp } from './addr-math';
import { change, describeDrift, type SetResult, type StateDrift, type StateDriver } from './drift';
import { assertIfName, ipArgs } from './ip-args';
import type { IpRoute, Link, VxlanOptions } from './ip-types';
import type { Logger } from './runner';

/** The desired VXLAN device: how it is created (`VxlanOptions`), its MTU, and whether it is up. */
export interface VxlanDeviceConfig extends VxlanOptions {
  /** Default true. */
  up?: boolean;
}

export interface VxlanDeviceOptions {
  /** The device's name (the device by that name is what this driver owns). */
  name: string;
  logger?: Logger;
}

/**
 * One VXLAN device as desired state. A device of that name of another kind, or with another VNI,
 * port, underlay device, local address or learning mode is deleted and created again (the kernel
 * cannot change those in place; the device's addresses, routes and FDB entries go with it, so set
 * those after this). The MTU, when given, and up/down are changed in place. `ttl` applies at
 * creation only. `cleanup` deletes the device if it is a VXLAN device.
 */
export class VxlanDevice implements StateDriver<VxlanDeviceConfig> {
  private last: VxlanDeviceConfig | undefined;

  constructor(
    private readonly ip: IpRoute,
    private readonly options: VxlanDeviceOptions,
  ) {
    assertIfName(options.name);
  }

  private get name(): string {
    return this.options.name;
  }

  async drift(desired?: VxlanDeviceConfig): Promise<StateDrift[]> {
    const want = this.desired(desired);
    return this.compare(want, await this.ip.findLink(this.name)).drift;
  }

  async set(desired: VxlanDeviceConfig): Promise<SetResult> {
    ipArgs.addVxlan(this.name, desired); // validates before anything runs
    this.last = desired;
    let link = await this.ip.findLink(this.name);
    const { drift, recreate } = this.compare(desired, link);
    if (drift.length === 0) return { changed: false, drift };
    this.options.logger?.debug(
      { driver: `vxlan ${this.name}`, drift: drift.map(describeDrift) },
      'host-net: drift, applying',
    );
    if (link && recreate) {
      await this.ip.deleteLink(this.name);
      link = undefined;
    }
    if (!link) {
      const { up: _up, ...create } = desired;
      await this.ip.addVxlan(this.name, create);
      link = await this.ip.getLink(this.name);
    }
    if (desired.mtu !== undefined && link.mtu !== desired.mtu)
      await this.ip.setLink(this.name, { mtu: desired.mtu });
    const up = desired.up ?? true;
    if (link.up !== up) await this.ip.setLink(this.name, { up });
    return { changed: true, drift };
  }

  async cleanup(): Promise<SetResult> {
    const link = await this.ip.findLink(this.name);
    if (link?.kind !== 'vxlan') return { changed: false, drift: [] };
    await this.ip.deleteLink(this.name);
    return { changed: true, drift: [{ object: 'link', kind: 'extra', subject: describeLink(link) }] };
  }

  private desired(desired: VxlanDeviceConfig | undefined): VxlanDeviceConfig {
    const want = desired ?? this.last;
    if (!want)
      throw new Error(`vxlan ${this.name}: no desired state yet (call set() first, or pass one to drift())`);
    return want;
  }

  private compare(
    want: VxlanDeviceConfig,
    link: Link | undefined,
  ): { drift: StateDrift[]; recreate: boolean } {
    const subject = describeWant(this.name, want);
    if (!link) return { drift: [{ object: 'link', kind: 'missing', subject }], recreate: true };
    const v = link.vxlan;
    const rebuild: string[] = [];
    if (link.kind !== 'vxlan' || !v) rebuild.push(change('kind', link.kind ?? 'device', 'vxlan'));
    else {
      if (v.id !== want.id) rebuild.push(change('id', v.id, want.id));
      if (v.port !== want.dstPort) rebuild.push(change('dstport', v.port, want.dstPort));
      if (want.dev !== undefined && v.dev !== want.dev) rebuild.push(change('dev', v.dev, want.dev));
      if (want.local !== undefined && v.local !== normalizeIp(want.local)) {
        rebuild.push(change('local', v.local, normalizeIp(want.local)));
      }
      if (want.learning !== undefined && v.learning !== want.learning) {
        rebuild.push(change('learning', v.learning ? 'on' : 'off', want.learning ? 'on' : 'off'));
      }
    }
    const inPlace: string[] = [];
    if (rebuild.length === 0 && want.mtu !== undefined && link.mtu !== want.mtu) {
      inPlace.push(change('mtu', link.mtu, want.mtu));
    }
    const up = want.up ?? true;
    if (rebuild.length === 0 && link.up !== up)
      inPlace.push(change('up', link.up ? 'yes' : 'no', up ? 'yes' : 'no'));
    const changes = [...rebuild, ...inPlace];
    if (changes.length === 0) return { drift: [], recreate: false };
    const drift: StateDrift = { object: 'link', kind: 'changed', subject, changes };
    if (rebuild.length > 0) drift.recreate = true;
    return { drift: [drift], recreate: rebuild.length > 0 };
  }
}

/** `vxlan0 (vxlan id 42 dstport 4789 dev eth0)`. */
function describeWant(name: string, o: VxlanOptions): string {
  const parts = [`vxlan id ${o.id} dstport ${o.dstPort}`];
  if (o.local !== undefined) parts.push(`local ${o.local}`);
  if (o.dev !== undefined) parts.push(`dev ${o.dev}`);
  return `${name} (${parts.join(' ')})`;
}

function describeLink(link: Link): string {
  if (!link.vxlan) return `${link.name} (${link.kind ?? 'device'})`;
  const { id, port, local, dev } = link.vxlan;
  return describeWant(link.name, { id, dstPort: port, ...(local ? { local } : {}), ...(dev ? { dev } : {}) });
}
