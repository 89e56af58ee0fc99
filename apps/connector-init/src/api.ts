import { UsageError } from '@knet/runtime';
import { TwingateError, type TwingateClient } from '@knet/twingate';

/** The part of the Twingate client connector-init calls (the real client, or one in a test). */
export type ConnectorApi = Pick<
  TwingateClient,
  | 'remoteNetworkByName'
  | 'listConnectors'
  | 'getConnector'
  | 'createConnector'
  | 'deleteConnector'
  | 'generateTokens'
  | 'stats'
>;

/**
 * Errors that a restart cannot fix become one-line configuration errors (exit 2): the key was
 * refused, or it lacks the scope an operation needs. Anything else is returned as it is.
 */
export function explainApiError(e: unknown): unknown {
  if (!(e instanceof TwingateError)) return e;
  if (e.kind === 'auth') {
    return new UsageError(`${e.message} (--api-key, TWINGATE_API_KEY)`, { cause: e });
  }
  if (e.kind === 'graphql' && e.operation === 'connectorGenerateTokens') {
    return new UsageError(
      `${e.message}: generating connector tokens needs an API key with the Read, Write & Provision scope (--api-key, TWINGATE_API_KEY)`,
      { cause: e },
    );
  }
  if (e.kind === 'graphql' && (e.operation === 'connectorCreate' || e.operation === 'connectorDelete')) {
    return new UsageError(
      `${e.message}: creating and deleting connectors needs an API key with the Read & Write scope or more (--api-key, TWINGATE_API_KEY)`,
      { cause: e },
    );
  }
  return e;
}

/** The error for a remote network name the tenant does not have. */
export function unknownNetwork(name: string, tenant: string): UsageError {
  return new UsageError(
    `remote network ${JSON.stringify(name)} not found in ${tenant}: check --network (TWINGATE_NETWORK); names are case-sensitive`,
  );
}
