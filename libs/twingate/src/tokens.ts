import { z } from 'zod';
import { executeMutation } from './mutation';
import type { GraphqlRunner, Transport } from './transport';

/** A connector's token pair: what the connector container needs (`TWINGATE_ACCESS_TOKEN`, `TWINGATE_REFRESH_TOKEN`). */
export interface ConnectorTokens {
  accessToken: string;
  refreshToken: string;
}

export const connectorTokensSchema: z.ZodType<ConnectorTokens> = z.object({
  accessToken: z.string().min(1),
  refreshToken: z.string().min(1),
});

/** Needs a key with the Provision scope. Invalidates the connector's previous pair. */
export const CONNECTOR_GENERATE_TOKENS_MUTATION = `mutation connectorGenerateTokens($connectorId: ID!) {
  connectorGenerateTokens(connectorId: $connectorId) { ok error connectorTokens { accessToken refreshToken } }
}`;

/** A new token pair for the connector; the previous pair stops working. */
export function generateTokens(api: GraphqlRunner, connectorId: string): Promise<ConnectorTokens> {
  return executeMutation(
    api,
    'connectorGenerateTokens',
    CONNECTOR_GENERATE_TOKENS_MUTATION,
    { connectorId },
    {
      field: 'connectorTokens',
      schema: connectorTokensSchema,
    },
  );
}

/** True when the API accepts the pair (HTTP 2xx), false when it refuses it (401/403). */
export function validateTokens(
  transport: Pick<Transport, 'validateTokens'>,
  tokens: ConnectorTokens,
): Promise<boolean> {
  return transport.validateTokens(tokens.accessToken, tokens.refreshToken);
}
