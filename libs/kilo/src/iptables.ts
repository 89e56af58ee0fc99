import {
  renderTokens,
  type IptablesFamily,
  type IptablesJump,
  type IptablesRuleSet,
  type IptablesTable,
} from '@knet/host-net';
import { encapsulationIptables, encapsulatorKind } from './encapsulation';
import { isV6, oneAddressCidr } from './ip';
import type { Compatibility, EncapsulationStrategy, Topology } from './types';

/** Kilo's NAT chain (pkg/mesh/routes.go `Topology.Rules`). */
export const KILO_NAT_CHAIN = 'KILO-NAT';

/**
 * One entry of Kilo's `iptables.RuleSet` (pkg/iptables): a chain to create (`chain`, Kilo's
 * `NewIPv4Chain`/`NewIPv6Chain`, kept in the append list), a rule Kilo keeps in order at the end of
 * its chain (`append`, `AddToAppend`) or one it inserts at the top, unordered (`prepend`,
 * `AddToPrepend`). `spec` is the rule without `-A CHAIN` (empty for a chain).
 */
export interface KiloRule {
  family: IptablesFamily;
  table: IptablesTable;
  chain: string;
  spec: readonly string[];
  kind: 'append' | 'prepend' | 'chain';
}

export interface IptablesOptions {
  /** `--cni`: Kilo manages the pod network (adds `POSTROUTING -s <pod CIDR> -j KILO-NAT`). */
  cni: boolean;
  /** `--iptables-forward-rules` (only honoured with `--cni`, as in Kilo). */
  forwardRules: boolean;
  /** `--local` (the encapsulator's rules are added only with it). */
  local: boolean;
  /** `--encapsulate` (no encapsulator rules with `never`). */
  strategy: EncapsulationStrategy;
  /** `--compatibility`. */
  compatibility: Compatibility;
}

const familyOf = (cidr: string): IptablesFamily => (isV6(cidr) ? 'inet6' : 'inet');
const comment = (text: string): string[] => ['-m', 'comment', '--comment', text];

/**
 * Kilo's `Topology.Rules(cni, iptablesForwardRule)` (pkg/mesh/routes.go), in the order Kilo adds
 * them; `kind` says which of Kilo's two lists a rule belongs to.
 * - `nat KILO-NAT` for IPv4 and IPv6;
 * - with `cni`: `POSTROUTING -s <local pod CIDR> -j KILO-NAT`, and with forward rules a leader
 *   ACCEPTs `-s`/`-d` every pod CIDR, allowed location IP and private IP of its segment in FORWARD,
 *   a non-leader only its own pod CIDR;
 * - per segment: RETURN `-d` its WireGuard IP /32 and each allowed IP; for the local segment,
 *   `POSTROUTING -d <allowed location IP> -j KILO-NAT`;
 * - per peer allowed IP: `POSTROUTING -s aip -j KILO-NAT` and RETURN `-d aip`;
 * - RETURN `-d` each service CIDR (appended), then MASQUERADE (v4 and v6, appended last).
 */
export function topologyIptables(t: Topology, cni: boolean, forwardRules: boolean): KiloRule[] {
  const rules: KiloRule[] = [
    { family: 'inet', table: 'nat', chain: KILO_NAT_CHAIN, spec: [], kind: 'chain' },
    { family: 'inet6', table: 'nat', chain: KILO_NAT_CHAIN, spec: [], kind: 'chain' },
  ];
  /** A rule matching `flag cidr`, in the family of `cidr`. */
  const add = (
    kind: 'append' | 'prepend',
    where: [IptablesTable, string],
    match: ['-s' | '-d', string],
    text: string,
    target: string,
    commentFirst = false,
  ): void => {
    const spec = commentFirst ? [...comment(text), ...match] : [...match, ...comment(text)];
    rules.push({
      family: familyOf(match[1]),
      table: where[0],
      chain: where[1],
      spec: [...spec, '-j', target],
      kind,
    });
  };
  const postrouting: [IptablesTable, string] = ['nat', 'POSTROUTING'];
  const natChain: [IptablesTable, string] = ['nat', KILO_NAT_CHAIN];
  const forward = (cidr: string, what: string): void => {
    add('prepend', ['filter', 'FORWARD'], ['-s', cidr], `Kilo: forward packets from ${what}`, 'ACCEPT', true);
    add('prepend', ['filter', 'FORWARD'], ['-d', cidr], `Kilo: forward packets to ${what}`, 'ACCEPT', true);
  };
  const noNat = (cidr: string, what: string, kind: 'append' | 'prepend' = 'prepend'): void => {
    add(kind, natChain, ['-d', cidr], `Kilo: do not NAT packets destined for ${what}`, 'RETURN');
  };
  if (cni && t.subnet !== undefined) {
    add('prepend', postrouting, ['-s', t.subnet], 'Kilo: jump to KILO-NAT chain', KILO_NAT_CHAIN);
    if (forwardRules && t.leader) {
      for (const s of t.segments) {
        if (s.location !== t.location) continue;
        for (const cidr of s.cidrs) if (cidr !== undefined) forward(cidr, 'the pod subnet');
        for (const alip of s.allowedLocationIPs) forward(alip, 'allowed location IPs');
        for (const ip of s.privateIPs) forward(oneAddressCidr(ip), 'private IPs');
      }
    } else if (forwardRules) {
      forward(t.subnet, "the node's pod subnet");
    }
  }
  for (const s of t.segments) {
    // Kilo's comment has the typo.
    noNat(oneAddressCidr(s.wireGuardIP), 'WireGuared IPs');
    for (const aip of s.allowedIPs) noNat(aip, 'known IPs');
    if (s.location !== t.location) continue;
    for (const alip of s.allowedLocationIPs) {
      add('prepend', postrouting, ['-d', alip], 'Kilo: jump to NAT chain', KILO_NAT_CHAIN);
    }
  }
  for (const peer of t.peers) {
    for (const aip of peer.allowedIPs) {
      add('prepend', postrouting, ['-s', aip], 'Kilo: jump to NAT chain', KILO_NAT_CHAIN);
      noNat(aip, 'peers');
    }
  }
  for (const cidr of t.serviceCIDRs) noNat(cidr, 'service CIDRs', 'append');
  const masquerade = [...comment('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'];
  rules.push(
    { family: 'inet', table: 'nat', chain: KILO_NAT_CHAIN, spec: masquerade, kind: 'append' },
    { family: 'inet6', table: 'nat', chain: KILO_NAT_CHAIN, spec: masquerade, kind: 'append' },
  );
  return rules;
}

/**
 * Everything kg hands its iptables controller (pkg/mesh/mesh.go `applyTopology`): the
 * encapsulator's rules (`encapsulationIptables`, for the private IPs of the local location) followed
 * by `topologyIptables` — Kilo's `encRules.AppendRuleSet(topologyRules)`, so filtering by `kind`
 * gives Kilo's append list (`chain` + `append`) and prepend list in its order.
 *
 * The local location's private IPs: those of the segment keyed like the local segment's `group`
 * (Kilo: `location:` + the node's location), which exists only in `location` granularity — in
 * `full` the IPIP chain has no ACCEPT, exactly as in Kilo. In `cross`, those of every segment of
 * the local group (the same location's nodes, which this node reaches over IPIP).
 */
export function planIptables(t: Topology, o: IptablesOptions): KiloRule[] {
  const kind = encapsulatorKind(o.compatibility, t.privateIP);
  const group = t.segments.find((s) => s.location === t.location)?.group;
  const members =
    t.granularity === 'cross'
      ? t.segments.filter((s) => s.group === group)
      : t.segments.filter((s) => s.location === group).slice(0, 1);
  const privateIPs = members.flatMap((s) => s.privateIPs);
  return [
    ...encapsulationIptables(kind, o.strategy, o.local, privateIPs),
    ...topologyIptables(t, o.cni, o.forwardRules),
  ];
}

/**
 * Kilo's rules of one family as host-net desired state (`IptablesReconciler`), one set per table.
 * Kilo's chains (KILO-NAT, KILO-IPIP) are owned chains with Kilo's exact names; rules in built-in
 * chains become `jumps` (to an owned chain, or to ACCEPT/DROP for the FORWARD and IPIP rules).
 *
 * Order inside a chain is the layout Kilo leaves on a fresh host: its prepend rules are each
 * inserted at position 1, so they end up last-added first, above the append rules in their order.
 * Prepend jumps are given in that same (reversed) order, append jumps in Kilo's order.
 *
 * Kilo's ownership differs: its controller deletes what it remembers adding and re-adds missing
 * rules, but never removes a foreign rule inside KILO-NAT; the reconciler owns the chains whole.
 */
export function toRuleSets(rules: readonly KiloRule[], family: IptablesFamily): IptablesRuleSet[] {
  const mine = rules.filter((r) => r.family === family);
  const tables: IptablesTable[] = [];
  for (const r of mine) if (!tables.includes(r.table)) tables.push(r.table);
  return tables.map((table) => {
    const inTable = mine.filter((r) => r.table === table);
    const chains: Record<string, string[]> = {};
    for (const r of inTable) if (r.kind === 'chain') chains[r.chain] = [];
    const prepends = (chain: string): KiloRule[] =>
      inTable.filter((r) => r.chain === chain && r.kind === 'prepend').reverse();
    const appends = (chain: string): KiloRule[] =>
      inTable.filter((r) => r.chain === chain && r.kind === 'append');
    for (const chain of Object.keys(chains)) {
      chains[chain] = [...prepends(chain), ...appends(chain)].map((r) => renderTokens(r.spec));
    }
    const jumps: IptablesJump[] = [];
    const builtins: string[] = [];
    for (const r of inTable) {
      if (r.kind !== 'chain' && !(r.chain in chains) && !builtins.includes(r.chain)) builtins.push(r.chain);
    }
    for (const chain of builtins) {
      for (const r of prepends(chain))
        jumps.push({ fromChain: chain, rule: renderTokens(r.spec), position: 'prepend' });
      for (const r of appends(chain))
        jumps.push({ fromChain: chain, rule: renderTokens(r.spec), position: 'append' });
    }
    const set: IptablesRuleSet = { table, chains };
    if (jumps.length > 0) set.jumps = jumps;
    return set;
  });
}
