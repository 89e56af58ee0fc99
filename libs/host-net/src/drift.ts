import type { Drift } from './iptables-rules';

/**
 * The shape every desired-state driver of this library shares (RouteTable, RuleSet, AddressSet,
 * FdbSet, VxlanDevice, WireGuardDevice; IptablesReconciler has the same three verbs): `set` makes
 * the live state equal to `desired` — adds what is missing, changes what differs, removes what it
 * owns and is no longer desired — and returns the drift it repaired; `drift` reports what differs
 * right now without changing anything; `cleanup` removes everything it owns and nothing else.
 */
export interface StateDriver<D> {
  set(desired: D): Promise<SetResult>;
  /** What differs from `desired` (default: the last desired state given to {@link set}). */
  drift(desired?: D): Promise<StateDrift[]>;
  cleanup(): Promise<SetResult>;
}

/** What a driver's `set` or `cleanup` found and repaired. */
export interface SetResult {
  /** Whether anything was written. */
  changed: boolean;
  /** The drift found before writing (for `cleanup`: what it removed, as `extra`). */
  drift: StateDrift[];
}

/** The kind of object a {@link StateDrift} is about. */
export type DriftObject = 'route' | 'rule' | 'address' | 'fdb' | 'link' | 'wireguard' | 'wireguard-peer';

/** One object that differs from the desired state. */
export interface StateDrift {
  object: DriftObject;
  /** `missing`: desired and absent; `extra`: owned and not desired; `changed`: present and different. */
  kind: 'missing' | 'extra' | 'changed';
  /** The object in one line, the way `ip` prints it (e.g. `198.51.100.0/24 via 192.0.2.2 dev eth0`). */
  subject: string;
  /** For `changed`: what differs, one `field have → want` each (never a secret). */
  changes?: string[];
  /** For `changed`: the object cannot be changed in place and is deleted and created again. */
  recreate?: boolean;
}

/** One line per drift item (iptables or a driver's), for logs and error messages. */
export function describeDrift(d: Drift | StateDrift): string {
  if ('object' in d) {
    const what = `${d.object} ${d.subject}`;
    if (d.kind === 'missing') return `${what}: missing`;
    if (d.kind === 'extra') return `${what}: not desired`;
    return `${what}: ${(d.changes ?? []).join(', ')}${d.recreate ? ' (recreate)' : ''}`;
  }
  switch (d.kind) {
    case 'missing-chain':
      return `${d.table}/${d.chain}: chain missing`;
    case 'stale-chain':
      return `${d.table}/${d.chain}: stale owned chain`;
    case 'chain-rules':
      return `${d.table}/${d.chain}: rules differ (want ${d.want.length}, have ${d.have.length})`;
    case 'jumps':
      return `${d.table}/${d.chain}: jumps differ (want [${d.want.join(' | ')}], have [${d.have.join(' | ')}])`;
  }
}

/**
 * All the drift in one short line: iptables drift as `kind chain` (each once, e.g. `missing-chain
 * KNET-POST, jumps POSTROUTING`), a driver's as {@link describeDrift}; joined with `, `.
 */
export function summarizeDrift(drift: readonly (Drift | StateDrift)[]): string {
  const parts = drift.map((d) =>
    'object' in d ? describeDrift(d) : `${d.kind}${d.chain ? ` ${d.chain}` : ''}`,
  );
  return [...new Set(parts)].join(', ');
}

/** `field have → want`, for {@link StateDrift.changes}. */
export function change(field: string, have: unknown, want: unknown): string {
  const show = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v));
  return `${field} ${show(have)} → ${show(want)}`;
}
