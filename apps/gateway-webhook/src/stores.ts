import type { KubeConfig } from '@kubernetes/client-node';
import {
  PATCH_CONTENT_TYPES,
  Secrets,
  isConflict,
  isNotFound,
  kubeRequest,
  secretData,
  wrapApiError,
} from '@knet/k8s';
import { CaConflict, type CaStore, type StoredCa, type WebhookConfigStore, type WebhookEntry } from './certs';

/**
 * The CA Secret through the API server. The chart creates it empty; the webhook only reads and
 * updates it (RBAC: get and update on that one name, no create).
 */
export class SecretCaStore implements CaStore {
  private readonly secrets: Secrets;

  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly name: string,
  ) {
    this.secrets = new Secrets(kc);
  }

  async read(): Promise<StoredCa> {
    const secret = await this.secrets.get(this.namespace, this.name);
    if (!secret) {
      throw new Error(
        `Secret ${this.namespace}/${this.name} (--ca-secret) does not exist: the chart creates it empty; ` +
          `create it with: kubectl -n ${this.namespace} create secret generic ${this.name}`,
      );
    }
    const data = secretData(secret);
    return {
      caPem: data['ca.crt']?.toString('utf8'),
      keyPem: data['ca.key']?.toString('utf8'),
      version: secret.metadata?.resourceVersion ?? '',
    };
  }

  async write(caPem: string, keyPem: string, version: string): Promise<void> {
    const current = await this.secrets.get(this.namespace, this.name);
    if (!current) throw new CaConflict(`Secret ${this.namespace}/${this.name} is gone`);
    if (current.metadata?.resourceVersion !== version) throw new CaConflict('the Secret changed');
    current.data = {
      ...current.data,
      'ca.crt': Buffer.from(caPem).toString('base64'),
      'ca.key': Buffer.from(keyPem).toString('base64'),
    };
    try {
      await this.secrets.update(this.namespace, current);
    } catch (e) {
      if (isConflict(e)) throw new CaConflict('the Secret changed');
      throw e;
    }
  }
}

interface Mwc {
  webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
}

/** The MutatingWebhookConfiguration (RBAC: get and patch on that one name). */
export class MwcStore implements WebhookConfigStore {
  private readonly path: string;

  constructor(
    private readonly kc: KubeConfig,
    private readonly name: string,
  ) {
    this.path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${encodeURIComponent(name)}`;
  }

  async webhooks(): Promise<WebhookEntry[]> {
    try {
      const mwc = await kubeRequest<Mwc>(this.kc, { method: 'GET', path: this.path, timeoutMs: 10_000 });
      return (mwc.webhooks ?? []).map((w) => ({ name: w.name, caBundle: w.clientConfig?.caBundle }));
    } catch (e) {
      if (isNotFound(e)) {
        throw new Error(
          `MutatingWebhookConfiguration ${this.name} (--webhook-configuration) does not exist: install the chart, or fix the flag`,
        );
      }
      throw wrapApiError(`get MutatingWebhookConfiguration ${this.name}`, e);
    }
  }

  async setCaBundle(index: number, name: string, caBundle: string): Promise<void> {
    // The test op makes the patch fail (422) instead of landing on another webhook if the list moved.
    const patch = [
      { op: 'test', path: `/webhooks/${index}/name`, value: name },
      { op: 'add', path: `/webhooks/${index}/clientConfig/caBundle`, value: caBundle },
    ];
    try {
      await kubeRequest(this.kc, {
        method: 'PATCH',
        path: this.path,
        body: patch,
        contentType: PATCH_CONTENT_TYPES.json,
        timeoutMs: 10_000,
      });
    } catch (e) {
      throw wrapApiError(`set caBundle of webhook ${name} in MutatingWebhookConfiguration ${this.name}`, e);
    }
  }
}
