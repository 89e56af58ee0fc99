import { createHash } from 'node:crypto';
import { wireGuardPublicKey } from '@knet/crypto';
import { networkOf } from './addr-math';
import { change, describeDrift, type SetResult, type StateDrift, type StateDriver } from './drift';
import { CommandError } from './errors';
import { assertIfName } from './ip-args';
import type { IpRoute, Link } from './ip-types';
import type { Logger } from './runner';
import type { WgImplementation, WireGuard } from './wireguard';
import {
  normalizeEndpoint,
  renderWgConfig,
  type WgConfig,
  type WgInterfaceState,
  type WgPeerConfig,
} from './wireguard-format';

/** The desired WireGuard device: its configuration (as for `wg syncconf`), MTU and up/down. */
export interface WireGuardDeviceConfig extends WgConfig {
  mtu?: number;
  /** Default true. */
  up?: boolean;
}

export interface WireGuardDeviceOptions {
  /** The device's name (the device by that name is what this driver owns). */
  name: string;
  /** How a missing device is created (default `auto`: the kernel's, else wireguard-go). */
  implementation?: 'auto' | WgImplementation;
  logger?: Logger;
}

/** What differs, and what it takes to repair it. */
interface Comparison {
  drift: StateDrift[];
  /** The configuration differs: `wg syncconf`. */
  sync: boolean;
  /** Peers whose preshared key must go (`wg syncconf` keeps it): removed first, re-added by the sync. */
  dropPeers: string[];
  /** Peers whose keepalive must go off (`wg syncconf` keeps it): `wg set ... persistent-keepalive off`. */
  keepaliveOff: string[];
}

/**
 * One WireGuard device as desired state: the device (created with `WireGuard.createInterface`
 * when missing), its private key, listen port, fwmark and peers, its MTU and up/down. `wg show`
 * is compared with the desired configuration first and `wg syncconf` runs only when they differ
 * (sessions of unchanged peers survive it). What `wg show` cannot show is handled so: a private
 * key is compared by its public key; a preshared key only by presence, plus the one this driver
 * last configured (a new driver configures the peers with one once); an endpoint only when one is
 * desired (else the peer's learned endpoint stands), and it should be `IP:port` (a host name never
 * compares equal). Without a desired listen port the current one is kept. Addresses go through an
 * AddressSet on the device. `cleanup` deletes the device when it is a WireGuard device.
 */
export class WireGuardDevice implements StateDriver<WireGuardDeviceConfig> {
  private last: WireGuardDeviceConfig | undefined;
  /** Peer public key → SHA-256 of the preshared key last configured. */
  private readonly psks = new Map<string, string>();

  constructor(
    private readonly net: { wg: WireGuard; ip: IpRoute },
    private readonly options: WireGuardDeviceOptions,
  ) {
    assertIfName(options.name);
  }

  private get name(): string {
    return this.options.name;
  }

  async drift(desired?: WireGuardDeviceConfig): Promise<StateDrift[]> {
    const want = desired ?? this.last;
    if (!want)
      throw new Error(
        `wireguard ${this.name}: no desired state yet (call set() first, or pass one to drift())`,
      );
    renderWgConfig(want); // validates
    const link = await this.net.ip.findLink(this.name);
    if (!link) return [{ object: 'wireguard', kind: 'missing', subject: this.name }];
    if (!isWireGuardKind(link)) {
      return [
        {
          object: 'wireguard',
          kind: 'changed',
          subject: this.name,
          changes: [change('kind', link.kind ?? 'device', 'wireguard')],
        },
      ];
    }
    return this.compare(want, link, await this.net.wg.show(this.name)).drift;
  }

  async set(desired: WireGuardDeviceConfig): Promise<SetResult> {
    renderWgConfig(desired); // validates keys, port, endpoints and allowed IPs before anything runs
    this.last = desired;
    let link = await this.net.ip.findLink(this.name);
    const drift: StateDrift[] = [];
    if (!link) {
      const implementation = this.options.implementation ?? 'auto';
      await this.net.wg.createInterface(this.name, { implementation });
      drift.push({ object: 'wireguard', kind: 'missing', subject: this.name });
      link = await this.net.ip.getLink(this.name);
    } else if (!isWireGuardKind(link)) {
      throw new Error(
        `wireguard ${this.name}: a ${link.kind ?? 'plain'} device of that name exists: delete it or choose another name`,
      );
    }
    const state = await this.net.wg.show(this.name);
    const cmp = this.compare(desired, link, state);
    if (drift.length === 0) drift.push(...cmp.drift);
    if (drift.length === 0) return { changed: false, drift };
    this.options.logger?.debug(
      { driver: `wireguard ${this.name}`, drift: drift.map(describeDrift) },
      'host-net: drift, applying',
    );
    if (cmp.dropPeers.length > 0) {
      await this.net.wg.set(this.name, {
        peers: cmp.dropPeers.map((publicKey) => ({ publicKey, remove: true })),
      });
    }
    if (cmp.sync || cmp.dropPeers.length > 0) {
      const { mtu: _mtu, up: _up, ...config } = desired;
      // Without ListenPort and FwMark, syncconf would pick a new port and clear the mark.
      await this.net.wg.syncconf(this.name, {
        ...config,
        listenPort: desired.listenPort ?? state.listenPort,
        fwmark: desired.fwmark ?? 0,
      });
      for (const p of desired.peers) {
        if (p.presharedKey === undefined) this.psks.delete(p.publicKey);
        else this.psks.set(p.publicKey, digest(p.presharedKey));
      }
    }
    if (cmp.keepaliveOff.length > 0) {
      const peers = cmp.keepaliveOff.map((publicKey) => ({ publicKey, persistentKeepalive: 0 }));
      await this.net.wg.set(this.name, { peers });
    }
    if (desired.mtu !== undefined && link.mtu !== desired.mtu)
      await this.net.ip.setLink(this.name, { mtu: desired.mtu });
    const up = desired.up ?? true;
    if (link.up !== up) await this.net.ip.setLink(this.name, { up });
    return { changed: true, drift };
  }

  async cleanup(): Promise<SetResult> {
    const link = await this.net.ip.findLink(this.name);
    if (!link || !isWireGuardKind(link)) return { changed: false, drift: [] };
    if (link.kind === 'tun') {
      // A tun device is wireguard-go's only when `wg` can talk to it.
      try {
        await this.net.wg.show(this.name);
      } catch (err) {
        if (err instanceof CommandError) return { changed: false, drift: [] };
        throw err;
      }
    }
    await this.net.wg.deleteInterface(this.name);
    this.psks.clear();
    return { changed: true, drift: [{ object: 'wireguard', kind: 'extra', subject: this.name }] };
  }

  private compare(want: WireGuardDeviceConfig, link: Link, state: WgInterfaceState): Comparison {
    const cmp: Comparison = { drift: [], sync: false, dropPeers: [], keepaliveOff: [] };
    const device: string[] = [];
    if (state.publicKey !== wireGuardPublicKey(want.privateKey)) device.push('private key differs');
    if (want.listenPort !== undefined && state.listenPort !== want.listenPort) {
      device.push(change('listen port', state.listenPort, want.listenPort));
    }
    const fwmark = want.fwmark ? want.fwmark : null;
    if (state.fwmark !== fwmark) device.push(change('fwmark', hexOrOff(state.fwmark), hexOrOff(fwmark)));
    cmp.sync = device.length > 0;
    if (want.mtu !== undefined && link.mtu !== want.mtu) device.push(change('mtu', link.mtu, want.mtu));
    const up = want.up ?? true;
    if (link.up !== up) device.push(change('up', link.up ? 'yes' : 'no', up ? 'yes' : 'no'));
    if (device.length > 0)
      cmp.drift.push({ object: 'wireguard', kind: 'changed', subject: this.name, changes: device });

    const live = new Map(state.peers.map((p) => [p.publicKey, p]));
    const wanted = new Set<string>();
    for (const p of want.peers) {
      wanted.add(p.publicKey);
      const subject = `${p.publicKey} on ${this.name}`;
      const have = live.get(p.publicKey);
      if (!have) {
        cmp.drift.push({ object: 'wireguard-peer', kind: 'missing', subject });
        cmp.sync = true;
        continue;
      }
      const changes: string[] = [];
      let sync = false;
      if (p.endpoint !== undefined && normalizeEndpoint(p.endpoint) !== have.endpoint) {
        changes.push(change('endpoint', have.endpoint, normalizeEndpoint(p.endpoint)));
        sync = true;
      }
      const ips = canonicalAllowedIps(p);
      const haveIps = [...have.allowedIps].sort().join(',');
      if (ips !== haveIps) {
        changes.push(change('allowed ips', haveIps, ips));
        sync = true;
      }
      const keepalive = p.persistentKeepalive ? p.persistentKeepalive : null;
      if (keepalive !== have.persistentKeepalive) {
        changes.push(change('keepalive', have.persistentKeepalive ?? 'off', keepalive ?? 'off'));
        if (keepalive === null) cmp.keepaliveOff.push(p.publicKey);
        else sync = true;
      }
      if (p.presharedKey === undefined && have.hasPresharedKey) {
        changes.push('preshared key to remove');
        cmp.dropPeers.push(p.publicKey);
      } else if (p.presharedKey !== undefined && this.psks.get(p.publicKey) !== digest(p.presharedKey)) {
        // Only its presence shows: one this driver did not configure is configured once.
        changes.push(
          have.hasPresharedKey ? 'preshared key not known to be the desired one' : 'preshared key to add',
        );
        sync = true;
      }
      if (changes.length === 0) continue;
      cmp.drift.push({ object: 'wireguard-peer', kind: 'changed', subject, changes });
      if (sync) cmp.sync = true;
    }
    for (const p of state.peers) {
      if (wanted.has(p.publicKey)) continue;
      cmp.drift.push({ object: 'wireguard-peer', kind: 'extra', subject: `${p.publicKey} on ${this.name}` });
      cmp.sync = true;
    }
    return cmp;
  }
}

/** A WireGuard device: the kernel's, or wireguard-go's tun device. */
function isWireGuardKind(link: Link): boolean {
  return link.kind === 'wireguard' || link.kind === 'tun';
}

function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function hexOrOff(mark: number | null): string {
  return mark === null ? 'off' : `0x${mark.toString(16)}`;
}

/** As `wg show` prints allowed IPs: masked, compressed, with a prefix length; sorted. */
function canonicalAllowedIps(p: WgPeerConfig): string {
  return [...new Set((p.allowedIps ?? []).map((c) => networkOf(c)))].sort().join(',');
}
