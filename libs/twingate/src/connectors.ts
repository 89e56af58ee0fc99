import { z } from 'zod';
import { TwingateError } from './errors';
import { executeMutation } from './mutation';
import { connectionFields, connectionSchema, fetchAllPages } from './pagination';
import { REMOTE_NETWORK_FIELDS, remoteNetworkSchema, type RemoteNetwork } from './remote-networks';
import type { GraphqlRunner } from './transport';

/** A new connector is `DEAD_NO_HEARTBEAT` until it first reports. */
export const CONNECTOR_STATES = [
  'ALIVE',
  'DEAD_NO_HEARTBEAT',
  'DEAD_HEARTBEAT_TOO_OLD',
  'DEAD_NO_RELAYS',
] as const;
export type ConnectorState = (typeof CONNECTOR_STATES)[number];

/** A Twingate Connector (its id is opaque base64 of `Connector:<n>`). Fields the API leaves out are null. */
export interface Connector {
  id: string;
  name: string;
  state: ConnectorState;
  remoteNetwork: RemoteNetwork;
  hasStatusNotificationsEnabled: boolean | null;
  lastHeartbeatAt: string | null;
  createdAt: string | null;
  updatedAt: string | null;
  hostname: string | null;
  version: string | null;
  publicIP: string | null;
  privateIPs: string[] | null;
}

/** The fields every connector query and mutation selects (`...ConnectorFields`). */
export const CONNECTOR_FRAGMENT = `fragment ConnectorFields on Connector {
  id name state remoteNetwork { ${REMOTE_NETWORK_FIELDS} } hasStatusNotificationsEnabled
  hostname version publicIP privateIPs lastHeartbeatAt createdAt updatedAt
}`;

const orNull = <T extends z.ZodType>(t: T) => t.nullish().transform((v) => v ?? null);

export const connectorSchema: z.ZodType<Connector> = z.object({
  id: z.string().min(1),
  name: z.string(),
  state: z.enum(CONNECTOR_STATES),
  remoteNetwork: remoteNetworkSchema,
  hasStatusNotificationsEnabled: orNull(z.boolean()),
  lastHeartbeatAt: orNull(z.string()),
  createdAt: orNull(z.string()),
  updatedAt: orNull(z.string()),
  hostname: orNull(z.string()),
  version: orNull(z.string()),
  publicIP: orNull(z.string()),
  privateIPs: orNull(z.array(z.string())),
});

const CONNECTOR_PAGE = connectionFields('...ConnectorFields');

/** Every connector of the tenant, one page (the seed's `tg connector list`). */
export const CONNECTORS_QUERY = `query connectors($first: Int!, $after: String) {
  connectors(first: $first, after: $after) { ${CONNECTOR_PAGE} }
}
${CONNECTOR_FRAGMENT}`;

/** The connectors of one remote network, one page. */
export const REMOTE_NETWORK_CONNECTORS_QUERY = `query remoteNetwork($id: ID!, $first: Int!, $after: String) {
  remoteNetwork(id: $id) { id name connectors(first: $first, after: $after) { ${CONNECTOR_PAGE} } }
}
${CONNECTOR_FRAGMENT}`;

/** One connector; `connector` is null when the id is unknown. */
export const CONNECTOR_QUERY = `query connector($id: ID!) {
  connector(id: $id) { ...ConnectorFields }
}
${CONNECTOR_FRAGMENT}`;

/** Flat arguments (not an input object), like the operator, tg-cli and the Terraform provider. */
export const CONNECTOR_CREATE_MUTATION = `mutation connectorCreate($remoteNetworkId: ID!, $name: String, $hasStatusNotificationsEnabled: Boolean) {
  connectorCreate(remoteNetworkId: $remoteNetworkId, name: $name, hasStatusNotificationsEnabled: $hasStatusNotificationsEnabled) {
    ok error entity { ...ConnectorFields }
  }
}
${CONNECTOR_FRAGMENT}`;

export const CONNECTOR_UPDATE_MUTATION = `mutation connectorUpdate($id: ID!, $name: String, $hasStatusNotificationsEnabled: Boolean) {
  connectorUpdate(id: $id, name: $name, hasStatusNotificationsEnabled: $hasStatusNotificationsEnabled) {
    ok error entity { ...ConnectorFields }
  }
}
${CONNECTOR_FRAGMENT}`;

export const CONNECTOR_DELETE_MUTATION = `mutation connectorDelete($id: ID!) {
  connectorDelete(id: $id) { ok error }
}`;

export interface CreateConnectorInput {
  remoteNetworkId: string;
  /** Omitted: the API picks one (e.g. "whispering-petrel"). */
  name?: string;
  hasStatusNotificationsEnabled?: boolean;
}

export interface UpdateConnectorInput {
  id: string;
  name?: string;
  hasStatusNotificationsEnabled?: boolean;
}

const connectorsData = z.object({ connectors: connectionSchema(connectorSchema) });
const remoteNetworkConnectorsData = z.object({
  remoteNetwork: z
    .object({ id: z.string(), name: z.string(), connectors: connectionSchema(connectorSchema) })
    .nullable(),
});
const connectorData = z.object({ connector: connectorSchema.nullable() });

/** The connectors of a remote network, every page. An unknown network is a `graphql` error. */
export function listConnectors(api: GraphqlRunner, remoteNetworkId: string): Promise<Connector[]> {
  const operation = 'remoteNetwork';
  return fetchAllPages(api, operation, async (after) => {
    const data = await api.graphql(
      operation,
      REMOTE_NETWORK_CONNECTORS_QUERY,
      { id: remoteNetworkId, first: api.pageSize, after },
      remoteNetworkConnectorsData,
    );
    if (!data.remoteNetwork) {
      const message = `no remote network with id ${JSON.stringify(remoteNetworkId)}`;
      throw api.error('graphql', operation, `${operation}: ${message} (path remoteNetwork, at ${api.host})`, {
        graphqlErrors: [{ message, path: ['remoteNetwork'] }],
      });
    }
    return data.remoteNetwork.connectors;
  });
}

/** Every connector of the tenant, every page. */
export function listAllConnectors(api: GraphqlRunner): Promise<Connector[]> {
  const operation = 'connectors';
  return fetchAllPages(api, operation, async (after) => {
    const data = await api.graphql(
      operation,
      CONNECTORS_QUERY,
      { first: api.pageSize, after },
      connectorsData,
    );
    return data.connectors;
  });
}

/** The connector, or undefined when the API answers `connector: null`. */
export async function getConnector(api: GraphqlRunner, id: string): Promise<Connector | undefined> {
  const data = await api.graphql('connector', CONNECTOR_QUERY, { id }, connectorData);
  return data.connector ?? undefined;
}

export function createConnector(api: GraphqlRunner, input: CreateConnectorInput): Promise<Connector> {
  return executeMutation(
    api,
    'connectorCreate',
    CONNECTOR_CREATE_MUTATION,
    {
      remoteNetworkId: input.remoteNetworkId,
      name: input.name,
      hasStatusNotificationsEnabled: input.hasStatusNotificationsEnabled,
    },
    { field: 'entity', schema: connectorSchema },
  );
}

export function updateConnector(api: GraphqlRunner, input: UpdateConnectorInput): Promise<Connector> {
  return executeMutation(
    api,
    'connectorUpdate',
    CONNECTOR_UPDATE_MUTATION,
    { id: input.id, name: input.name, hasStatusNotificationsEnabled: input.hasStatusNotificationsEnabled },
    { field: 'entity', schema: connectorSchema },
  );
}

/**
 * Deletes the connector. When the API refuses (`ok: false`), the connector is looked up: gone →
 * 'absent' (already deleted; the vendor's message text is never matched), else the refusal is
 * thrown. A failed lookup throws its own error (its kind says whether to retry).
 */
export async function deleteConnector(api: GraphqlRunner, id: string): Promise<'deleted' | 'absent'> {
  try {
    await executeMutation(api, 'connectorDelete', CONNECTOR_DELETE_MUTATION, { id });
    return 'deleted';
  } catch (e) {
    if (!(e instanceof TwingateError && e.kind === 'mutation')) throw e;
    const still = await getConnector(api, id);
    if (still === undefined) return 'absent';
    throw e;
  }
}
