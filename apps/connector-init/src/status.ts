import { unknownNetwork, type ConnectorApi } from './api';
import type { ClaimsStore } from './claims';
import { renderStatusTable, statusRows, type StatusRow } from './plan';

export interface StatusReport {
  release: string;
  where: string;
  network: { id: string; name: string };
  connectors: StatusRow[];
}

/** Each ordinal's recorded connector with the vendor's current state (MISSING: deleted outside). */
export async function readStatus(o: {
  store: ClaimsStore;
  api: Pick<ConnectorApi, 'remoteNetworkByName' | 'listConnectors'>;
  release: string;
  network: string;
  tenant: string;
}): Promise<StatusReport> {
  const { claims } = await o.store.read();
  const network = claims.network ?? (await o.api.remoteNetworkByName(o.network));
  if (!network) throw unknownNetwork(o.network, o.tenant);
  const connectors = await o.api.listConnectors(network.id);
  return { release: o.release, where: o.store.where, network, connectors: statusRows(claims, connectors) };
}

export function formatStatus(report: StatusReport, output: 'table' | 'json'): string {
  if (output === 'json') return JSON.stringify(report, null, 2) + '\n';
  if (report.connectors.length === 0) {
    return `no connectors recorded in ${report.where} (remote network ${report.network.name})\n`;
  }
  return renderStatusTable(report.connectors);
}
