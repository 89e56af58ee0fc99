export { TwingateError, type GraphqlErrorDetail, type TwingateErrorKind } from './errors';
export { TWINGATE_DOMAIN, twingateBaseUrl } from './base-url';
export {
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_DEADLINE_MS,
  DEFAULT_MAX_CONCURRENCY,
  DEFAULT_PAGE_SIZE,
  DEFAULT_RETRY_AFTER_MS,
  DEFAULT_USER_AGENT,
  GRAPHQL_PATH,
  MAX_RESPONSE_BYTES,
  VALIDATE_TOKENS_PATH,
  type TwingateClientOptions,
  type TwingateStats,
} from './transport';
export { type Connection, type PageInfo } from './pagination';
export { REMOTE_NETWORKS_BY_NAME_QUERY, remoteNetworkSchema, type RemoteNetwork } from './remote-networks';
export {
  CONNECTOR_CREATE_MUTATION,
  CONNECTOR_DELETE_MUTATION,
  CONNECTOR_FRAGMENT,
  CONNECTOR_QUERY,
  CONNECTOR_STATES,
  CONNECTOR_UPDATE_MUTATION,
  CONNECTORS_QUERY,
  REMOTE_NETWORK_CONNECTORS_QUERY,
  connectorSchema,
  type Connector,
  type ConnectorState,
  type CreateConnectorInput,
  type UpdateConnectorInput,
} from './connectors';
export { CONNECTOR_GENERATE_TOKENS_MUTATION, connectorTokensSchema, type ConnectorTokens } from './tokens';
export { TwingateClient } from './client';
