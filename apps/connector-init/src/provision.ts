import { UsageError, errorMessage, silentLogger, type Logger } from '@knet/runtime';
import { TwingateError } from '@knet/twingate';
import type { ConnectorApi } from './api';
import { unknownNetwork } from './api';
import type { ClaimsStore } from './claims';
import {
  planProvision,
  withRecord,
  type Claims,
  type ConnectorView,
  type OrdinalRecord,
  type ProvisionPolicy,
} from './plan';
import type { TokenPair } from './handoff';

export interface ProvisionOptions {
  store: ClaimsStore;
  api: ConnectorApi;
  /** The remote network's name (TWINGATE_NETWORK). */
  network: string;
  /** The tenant, for messages. */
  tenant: string;
  policy: Omit<ProvisionPolicy, 'now'>;
  statusNotifications?: boolean;
  now?: () => number;
  logger?: Logger;
  /** Counts lost claim races (409), for the metrics. */
  onConflict?: () => void;
  /** Plans at most this many steps before giving up (default 50: far more than any real race). */
  maxSteps?: number;
}

export interface Provisioned {
  id: string;
  name: string;
  origin: OrdinalRecord['origin'];
  tokens: TokenPair;
  /** Claim writes that lost the race (someone else wrote first). */
  conflicts: number;
}

/**
 * Provisions one ordinal: plan a step from the claims (and the network's connectors once listed),
 * do it, read the claims again, until the ordinal has a recorded connector whose tokens were
 * generated. Claims are written only if nobody wrote since they were read, so two ordinals never
 * record one connector; a crash at any point resumes from the record (see planProvision).
 */
export async function provisionOrdinal(o: ProvisionOptions): Promise<Provisioned> {
  const log = o.logger ?? silentLogger;
  const now = o.now ?? Date.now;
  const { ordinal } = o.policy;
  let connectors: ConnectorView[] | undefined;
  let network: Claims['network'];
  let conflicts = 0;
  const maxSteps = o.maxSteps ?? 50;
  for (let step = 1; step <= maxSteps; step++) {
    const read = await o.store.read();
    const claims: Claims = network && !read.claims.network ? { ...read.claims, network } : read.claims;
    const next = planProvision(claims, connectors, { ...o.policy, now: now() });
    switch (next.kind) {
      case 'tokens': {
        let tokens: TokenPair;
        try {
          tokens = await o.api.generateTokens(next.id);
        } catch (e) {
          if (!(e instanceof TwingateError && e.kind === 'mutation')) throw e;
          if ((await o.api.getConnector(next.id)) !== undefined) throw e;
          // Deleted outside (the admin console): forget it and provision this ordinal anew.
          log.warn(
            { ordinal, connector: next.name, id: next.id },
            'recorded connector no longer exists; provisioning a new one',
          );
          if (!(await o.store.write(withRecord(claims, ordinal, undefined), read))) conflicts++;
          connectors = undefined;
          continue;
        }
        const origin = claims.ordinals.get(ordinal)?.origin ?? 'created';
        log.info({ ordinal, connector: next.name, id: next.id, origin }, 'connector tokens generated');
        return { id: next.id, name: next.name, origin, tokens, conflicts };
      }
      case 'list': {
        network = read.claims.network?.name === o.network ? read.claims.network : await lookUpNetwork(o);
        connectors = await o.api.listConnectors(network.id);
        continue;
      }
      case 'claim': {
        const written = await o.store.write(
          withRecord(network ? { ...claims, network } : claims, ordinal, next.record),
          read,
        );
        if (written) {
          log.info({ ordinal, connector: next.record.name, id: next.record.id, why: next.why }, 'claimed');
        } else {
          conflicts++;
          o.onConflict?.();
          log.info({ ordinal, connector: next.record.name }, 'claim lost to a sibling; choosing again');
        }
        continue;
      }
      case 'create': {
        if (!network) throw new Error('internal: create planned before the network was looked up');
        try {
          const created = await o.api.createConnector({
            remoteNetworkId: network.id,
            name: next.name,
            ...(o.statusNotifications === undefined
              ? {}
              : { hasStatusNotificationsEnabled: o.statusNotifications }),
          });
          log.info({ ordinal, connector: created.name, id: created.id }, 'connector created');
          connectors = [...(connectors ?? []), created];
        } catch (e) {
          if (!(e instanceof TwingateError && e.kind === 'mutation')) throw e;
          // Most likely the name exists (a create whose answer was lost): list again and resume.
          log.warn(
            { ordinal, connector: next.name, error: errorMessage(e) },
            'create refused; looking the name up',
          );
          connectors = undefined;
        }
        continue;
      }
      case 'refuse':
        throw new UsageError(next.message);
    }
  }
  throw new Error(
    `ordinal ${ordinal}: no connector after ${maxSteps} steps (${conflicts} lost claims): too many replicas racing for ${o.store.where}?`,
  );
}

async function lookUpNetwork(o: ProvisionOptions): Promise<{ id: string; name: string }> {
  const found = await o.api.remoteNetworkByName(o.network);
  if (!found) throw unknownNetwork(o.network, o.tenant);
  return { id: found.id, name: found.name };
}
