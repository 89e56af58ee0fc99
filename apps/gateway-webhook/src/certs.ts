import {
  createCertificateAuthority,
  issueCertificate,
  loadCertificateAuthority,
  type CertificateAndKey,
  type CertificateAuthority,
} from '@knet/crypto';
import { errorMessage, type Logger } from '@knet/runtime';

/** What the CA Secret holds; `version` is its resourceVersion (the update is conditional on it). */
export interface StoredCa {
  caPem?: string | undefined;
  keyPem?: string | undefined;
  version: string;
}

/** The webhook's CA Secret (a port: the real one is `SecretCaStore`, tests use a fake). */
export interface CaStore {
  read(): Promise<StoredCa>;
  /** Writes the CA if the Secret is still at `version`; throws `CaConflict` when someone wrote first. */
  write(caPem: string, keyPem: string, version: string): Promise<void>;
}

export class CaConflict extends Error {}

/** One webhook of the MutatingWebhookConfiguration, as far as its caBundle goes. */
export interface WebhookEntry {
  name: string;
  /** base64 PEM, as the API stores it; undefined when unset. */
  caBundle?: string | undefined;
}

/** The MutatingWebhookConfiguration whose caBundle the webhook keeps (port; real: `MwcStore`). */
export interface WebhookConfigStore {
  webhooks(): Promise<WebhookEntry[]>;
  /** Sets webhook `index`'s caBundle, if the entry at that index still has `name`. */
  setCaBundle(index: number, name: string, caBundle: string): Promise<void>;
}

export interface CertKeeperOptions {
  ca: CaStore;
  /** Unset: nobody's caBundle is kept (the user sets it from the Secret). */
  webhookConfig?: WebhookConfigStore | undefined;
  hosts: string[];
  validityMs: number;
  logger: Logger;
  /** Called with every new serving certificate (the server swaps it in). */
  onCertificate: (cert: CertificateAndKey) => void;
  now?: () => number;
}

const CA_VALIDITY_DAYS = 3650;
const CA_NAME = 'gateway-webhook-ca';

/**
 * Keeps the webhook's TLS in place without a chart-side CA or cert-manager:
 * - the CA lives in a Secret (`ca.crt`, `ca.key`) that all replicas share: the first to find it
 *   empty writes a new one (a conditional update: on a conflict it reads the winner's);
 * - each replica issues its own serving certificate from it, for `hosts`, and serves a new one
 *   after two thirds of its validity, or at once when the Secret holds another CA (rotation:
 *   empty the Secret's data, and every replica follows within one check);
 * - every webhook of the MutatingWebhookConfiguration gets the CA as caBundle, re-checked each
 *   time (`helm upgrade` or a hand edit may clear it).
 * `check()` does one pass; the caller runs it at start and then periodically.
 */
export class CertKeeper {
  private ca: CertificateAuthority | undefined;
  private issuedAt = 0;
  private bundleOk = false;

  constructor(private readonly opts: CertKeeperOptions) {}

  /** True once a certificate is served and (if kept) the caBundle is the CA. */
  get ready(): boolean {
    return this.ca !== undefined && (this.opts.webhookConfig === undefined || this.bundleOk);
  }

  /** The CA PEM in use (tests, status). */
  get caPem(): string | undefined {
    return this.ca?.certPem;
  }

  async check(): Promise<void> {
    const ca = await this.currentCa();
    const now = (this.opts.now ?? Date.now)();
    if (ca !== this.ca || now - this.issuedAt >= (this.opts.validityMs * 2) / 3) {
      const renewed = this.ca !== undefined;
      this.ca = ca;
      const leaf = await issueCertificate(ca, {
        commonName: this.opts.hosts[0] ?? 'gateway-webhook',
        dnsNames: this.opts.hosts.filter((h) => !isIp(h)),
        ipAddresses: this.opts.hosts.filter(isIp),
        usage: 'server',
        validityDays: this.opts.validityMs / 86_400_000,
      });
      this.issuedAt = now;
      this.opts.onCertificate(leaf);
      this.opts.logger.info({ hosts: this.opts.hosts, renewed }, 'serving certificate issued');
    }
    if (this.opts.webhookConfig) this.bundleOk = await this.keepCaBundle(this.opts.webhookConfig, ca.certPem);
  }

  /** The CA in the Secret, written first if the Secret is empty (or holds something unusable). */
  private async currentCa(): Promise<CertificateAuthority> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await this.opts.ca.read();
      if (stored.caPem && stored.keyPem) {
        if (this.ca && this.ca.certPem === stored.caPem) return this.ca;
        try {
          return await loadCertificateAuthority(stored.caPem, stored.keyPem);
        } catch (e) {
          this.opts.logger.warn(
            { err: errorMessage(e) },
            'the CA Secret holds no usable CA: writing a new one',
          );
        }
      }
      const ca = await createCertificateAuthority(CA_NAME, CA_VALIDITY_DAYS);
      try {
        await this.opts.ca.write(ca.certPem, ca.keyPem, stored.version);
        this.opts.logger.info({}, 'new webhook CA written to its Secret');
        return ca;
      } catch (e) {
        if (!(e instanceof CaConflict)) throw e;
        // Another replica wrote first: use its CA.
      }
    }
    throw new Error('the CA Secret kept changing while it was being written (5 conflicts in a row)');
  }

  private async keepCaBundle(store: WebhookConfigStore, caPem: string): Promise<boolean> {
    const want = Buffer.from(caPem).toString('base64');
    const webhooks = await store.webhooks();
    if (webhooks.length === 0) {
      this.opts.logger.warn({}, 'the MutatingWebhookConfiguration has no webhooks: nothing to trust the CA');
      return false;
    }
    for (const [index, w] of webhooks.entries()) {
      if (w.caBundle === want) continue;
      await store.setCaBundle(index, w.name, want);
      this.opts.logger.info({ webhook: w.name, was: w.caBundle ? 'another CA' : 'unset' }, 'caBundle set');
    }
    return true;
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
