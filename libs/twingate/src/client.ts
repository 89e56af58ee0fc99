import {
  createConnector,
  deleteConnector,
  getConnector,
  listAllConnectors,
  listConnectors,
  updateConnector,
  type Connector,
  type CreateConnectorInput,
  type UpdateConnectorInput,
} from './connectors';
import { remoteNetworkByName, type RemoteNetwork } from './remote-networks';
import { generateTokens, validateTokens, type ConnectorTokens } from './tokens';
import { Transport, type TwingateClientOptions, type TwingateStats } from './transport';

/**
 * The Twingate admin API client: the entity modules (remote networks, connectors, tokens) over one
 * transport (retries within a deadline, the shard redirect, at most `maxConcurrency` requests in
 * flight). Every failure is a `TwingateError` (or an `AbortError` once `signal` aborts).
 */
export class TwingateClient {
  /** Counters since the client was made (a live object: read it after the calls). */
  readonly stats: TwingateStats;
  private readonly transport: Transport;

  /** Throws (one line) when the account or API URL is invalid or the key is empty. */
  constructor(o: TwingateClientOptions) {
    this.transport = new Transport(o);
    this.stats = this.transport.stats;
  }

  /** The base URL calls go to; after a shard redirect, the shard's origin. */
  get baseUrl(): string {
    return this.transport.baseUrl;
  }

  /** `remoteNetworks(filter: {name: {eq}})`, every page; undefined when there is none. */
  remoteNetworkByName(name: string): Promise<RemoteNetwork | undefined> {
    return remoteNetworkByName(this.transport, name);
  }

  /** `remoteNetwork(id) { connectors(first, after) }` to the last page. */
  listConnectors(remoteNetworkId: string): Promise<Connector[]> {
    return listConnectors(this.transport, remoteNetworkId);
  }

  /** Tenant-wide `connectors(first, after)` to the last page (the seed's `tg connector list`). */
  listAllConnectors(): Promise<Connector[]> {
    return listAllConnectors(this.transport);
  }

  /** `connector(id)`; undefined when the API answers null. */
  getConnector(id: string): Promise<Connector | undefined> {
    return getConnector(this.transport, id);
  }

  /** `connectorCreate`; without a name the API picks one. The new connector is `DEAD_NO_HEARTBEAT`. */
  createConnector(i: CreateConnectorInput): Promise<Connector> {
    return createConnector(this.transport, i);
  }

  /** `connectorUpdate`. */
  updateConnector(i: UpdateConnectorInput): Promise<Connector> {
    return updateConnector(this.transport, i);
  }

  /** `connectorDelete`; 'absent' when the API refuses and the connector no longer exists. */
  deleteConnector(id: string): Promise<'deleted' | 'absent'> {
    return deleteConnector(this.transport, id);
  }

  /** `connectorGenerateTokens` (needs the Provision scope): a new pair; the previous one stops working. */
  generateTokens(connectorId: string): Promise<ConnectorTokens> {
    return generateTokens(this.transport, connectorId);
  }

  /** `POST /api/v4/connector/validate_tokens`: true on 2xx, false on 401/403. */
  validateTokens(t: ConnectorTokens): Promise<boolean> {
    return validateTokens(this.transport, t);
  }
}
