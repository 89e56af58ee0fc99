import { readFileSync, statSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { CertificateAndKey } from '@knet/crypto';
import { errorMessage, type Logger } from '@knet/runtime';

/**
 * A serving certificate from files (--tls-cert-file-path, --tls-key-file-path), e.g. a cert-manager
 * Secret mounted into the pod: `check()` re-reads them when either changed, and hands a new pair
 * that belongs together to `onCertificate`; a half-written or mismatched pair is logged and the
 * old one kept.
 */
export class CertFiles {
  private stamp = '';

  constructor(
    private readonly certPath: string,
    private readonly keyPath: string,
    private readonly logger: Logger,
    private readonly onCertificate: (cert: CertificateAndKey) => void,
  ) {}

  /** Reads the pair; throws with what is wrong (at start: exit 1). */
  read(): CertificateAndKey {
    const certPem = readFileSync(this.certPath, 'utf8');
    const keyPem = readFileSync(this.keyPath, 'utf8');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch (e) {
      throw new Error(`--tls-cert-file-path ${this.certPath} is not a PEM certificate: ${errorMessage(e)}`);
    }
    let matches: boolean;
    try {
      matches = cert.checkPrivateKey(createPrivateKey(keyPem));
    } catch (e) {
      throw new Error(`--tls-key-file-path ${this.keyPath} is not a PEM private key: ${errorMessage(e)}`);
    }
    if (!matches) throw new Error(`--tls-key-file-path ${this.keyPath} is not the key of ${this.certPath}`);
    this.stamp = this.currentStamp();
    return { certPem, keyPem };
  }

  check(): void {
    if (this.currentStamp() === this.stamp) return;
    try {
      const pair = this.read();
      this.onCertificate(pair);
      this.logger.info({ cert: this.certPath }, 'serving certificate re-read from its files');
    } catch (e) {
      this.logger.error(
        { err: errorMessage(e) },
        'serving certificate files changed but are not usable: keeping the old one',
      );
    }
  }

  private currentStamp(): string {
    return [this.certPath, this.keyPath]
      .map((p) => {
        const st = statSync(p, { throwIfNoEntry: false });
        return st ? `${st.mtimeMs}:${st.size}:${st.ino}` : 'missing';
      })
      .join('|');
  }
}
