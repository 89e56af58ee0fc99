import { wireGuardPublicKey } from '@knet/crypto';
import { CommandError } from '../errors';
import type { WgImplementation, WireGuard } from '../wireguard';
import {
  normalizeEndpoint,
  renderWgConfig,
  wgSetArgs,
  type WgConfig,
  type WgInterfaceState,
  type WgPeerState,
  type WgSetOptions,
} from '../wireguard-format';
import { networkOf } from '../addr-math';
import type { FakeIpRoute } from './fake-ip-route';

interface PeerState {
  presharedKey?: string;
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive?: number;
  handshake?: Date;
  rx: number;
  tx: number;
}

interface IfaceState {
  privateKey?: string;
  listenPort: number;
  fwmark?: number;
  peers: Map<string, PeerState>;
}

export interface FakeWireGuardOptions {
  /** Links are created in (and removed from) this fake, and must exist there. */
  ipRoute?: FakeIpRoute;
  /** Whether `ip link add type wireguard` works; when false, `auto` falls back to userspace. */
  kernelSupport?: boolean;
}

/**
 * In-memory {@link WireGuard}. Keys are validated as `wg` does; an allowed IP belongs to one peer at
 * a time; `syncconf` keeps the session state of peers it keeps. Missing interfaces fail with the
 * messages of wireguard-tools. `recordHandshake` simulates traffic for tests.
 */
export class FakeWireGuard implements WireGuard {
  private readonly ifaces = new Map<string, IfaceState>();
  private nextPort = 51000;

  constructor(private readonly options: FakeWireGuardOptions = {}) {}

  async createInterface(
    name: string,
    options: { implementation?: 'auto' | WgImplementation } = {},
  ): Promise<WgImplementation> {
    const kernel = this.options.kernelSupport ?? true;
    const wanted = options.implementation ?? 'auto';
    const impl: WgImplementation = wanted === 'auto' ? (kernel ? 'kernel' : 'userspace') : wanted;
    const addArgs = ['link', 'add', name, 'type', 'wireguard'];
    if (impl === 'kernel' && !kernel) {
      throw new CommandError({
        command: ['ip', ...addArgs],
        exitCode: 2,
        stderr: 'Error: Unknown device type.',
      });
    }
    if (this.options.ipRoute) {
      if (impl === 'kernel') await this.options.ipRoute.addWireGuard(name);
      else {
        this.options.ipRoute.addLinkOfKind(name, 'tun', ['wireguard-go', name]);
        await this.options.ipRoute.setLink(name, { mtu: 1420 }); // wireguard-go's default
      }
    } else if (this.ifaces.has(name)) {
      throw new CommandError({
        command: ['ip', ...addArgs],
        exitCode: 2,
        stderr: 'RTNETLINK answers: File exists',
      });
    }
    this.ifaces.set(name, { listenPort: this.nextPort++, peers: new Map() });
    return impl;
  }

  async deleteInterface(name: string): Promise<void> {
    if (this.options.ipRoute) await this.options.ipRoute.deleteLink(name);
    else if (!this.ifaces.has(name)) {
      throw new CommandError({
        command: ['ip', 'link', 'del', 'dev', name],
        exitCode: 1,
        stderr: `Cannot find device "${name}"`,
      });
    }
    this.ifaces.delete(name);
  }

  private iface(name: string, command: string[], verb: 'modify' | 'access'): IfaceState {
    const state = this.ifaces.get(name);
    if (!state || (this.options.ipRoute && !this.options.ipRoute.hasLink(name))) {
      // Without the kernel module, wg finds neither a kernel device nor a wireguard-go socket.
      const why = (this.options.kernelSupport ?? true) ? 'No such device' : 'Protocol not supported';
      throw new CommandError({ command, exitCode: 1, stderr: `Unable to ${verb} interface: ${why}` });
    }
    return state;
  }

  async set(iface: string, options: WgSetOptions): Promise<void> {
    const { args } = wgSetArgs(iface, options, () => '/dev/stdin');
    const state = this.iface(iface, ['wg', ...args], 'modify');
    if (options.privateKey !== undefined) state.privateKey = options.privateKey;
    if (options.listenPort !== undefined) state.listenPort = options.listenPort;
    if (options.fwmark !== undefined) {
      if (options.fwmark === 'off' || options.fwmark === 0) delete state.fwmark;
      else state.fwmark = options.fwmark;
    }
    for (const p of options.peers ?? []) {
      if (p.remove) {
        state.peers.delete(p.publicKey);
        continue;
      }
      const peer = state.peers.get(p.publicKey) ?? { allowedIps: [], rx: 0, tx: 0 };
      if (p.presharedKey !== undefined) peer.presharedKey = p.presharedKey;
      if (p.endpoint !== undefined) peer.endpoint = normalizeEndpoint(p.endpoint);
      if (p.persistentKeepalive !== undefined) {
        if (p.persistentKeepalive) peer.persistentKeepalive = p.persistentKeepalive;
        else delete peer.persistentKeepalive;
      }
      state.peers.set(p.publicKey, peer);
      if (p.allowedIps !== undefined) this.assignAllowedIps(state, p.publicKey, p.allowedIps);
    }
  }

  async syncconf(iface: string, config: WgConfig): Promise<void> {
    renderWgConfig(config); // validates keys and fields, as wg does
    const state = this.iface(iface, ['wg', 'syncconf', iface, '/dev/stdin'], 'modify');
    state.privateKey = config.privateKey;
    // Like setconf, syncconf sets every interface field: without a ListenPort, a new random port.
    state.listenPort = config.listenPort ?? this.nextPort++;
    if (config.fwmark) state.fwmark = config.fwmark;
    else delete state.fwmark;
    const old = state.peers;
    state.peers = new Map();
    for (const p of config.peers) {
      const prev = old.get(p.publicKey);
      const peer: PeerState = { allowedIps: [], rx: prev?.rx ?? 0, tx: prev?.tx ?? 0 };
      if (prev?.handshake) peer.handshake = prev.handshake;
      // A kept peer keeps what the config does not say: preshared key, endpoint, keepalive.
      const presharedKey = p.presharedKey ?? prev?.presharedKey;
      if (presharedKey !== undefined) peer.presharedKey = presharedKey;
      const endpoint = p.endpoint ?? prev?.endpoint;
      if (endpoint !== undefined) peer.endpoint = normalizeEndpoint(endpoint);
      const keepalive = p.persistentKeepalive ?? prev?.persistentKeepalive;
      if (keepalive) peer.persistentKeepalive = keepalive;
      state.peers.set(p.publicKey, peer);
      this.assignAllowedIps(state, p.publicKey, p.allowedIps ?? []);
    }
  }

  private assignAllowedIps(state: IfaceState, owner: string, given: readonly string[]): void {
    const ips = given.map((ip) => networkOf(ip)); // wg keeps them masked and compressed
    for (const [key, peer] of state.peers) {
      if (key !== owner) peer.allowedIps = peer.allowedIps.filter((ip) => !ips.includes(ip));
    }
    const peer = state.peers.get(owner);
    if (peer) peer.allowedIps = [...new Set(ips)];
  }

  async show(iface: string): Promise<WgInterfaceState> {
    return this.view(iface, this.iface(iface, ['wg', 'show', iface, 'dump'], 'access'));
  }

  async showAll(): Promise<WgInterfaceState[]> {
    return [...this.ifaces]
      .filter(([name]) => !this.options.ipRoute || this.options.ipRoute.hasLink(name))
      .map(([name, state]) => this.view(name, state));
  }

  /** Simulates a handshake and traffic with a peer (test helper). */
  recordHandshake(
    iface: string,
    peerPublicKey: string,
    traffic: { rx?: number; tx?: number; at?: Date } = {},
  ): void {
    const peer = this.ifaces.get(iface)?.peers.get(peerPublicKey);
    if (!peer) throw new Error(`FakeWireGuard: no peer ${peerPublicKey} on ${iface}`);
    peer.handshake = traffic.at ?? new Date(Math.floor(Date.now() / 1000) * 1000);
    peer.rx += traffic.rx ?? 0;
    peer.tx += traffic.tx ?? 0;
  }

  private view(name: string, s: IfaceState): WgInterfaceState {
    const peers: WgPeerState[] = [...s.peers].map(([publicKey, p]) => ({
      publicKey,
      hasPresharedKey: p.presharedKey !== undefined,
      endpoint: p.endpoint ?? null,
      allowedIps: [...p.allowedIps],
      latestHandshake: p.handshake ?? null,
      transferRx: p.rx,
      transferTx: p.tx,
      persistentKeepalive: p.persistentKeepalive ?? null,
    }));
    return {
      name,
      publicKey: s.privateKey ? wireGuardPublicKey(s.privateKey) : null,
      hasPrivateKey: s.privateKey !== undefined,
      listenPort: s.listenPort,
      fwmark: s.fwmark ?? null,
      peers,
    };
  }
}
