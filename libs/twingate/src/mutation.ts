import { z } from 'zod';
import { describeZodError } from './errors';
import type { GraphqlRunner } from './transport';

/** Every Twingate mutation returns `{ok error …}`; `error` is a String. */
const mutationPayload = z.looseObject({ ok: z.boolean(), error: z.string().nullish() });

/** What a mutation returns besides ok/error: `entity`, `connectorTokens`… */
export interface MutationResult<T> {
  field: string;
  schema: z.ZodType<T>;
}

/**
 * Runs a mutation and applies the ok/error contract in one place: `ok: false` throws a `mutation`
 * error (`<operation> refused: <error>`); with `result`, the named field must then be there in the
 * expected shape (`protocol` error otherwise) and is returned.
 */
export async function executeMutation<T>(
  api: GraphqlRunner,
  operation: string,
  document: string,
  variables: Record<string, unknown>,
  result: MutationResult<T>,
): Promise<T>;
export async function executeMutation(
  api: GraphqlRunner,
  operation: string,
  document: string,
  variables: Record<string, unknown>,
): Promise<void>;
export async function executeMutation<T>(
  api: GraphqlRunner,
  operation: string,
  document: string,
  variables: Record<string, unknown>,
  result?: MutationResult<T>,
): Promise<T | void> {
  const data = await api.graphql(operation, document, variables, z.object({ [operation]: mutationPayload }));
  const payload = data[operation];
  if (!payload) {
    throw api.error(
      'protocol',
      operation,
      `${operation}: unexpected answer from ${api.host}: data.${operation} missing`,
    );
  }
  if (!payload.ok) {
    throw api.error(
      'mutation',
      operation,
      `${operation} refused: ${payload.error || 'no reason given'} (at ${api.host})`,
    );
  }
  if (!result) return;
  const parsed = z.object({ [result.field]: result.schema }).safeParse(payload);
  if (!parsed.success) {
    throw api.error(
      'protocol',
      operation,
      `${operation}: unexpected answer from ${api.host}: ${describeZodError(`data.${operation}`, parsed.error)}`,
    );
  }
  return parsed.data[result.field] as T;
}
