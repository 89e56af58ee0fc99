import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { UsageError } from '@knet/runtime';
import { decodeApiError, isConflict, isForbidden, isNotFound, wrapApiError } from '@knet/k8s';
import { parseClaims, serializeClaims, type Claims } from './plan';

/** The claims as read, with what a conditional write needs. */
export interface ClaimsRead {
  claims: Claims;
  /** The object's resourceVersion: a write conditional on it fails when someone wrote since. */
  version: string;
  /** The raw data, so keys this version does not know survive a write. */
  data: Readonly<Record<string, string>>;
  /** The object as read (its labels, annotations and owners are kept by a write). */
  object?: V1ConfigMap;
}

/**
 * The port to the release's claims record (the ConfigMap `<release>-connectors`): read, and write
 * only if nobody wrote since the read (optimistic concurrency; false = 409, read again).
 */
export interface ClaimsStore {
  /** `namespace/name`, for messages. */
  readonly where: string;
  read(): Promise<ClaimsRead>;
  write(claims: Claims, read: ClaimsRead): Promise<boolean>;
}

export const claimsConfigMapName = (release: string) => `${release}-connectors`;

/** The claims in a ConfigMap, with the chart's RBAC: get/update on that one name. */
export class KubeClaimsStore implements ClaimsStore {
  readonly where: string;
  private readonly api: CoreV1Api;

  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly name: string,
  ) {
    this.api = kc.makeApiClient(CoreV1Api);
    this.where = `ConfigMap ${namespace}/${name}`;
  }

  async read(): Promise<ClaimsRead> {
    let cm: V1ConfigMap;
    try {
      cm = await this.api.readNamespacedConfigMap({ namespace: this.namespace, name: this.name });
    } catch (e) {
      if (isNotFound(e)) cm = await this.create();
      else throw this.explain('read', e);
    }
    const data = cm.data ?? {};
    return {
      claims: parseClaims(data, this.where),
      version: cm.metadata?.resourceVersion ?? '',
      data,
      object: cm,
    };
  }

  async write(claims: Claims, read: ClaimsRead): Promise<boolean> {
    try {
      await this.api.replaceNamespacedConfigMap({
        namespace: this.namespace,
        name: this.name,
        body: {
          ...read.object,
          data: serializeClaims(claims, read.data),
          metadata: { ...read.object?.metadata, name: this.name, resourceVersion: read.version },
        },
      });
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw this.explain('update', e);
    }
  }

  private async create(): Promise<V1ConfigMap> {
    try {
      return await this.api.createNamespacedConfigMap({
        namespace: this.namespace,
        body: { metadata: { name: this.name, namespace: this.namespace } },
      });
    } catch (e) {
      if (decodeApiError(e).reason === 'AlreadyExists') {
        return this.api.readNamespacedConfigMap({ namespace: this.namespace, name: this.name });
      }
      if (isForbidden(e)) {
        throw new UsageError(
          `${this.where} does not exist and this service account may not create it: install with the connector chart (it creates the ConfigMap and the Role), or create it`,
          { cause: e },
        );
      }
      throw this.explain('create', e);
    }
  }

  private explain(verb: string, e: unknown): Error {
    if (isForbidden(e)) {
      return new UsageError(
        `${verb} ${this.where} is forbidden: ${decodeApiError(e).message} (the chart's Role grants get/update on this one ConfigMap)`,
        { cause: e },
      );
    }
    return wrapApiError(`${verb} ${this.where}`, e);
  }
}
