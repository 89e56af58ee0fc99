/**
 * The pure core of connector-init: what to do next for one ordinal, which connectors `gc` deletes,
 * and the rows `status` prints — from the claims record and the vendor's connector list only.
 * No I/O; every decision is a table test in plan.spec.ts.
 */

/** The vendor's connector states (Twingate `ConnectorState`). */
export type ConnectorState = 'ALIVE' | 'DEAD_NO_HEARTBEAT' | 'DEAD_HEARTBEAT_TOO_OLD' | 'DEAD_NO_RELAYS';

/** What the planner needs of a vendor connector. */
export interface ConnectorView {
  id: string;
  name: string;
  state: ConnectorState;
  lastHeartbeatAt: string | null;
  createdAt: string | null;
}

/**
 * One ordinal's record in the claims ConfigMap. `id` is absent between the claim of a name and the
 * connector's creation (a crash there is resumed by looking the name up); `origin` says whether
 * this release created the connector (gc deletes it) or adopted an offline one (gc releases it).
 */
export interface OrdinalRecord {
  name: string;
  id?: string;
  origin: 'created' | 'adopted';
  claimedAt: string;
}

/** The release's claims: ordinal → record, and the remote network's id once looked up. */
export interface Claims {
  network?: { id: string; name: string };
  ordinals: ReadonlyMap<number, OrdinalRecord>;
  /**
   * Set by `gc --replicas 0` (the chart's pre-delete hook) before it deletes anything: the pods
   * still run while the hook does, and must not provision again what it deletes.
   */
  deleting?: string;
}

export const EMPTY_CLAIMS: Claims = { ordinals: new Map() };

const NETWORK_KEY = 'network';
const DELETING_KEY = 'deleting';
const ORDINAL_KEY = /^ordinal\.(0|[1-9]\d{0,5})$/;

/** The ConfigMap key of an ordinal's record. */
export const ordinalKey = (ordinal: number) => `ordinal.${ordinal}`;

/**
 * Reads the claims from a ConfigMap's data. A value that is not a valid record is an error naming
 * the key (someone edited the ConfigMap by hand): guessing could hand one connector to two pods.
 */
export function parseClaims(data: Readonly<Record<string, string>> | undefined, where: string): Claims {
  const ordinals = new Map<number, OrdinalRecord>();
  let network: Claims['network'];
  let deleting: string | undefined;
  for (const [key, value] of Object.entries(data ?? {})) {
    const bad = (why: string) =>
      new Error(`${where}: key ${key} ${why}; fix or remove the key (kubectl edit configmap)`);
    const m = ORDINAL_KEY.exec(key);
    if (key === DELETING_KEY) {
      deleting = value;
      continue;
    }
    if (!m && key !== NETWORK_KEY) continue; // keys of a later version are left alone
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      throw bad('is not JSON');
    }
    if (key === NETWORK_KEY) {
      if (!isObject(parsed) || typeof parsed['id'] !== 'string' || typeof parsed['name'] !== 'string') {
        throw bad('must be {"id": "...", "name": "..."}');
      }
      network = { id: parsed['id'], name: parsed['name'] };
      continue;
    }
    if (!m) continue;
    if (
      !isObject(parsed) ||
      typeof parsed['name'] !== 'string' ||
      !parsed['name'] ||
      (parsed['id'] !== undefined && typeof parsed['id'] !== 'string') ||
      (parsed['origin'] !== 'created' && parsed['origin'] !== 'adopted') ||
      typeof parsed['claimedAt'] !== 'string'
    ) {
      throw bad('must be {"name", "id"?, "origin": "created"|"adopted", "claimedAt"}');
    }
    const record: OrdinalRecord = {
      name: parsed['name'],
      origin: parsed['origin'],
      claimedAt: parsed['claimedAt'],
    };
    if (typeof parsed['id'] === 'string') record.id = parsed['id'];
    ordinals.set(Number(m[1]), record);
  }
  return { ordinals, ...(network ? { network } : {}), ...(deleting !== undefined ? { deleting } : {}) };
}

/** The ConfigMap data for `claims`; keys this version does not know are kept from `previous`. */
export function serializeClaims(
  claims: Claims,
  previous: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(previous)) {
    if (key !== NETWORK_KEY && key !== DELETING_KEY && !ORDINAL_KEY.test(key)) data[key] = value;
  }
  if (claims.deleting !== undefined) data[DELETING_KEY] = claims.deleting;
  if (claims.network) data[NETWORK_KEY] = JSON.stringify(claims.network);
  for (const [ordinal, r] of [...claims.ordinals].sort(([a], [b]) => a - b)) {
    data[ordinalKey(ordinal)] = JSON.stringify({
      name: r.name,
      id: r.id,
      origin: r.origin,
      claimedAt: r.claimedAt,
    });
  }
  return data;
}

/** Claims with one ordinal's record set (or removed with `undefined`). */
export function withRecord(claims: Claims, ordinal: number, record: OrdinalRecord | undefined): Claims {
  const ordinals = new Map(claims.ordinals);
  if (record) ordinals.set(ordinal, record);
  else ordinals.delete(ordinal);
  return { ...claims, ordinals };
}

/** The ordinal of a StatefulSet pod: the number after its name's last `-`. */
export function ordinalFromPodName(podName: string): number | undefined {
  const m = /-(0|[1-9]\d{0,5})$/.exec(podName);
  return m ? Number(m[1]) : undefined;
}

/** The connector name of an ordinal: `<prefix>-<ordinal>`. */
export const connectorName = (prefix: string, ordinal: number) => `${prefix}-${ordinal}`;

export interface ProvisionPolicy {
  ordinal: number;
  /** Names are `<namePrefix>-<ordinal>`. */
  namePrefix: string;
  /** Reuse an offline connector of the network before creating one (the seed's behaviour). */
  reuseOffline: boolean;
  /** A connector is offline for reuse only when its last heartbeat (or creation) is older than this. */
  reuseMinAgeMs: number;
  now: number;
}

/** The next step of provisioning one ordinal. */
export type ProvisionStep =
  /** The ordinal's connector is known: generate its tokens. */
  | { kind: 'tokens'; id: string; name: string }
  /** Look the connectors of the network up (and the network, if its id is not recorded). */
  | { kind: 'list' }
  /** Record this claim, conditionally on the claims read (409 → read again and plan again). */
  | { kind: 'claim'; record: OrdinalRecord; why: string }
  /** The claimed name has no connector yet: create it, then record its id. */
  | { kind: 'create'; name: string }
  /** Stop with this one-line error. */
  | { kind: 'refuse'; message: string };

/**
 * What to do next for `policy.ordinal`, given the claims just read and (once listed) the network's
 * connectors. The loop calls it again after every step, so a crash anywhere resumes from the
 * record: a claimed name without id is looked up before anything is created again.
 */
export function planProvision(
  claims: Claims,
  connectors: readonly ConnectorView[] | undefined,
  policy: ProvisionPolicy,
): ProvisionStep {
  if (claims.deleting !== undefined) {
    return {
      kind: 'refuse',
      message: `the release is being uninstalled (since ${claims.deleting}, by gc --replicas 0): not provisioning ordinal ${policy.ordinal}`,
    };
  }
  const own = claims.ordinals.get(policy.ordinal);
  if (own?.id !== undefined) return { kind: 'tokens', id: own.id, name: own.name };
  if (!connectors) return { kind: 'list' };
  const claimedAt = new Date(policy.now).toISOString();
  if (own) {
    const found = connectors.filter((c) => c.name === own.name);
    const taken = takenBySibling(claims, policy.ordinal);
    const usable = found.find((c) => !taken.ids.has(c.id));
    if (usable)
      return { kind: 'claim', record: { ...own, id: usable.id }, why: 'resume: the claimed name exists' };
    return { kind: 'create', name: own.name };
  }
  const myName = connectorName(policy.namePrefix, policy.ordinal);
  const named = connectors.find((c) => c.name === myName);
  if (named) {
    // Our own name without a record: a former install of this release (or the record was lost).
    if (named.state === 'ALIVE') {
      return {
        kind: 'refuse',
        message: `connector ${myName} (${named.id}) is ALIVE but not recorded for ordinal ${policy.ordinal}: another release uses the same names; set a different --name-prefix or remove that connector`,
      };
    }
    return {
      kind: 'claim',
      record: { name: myName, id: named.id, origin: 'created', claimedAt },
      why: 'adopt the connector with this ordinal name',
    };
  }
  if (policy.reuseOffline) {
    const candidates = reuseCandidates(claims, connectors, policy);
    if (candidates.length > 0) {
      // Siblings starting together see the same list; starting at a different index per ordinal
      // makes their first picks differ, so fewer claims lose the race.
      const pick = candidates[policy.ordinal % candidates.length] as ConnectorView;
      return {
        kind: 'claim',
        record: { name: pick.name, id: pick.id, origin: 'adopted', claimedAt },
        why: `reuse offline connector (${pick.state})`,
      };
    }
  }
  return { kind: 'claim', record: { name: myName, origin: 'created', claimedAt }, why: 'create a connector' };
}

/**
 * Offline connectors this ordinal may adopt: not ALIVE; quiet for at least `reuseMinAgeMs` (a
 * young DEAD_NO_HEARTBEAT is someone's connector still starting); not recorded by a sibling (id or
 * name); not named like a sibling's (`<prefix>-<n>`, n ≠ ordinal); sorted by name.
 */
export function reuseCandidates(
  claims: Claims,
  connectors: readonly ConnectorView[],
  policy: ProvisionPolicy,
): ConnectorView[] {
  const taken = takenBySibling(claims, policy.ordinal);
  const sibling = new RegExp(`^${escapeRegExp(policy.namePrefix)}-(0|[1-9]\\d*)$`);
  return connectors
    .filter((c) => c.state !== 'ALIVE')
    .filter((c) => !taken.ids.has(c.id) && !taken.names.has(c.name))
    .filter((c) => !sibling.test(c.name))
    .filter((c) => {
      const quietSince = Date.parse(c.lastHeartbeatAt ?? c.createdAt ?? '');
      return Number.isFinite(quietSince) && policy.now - quietSince >= policy.reuseMinAgeMs;
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function takenBySibling(claims: Claims, ordinal: number): { ids: Set<string>; names: Set<string> } {
  const ids = new Set<string>();
  const names = new Set<string>();
  for (const [o, r] of claims.ordinals) {
    if (o === ordinal) continue;
    names.add(r.name);
    if (r.id !== undefined) ids.add(r.id);
  }
  return { ids, names };
}

/** What `gc` does for the ordinals at or above `replicas`. */
export interface GcPlan {
  /** Connectors this release created: delete them, then drop their records. */
  delete: { ordinal: number; id: string; name: string }[];
  /** Adopted connectors (kept unless deleteAdopted) and claims without id: drop their records. */
  release: { ordinal: number; name: string; id?: string }[];
}

export function planGc(claims: Claims, replicas: number, deleteAdopted: boolean): GcPlan {
  const plan: GcPlan = { delete: [], release: [] };
  for (const [ordinal, r] of [...claims.ordinals].sort(([a], [b]) => a - b)) {
    if (ordinal < replicas) continue;
    if (r.id !== undefined && (r.origin === 'created' || deleteAdopted)) {
      plan.delete.push({ ordinal, id: r.id, name: r.name });
    } else {
      plan.release.push(r.id === undefined ? { ordinal, name: r.name } : { ordinal, name: r.name, id: r.id });
    }
  }
  return plan;
}

/**
 * A claim without id at or above `replicas` may still have a connector (a crash between create
 * and record): gc looks its name up and deletes it when this release created it.
 */
export function pendingCreates(plan: GcPlan, claims: Claims): { ordinal: number; name: string }[] {
  return plan.release.filter(
    (r) => r.id === undefined && claims.ordinals.get(r.ordinal)?.origin === 'created',
  );
}

/** One line of `connector-init status`. */
export interface StatusRow {
  ordinal: number;
  name: string;
  id: string;
  origin: OrdinalRecord['origin'];
  state: ConnectorState | 'MISSING' | 'PENDING';
  lastHeartbeatAt: string | null;
}

export function statusRows(claims: Claims, connectors: readonly ConnectorView[]): StatusRow[] {
  const byId = new Map(connectors.map((c) => [c.id, c]));
  return [...claims.ordinals]
    .sort(([a], [b]) => a - b)
    .map(([ordinal, r]) => {
      const c = r.id === undefined ? undefined : byId.get(r.id);
      return {
        ordinal,
        name: c?.name ?? r.name,
        id: r.id ?? '',
        origin: r.origin,
        state: r.id === undefined ? 'PENDING' : (c?.state ?? 'MISSING'),
        lastHeartbeatAt: c?.lastHeartbeatAt ?? null,
      };
    });
}

/** The rows as an aligned text table with a header. */
export function renderStatusTable(rows: readonly StatusRow[]): string {
  const header = ['ORDINAL', 'CONNECTOR', 'ID', 'ORIGIN', 'STATE', 'LAST HEARTBEAT'];
  const cells = rows.map((r) => [
    String(r.ordinal),
    r.name,
    r.id || '-',
    r.origin,
    r.state,
    r.lastHeartbeatAt ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]) =>
    c
      .map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...cells.map(line)].join('\n') + '\n';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
