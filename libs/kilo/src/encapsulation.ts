import { ipOf, isV6, networkAddress, oneAddressCidr } from './ip';
import type { KiloRule } from './iptables';
import type { Compatibility, EncapsulationStrategy } from './types';

/**
 * Kilo's encapsulators (pkg/encapsulation): how packets inside a location reach another member.
 * `--compatibility` picks `ipip` (`''`), `flannel` or `cilium`; a node without a private IP runs
 * `noop` instead (mesh.go `New`: `encapsulation.Noop(enc.Strategy())` — it keeps the configured
 * strategy but has no gateway, no interface and no rules).
 */
export type EncapsulatorKind = 'ipip' | 'flannel' | 'cilium' | 'noop';

/** Flannel's VXLAN device: the encapsulator interface when `--compatibility=flannel` (flannel.go). */
export const FLANNEL_INTERFACE = 'flannel.1';
/** The IPIP device Cilium renames `tunl0` to with `enable-ipip-termination`; Kilo reuses it (cilium.go). */
export const CILIUM_TUNNEL_INTERFACE = 'cilium_tunl';
/** The chain the IPIP encapsulator's ACCEPT rules live in (ipip.go/cilium.go `Rules`). */
export const KILO_IPIP_CHAIN = 'KILO-IPIP';
/**
 * The name `-p` gets for IP protocol 4: Kilo asks `getprotobynumber(4)` (cgo) or assumes
 * `ipencap`, the name in its image's /etc/protocols (ipip_nocgo.go).
 */
export const IPIP_PROTOCOL_NAME = 'ipencap';

/**
 * Which encapsulator a node runs: Kilo's `--compatibility` choice, replaced by `noop` when the node
 * has no private IP (mesh.go `New`).
 */
export function encapsulatorKind(
  compatibility: Compatibility,
  privateIP: string | undefined,
): EncapsulatorKind {
  if (privateIP === undefined) return 'noop';
  return compatibility === '' ? 'ipip' : compatibility;
}

/** What Kilo's `Encapsulator.Gw(endpoint, internal, cniCompatibilityIP, subnet)` is given about a node. */
export interface GatewayInput {
  /** The node's (or its segment's) endpoint IP; no encapsulator uses it. */
  endpointIP?: string;
  /** The node's internal IP (bare address or CIDR). */
  privateIP?: string;
  /** The node's `cni-compatibility-ip` (bare address or CIDR). */
  cniCompatibilityIP?: string;
  /** The node's pod CIDR. */
  podCIDR?: string;
}

/**
 * Kilo's `Encapsulator.Gw`: the next hop to a node inside the location.
 * - `ipip`: the node's internal IP (ipip.go).
 * - `flannel`: the first address of the node's pod CIDR, which flannel.1 reaches (flannel.go).
 * - `cilium`: the node's `cilium_host` IP when it published one, else the pod CIDR's first
 *   address (cilium.go).
 * - `noop`: none (noop.go).
 * Undefined when the input it needs is missing (Kilo would use a nil IP or panic).
 */
export function gateway(kind: EncapsulatorKind, input: GatewayInput): string | undefined {
  switch (kind) {
    case 'ipip':
      return input.privateIP === undefined ? undefined : ipOf(input.privateIP);
    case 'flannel':
      return input.podCIDR === undefined ? undefined : networkAddress(input.podCIDR);
    case 'cilium':
      if (input.cniCompatibilityIP !== undefined) return ipOf(input.cniCompatibilityIP);
      return input.podCIDR === undefined ? undefined : networkAddress(input.podCIDR);
    case 'noop':
      return undefined;
  }
}

/**
 * The interface Kilo's `Encapsulator.Index()` names, by name: `tunl0` for IPIP and Cilium (or
 * `cilium_tunl` when Cilium terminates IPIP — the agent knows which, this default does not),
 * `flannel.1` for flannel. Noop has none (index 0): `tunl0` is returned only as a placeholder, no
 * route of a noop node uses it.
 */
export function defaultTunnelInterface(compatibility: Compatibility): string {
  return compatibility === 'flannel' ? FLANNEL_INTERFACE : 'tunl0';
}

/**
 * The encapsulator's iptables rules (Kilo's `Encapsulator.Rules(nodes)`), in Kilo's order. For
 * `ipip` and `cilium` (identical in Kilo): the `filter KILO-IPIP` chain (v4 and v6), `INPUT -p
 * ipencap -j KILO-IPIP` (v4 and v6, appended), an ACCEPT `-s <ip>/32` per private IP given
 * (prepended into KILO-IPIP), then `INPUT -p ipencap -j DROP` (v4 and v6, appended after the jump).
 * `flannel` and `noop` have none.
 *
 * mesh.go asks for them only when the strategy is not `never` and `--local` is on, so this returns
 * none otherwise; `privateIPs` are those of the local location's members (see `planIptables`).
 */
export function encapsulationIptables(
  kind: EncapsulatorKind,
  strategy: EncapsulationStrategy,
  local: boolean,
  privateIPs: readonly string[],
): KiloRule[] {
  if (strategy === 'never' || !local) return [];
  if (kind !== 'ipip' && kind !== 'cilium') return [];
  const p = IPIP_PROTOCOL_NAME;
  const jump = ['-p', p, '-m', 'comment', '--comment', 'Kilo: jump to IPIP chain', '-j', KILO_IPIP_CHAIN];
  const drop = ['-p', p, '-m', 'comment', '--comment', 'Kilo: reject other IPIP traffic', '-j', 'DROP'];
  const rules: KiloRule[] = [
    { family: 'inet', table: 'filter', chain: KILO_IPIP_CHAIN, spec: [], kind: 'chain' },
    { family: 'inet6', table: 'filter', chain: KILO_IPIP_CHAIN, spec: [], kind: 'chain' },
    { family: 'inet', table: 'filter', chain: 'INPUT', spec: jump, kind: 'append' },
    { family: 'inet6', table: 'filter', chain: 'INPUT', spec: jump, kind: 'append' },
  ];
  for (const ip of privateIPs) {
    rules.push({
      family: isV6(ip) ? 'inet6' : 'inet',
      table: 'filter',
      chain: KILO_IPIP_CHAIN,
      spec: [
        '-s',
        oneAddressCidr(ip),
        '-m',
        'comment',
        '--comment',
        'Kilo: allow IPIP traffic',
        '-j',
        'ACCEPT',
      ],
      kind: 'prepend',
    });
  }
  rules.push(
    { family: 'inet', table: 'filter', chain: 'INPUT', spec: drop, kind: 'append' },
    { family: 'inet6', table: 'filter', chain: 'INPUT', spec: drop, kind: 'append' },
  );
  return rules;
}
