import type { CertificateAndKey } from '@knet/crypto';
import { loadKubeConfig } from '@knet/k8s';
import { errorMessage, sleep, type Logger } from '@knet/runtime';
import { CertKeeper } from './certs';
import { MwcStore, SecretCaStore } from './stores';
import { CertFiles } from './tls-files';

/** Where the serving certificate comes from, and how it is kept current. */
export interface TlsSource {
  /** The first certificate (throws when there is none: the webhook cannot serve). */
  start(): Promise<CertificateAndKey>;
  /** One periodic pass (renewal, changed files, caBundle); a new certificate goes to `onCertificate`. */
  check(): Promise<void>;
  /** Readiness: a certificate is served and the caBundle (when kept) trusts it. */
  readonly ready: boolean;
}

export interface TlsSourceOptions {
  tlsCertFile?: string | undefined;
  tlsKeyFile?: string | undefined;
  caSecret?: string | undefined;
  namespace?: string | undefined;
  webhookConfiguration?: string | undefined;
  kubeconfig?: string | undefined;
  tlsHosts: string[];
  certValidity: number;
}

/**
 * Files when --tls-cert-file-path is given, else a CA in --ca-secret with the caBundle of
 * --webhook-configuration kept (options.ts makes sure one of the two is configured).
 */
export function createTlsSource(
  opts: TlsSourceOptions,
  logger: Logger,
  onCertificate: (cert: CertificateAndKey) => void,
): TlsSource {
  if (opts.tlsCertFile !== undefined && opts.tlsKeyFile !== undefined) {
    const files = new CertFiles(opts.tlsCertFile, opts.tlsKeyFile, logger, onCertificate);
    return { start: async () => files.read(), check: async () => files.check(), ready: true };
  }
  const { kc } = loadKubeConfig({ kubeconfig: opts.kubeconfig });
  let first: CertificateAndKey | undefined;
  const keeper = new CertKeeper({
    ca: new SecretCaStore(kc, opts.namespace ?? '', opts.caSecret ?? ''),
    webhookConfig: opts.webhookConfiguration ? new MwcStore(kc, opts.webhookConfiguration) : undefined,
    hosts: opts.tlsHosts,
    validityMs: opts.certValidity,
    logger,
    onCertificate: (cert) => {
      if (first === undefined) first = cert;
      else onCertificate(cert);
    },
  });
  return {
    async start() {
      await keeper.check();
      if (!first) throw new Error('no serving certificate was issued');
      return first;
    },
    check: () => keeper.check(),
    get ready() {
      return keeper.ready;
    },
  };
}

/**
 * Runs `check` every `intervalMs` until `signal` aborts: a failed check is logged (once until it
 * passes again) and counted, and the certificate being served stays.
 */
export async function keepChecking(opts: {
  check: () => Promise<void>;
  intervalMs: number;
  signal: AbortSignal;
  logger: Logger;
  onResult: (result: 'ok' | 'error') => void;
}): Promise<void> {
  let failing = false;
  while (await sleep(opts.intervalMs, opts.signal)) {
    try {
      await opts.check();
      opts.onResult('ok');
      if (failing) opts.logger.info({}, 'certificate check passing again');
      failing = false;
    } catch (e) {
      opts.onResult('error');
      if (!failing) opts.logger.error({ err: errorMessage(e) }, 'certificate check failed (retrying)');
      failing = true;
    }
  }
}
