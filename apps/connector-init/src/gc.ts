import { silentLogger, type Logger } from '@knet/runtime';
import { unknownNetwork, type ConnectorApi } from './api';
import type { ClaimsStore } from './claims';
import { planGc, pendingCreates, withRecord, type Claims } from './plan';

export interface GcOptions {
  store: ClaimsStore;
  api: ConnectorApi;
  network: string;
  tenant: string;
  /** Ordinals at or above this no longer exist (0: the release is being uninstalled). */
  replicas: number;
  deleteAdopted: boolean;
  /** Names of this release's connectors are `<namePrefix>-<ordinal>`. */
  namePrefix: string;
  logger?: Logger;
}

export interface GcResult {
  deleted: { ordinal?: number; name: string; id: string }[];
  released: { ordinal: number; name: string; id?: string }[];
  /** Connectors named like this release's (ordinal ≥ replicas) without a record, still ALIVE: left alone. */
  skipped: { name: string; id: string; why: string }[];
}

/**
 * Deletes the connectors this release created for ordinals that no longer exist (recorded ones,
 * pending creates found by name, and unrecorded ones named `<prefix>-<n>`, n ≥ replicas, that are
 * not ALIVE), releases adopted ones (deleted too with deleteAdopted), and drops their records.
 * Idempotent: a connector already gone counts as deleted; a crash midway is finished by the next run.
 */
export async function collectGarbage(o: GcOptions): Promise<GcResult> {
  const log = o.logger ?? silentLogger;
  const result: GcResult = { deleted: [], released: [], skipped: [] };
  if (o.replicas === 0) await markDeleting(o.store, new Date().toISOString(), log);
  const read = await o.store.read();
  const plan = planGc(read.claims, o.replicas, o.deleteAdopted);
  const network = read.claims.network ?? (await o.api.remoteNetworkByName(o.network));
  if (!network) throw unknownNetwork(o.network, o.tenant);
  const connectors = await o.api.listConnectors(network.id);
  const recorded = new Set([...read.claims.ordinals.values()].flatMap((r) => (r.id ? [r.id] : [])));
  const doomed = [...plan.delete];
  for (const p of pendingCreates(plan, read.claims)) {
    for (const c of connectors.filter((c) => c.name === p.name))
      doomed.push({ ordinal: p.ordinal, id: c.id, name: c.name });
  }
  const pattern = new RegExp(`^${o.namePrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(0|[1-9]\\d*)$`);
  for (const c of connectors) {
    const m = pattern.exec(c.name);
    if (!m || Number(m[1]) < o.replicas || recorded.has(c.id) || doomed.some((d) => d.id === c.id)) continue;
    if (c.state === 'ALIVE' && o.replicas > 0) {
      result.skipped.push({ name: c.name, id: c.id, why: 'ALIVE and not recorded by this release' });
      continue;
    }
    doomed.push({ ordinal: Number(m[1]), id: c.id, name: c.name });
  }
  for (const d of doomed) {
    const outcome = await o.api.deleteConnector(d.id);
    log.info({ ordinal: d.ordinal, connector: d.name, id: d.id, outcome }, 'connector deleted');
    result.deleted.push(d);
  }
  for (const r of plan.release) {
    if (r.id !== undefined)
      log.info({ ordinal: r.ordinal, connector: r.name, id: r.id }, 'adopted connector released (kept)');
    result.released.push(r);
  }
  const gone = [...plan.delete.map((d) => d.ordinal), ...plan.release.map((r) => r.ordinal)];
  if (gone.length > 0) await dropRecords(o.store, gone, log);
  return result;
}

/** Marks the release as being deleted, so that its pods, still running, provision nothing more. */
async function markDeleting(store: ClaimsStore, at: string, log: Logger): Promise<void> {
  for (let attempt = 1; attempt <= 20; attempt++) {
    const read = await store.read();
    if (read.claims.deleting !== undefined) return;
    if (await store.write({ ...read.claims, deleting: at }, read)) {
      log.info({ at }, 'release marked as being deleted');
      return;
    }
  }
  throw new Error(
    `${store.where}: could not mark the release as being deleted (the ConfigMap kept changing)`,
  );
}

/** Removes the records of `ordinals`, reading again after a lost race. */
async function dropRecords(store: ClaimsStore, ordinals: number[], log: Logger): Promise<void> {
  for (let attempt = 1; attempt <= 20; attempt++) {
    const read = await store.read();
    let claims: Claims = read.claims;
    for (const o of ordinals) claims = withRecord(claims, o, undefined);
    if (await store.write(claims, read)) return;
    log.debug({ attempt }, 'claims changed while dropping records; reading again');
  }
  throw new Error(
    `${store.where}: could not drop the records of ordinals ${ordinals.join(', ')} (the ConfigMap kept changing)`,
  );
}
