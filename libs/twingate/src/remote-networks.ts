import { z } from 'zod';
import { connectionFields, connectionSchema, fetchAllPages } from './pagination';
import type { GraphqlRunner } from './transport';

/** A Twingate Remote Network (its id is opaque base64 of `RemoteNetwork:<n>`). */
export interface RemoteNetwork {
  id: string;
  name: string;
}

export const REMOTE_NETWORK_FIELDS = 'id name';

export const remoteNetworkSchema: z.ZodType<RemoteNetwork> = z.object({
  id: z.string().min(1),
  name: z.string(),
});

/** Remote networks whose name is exactly `$name`, one page. */
export const REMOTE_NETWORKS_BY_NAME_QUERY = `query remoteNetworks($name: String!, $first: Int!, $after: String) {
  remoteNetworks(first: $first, after: $after, filter: { name: { eq: $name } }) { ${connectionFields(REMOTE_NETWORK_FIELDS)} }
}`;

const remoteNetworksData = z.object({ remoteNetworks: connectionSchema(remoteNetworkSchema) });

/** The remote network named `name` (exact match, every page read), or undefined. */
export async function remoteNetworkByName(
  api: GraphqlRunner,
  name: string,
): Promise<RemoteNetwork | undefined> {
  const operation = 'remoteNetworks';
  const networks = await fetchAllPages(api, operation, async (after) => {
    const data = await api.graphql(
      operation,
      REMOTE_NETWORKS_BY_NAME_QUERY,
      { name, first: api.pageSize, after },
      remoteNetworksData,
    );
    return data.remoteNetworks;
  });
  return networks.find((n) => n.name === name);
}
