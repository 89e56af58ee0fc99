import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { isAlreadyExists, isConflict, isNotFound, wrapApiError } from './errors';

/** Typed helpers for Secrets, with create-or-update that survives concurrent writers (409 retry). */
export class Secrets {
  private readonly api: CoreV1Api;

  constructor(
    kc: KubeConfig,
    private readonly maxAttempts = 5,
  ) {
    this.api = kc.makeApiClient(CoreV1Api);
  }

  /** The Secret, or undefined when it does not exist. */
  async get(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.api.readNamespacedSecret({ namespace, name });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw wrapApiError(`get Secret ${namespace}/${name}`, e);
    }
  }

  async create(namespace: string, secret: V1Secret): Promise<V1Secret> {
    try {
      return await this.api.createNamespacedSecret({ namespace, body: secret });
    } catch (e) {
      throw wrapApiError(`create Secret ${namespace}/${secret.metadata?.name ?? '?'}`, e);
    }
  }

  /** Replaces the Secret; `secret.metadata.resourceVersion` makes it conditional (409 on a lost race). */
  async update(namespace: string, secret: V1Secret): Promise<V1Secret> {
    const name = secret.metadata?.name ?? '';
    try {
      return await this.api.replaceNamespacedSecret({ namespace, name, body: secret });
    } catch (e) {
      throw wrapApiError(`update Secret ${namespace}/${name}`, e);
    }
  }

  async delete(namespace: string, name: string): Promise<boolean> {
    try {
      await this.api.deleteNamespacedSecret({ namespace, name });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw wrapApiError(`delete Secret ${namespace}/${name}`, e);
    }
  }

  /**
   * Read-modify-write: `mutate` gets the current Secret (or undefined) and returns the desired one,
   * or the same object to leave it alone. On a 409 (someone else wrote in between, or created it
   * first) it reads again and re-applies `mutate`, up to maxAttempts times.
   */
  async upsert(
    namespace: string,
    name: string,
    mutate: (current: V1Secret | undefined) => V1Secret,
  ): Promise<{ secret: V1Secret; changed: boolean }> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const current = await this.get(namespace, name);
      const desired = mutate(current ? structuredClone(current) : undefined);
      desired.metadata = { ...desired.metadata, name, namespace };
      try {
        if (!current) {
          return {
            secret: await this.api.createNamespacedSecret({ namespace, body: desired }),
            changed: true,
          };
        }
        if (sameContent(current, desired)) return { secret: current, changed: false };
        desired.metadata.resourceVersion = current.metadata?.resourceVersion;
        return {
          secret: await this.api.replaceNamespacedSecret({ namespace, name, body: desired }),
          changed: true,
        };
      } catch (e) {
        if (!(isConflict(e) || isAlreadyExists(e)))
          throw wrapApiError(`upsert Secret ${namespace}/${name}`, e);
        lastError = e;
        await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 30));
      }
    }
    throw wrapApiError(
      `upsert Secret ${namespace}/${name} (gave up after ${this.maxAttempts} conflicts)`,
      lastError,
    );
  }
}

/** Decoded `data` of a Secret (base64 → Buffer); stringData is merged as the API server would. */
export function secretData(secret: V1Secret | undefined): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(secret?.data ?? {})) out[k] = Buffer.from(v, 'base64');
  for (const [k, v] of Object.entries(secret?.stringData ?? {})) out[k] = Buffer.from(v, 'utf8');
  return out;
}

/** Encodes values for a Secret's `data` field. */
export function encodeSecretData(values: Record<string, string | Buffer>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) out[k] = Buffer.from(v).toString('base64');
  return out;
}

function sameContent(a: V1Secret, b: V1Secret): boolean {
  const norm = (s: V1Secret) =>
    JSON.stringify({
      type: s.type ?? 'Opaque',
      data: sortObj(
        Object.fromEntries(Object.entries(secretData(s)).map(([k, v]) => [k, v.toString('base64')])),
      ),
      labels: sortObj(s.metadata?.labels ?? {}),
      annotations: sortObj(s.metadata?.annotations ?? {}),
      ownerReferences: s.metadata?.ownerReferences ?? [],
    });
  return norm(a) === norm(b);
}

function sortObj<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([x], [y]) => x.localeCompare(y)));
}
