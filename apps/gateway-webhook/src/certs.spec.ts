import { X509Certificate } from 'node:crypto';
import { createCertificateAuthority, isSignedBy, type CertificateAndKey } from '@knet/crypto';
import { RecordingLogger } from '@knet/runtime';
import {
  CaConflict,
  CertKeeper,
  type CaStore,
  type StoredCa,
  type WebhookConfigStore,
  type WebhookEntry,
} from './certs';

/** The CA Secret as the API server keeps it: a resourceVersion, conditional writes (409 → CaConflict). */
class FakeCaStore implements CaStore {
  data: { caPem?: string; keyPem?: string } = {};
  version = 1;
  writes = 0;
  /** Runs before a write lands (to let "another replica" write first). */
  beforeWrite?: () => Promise<void>;

  async read(): Promise<StoredCa> {
    return { ...this.data, version: String(this.version) };
  }

  async write(caPem: string, keyPem: string, version: string): Promise<void> {
    const hook = this.beforeWrite;
    this.beforeWrite = undefined;
    await hook?.();
    if (version !== String(this.version)) throw new CaConflict('the Secret changed');
    this.data = { caPem, keyPem };
    this.version++;
    this.writes++;
  }
}

class FakeWebhookConfig implements WebhookConfigStore {
  entries: WebhookEntry[] = [{ name: 'a.vpn.pod-gateway.knet.dev' }, { name: 'b.vpn.pod-gateway.knet.dev' }];
  patches = 0;

  async webhooks(): Promise<WebhookEntry[]> {
    return this.entries.map((e) => ({ ...e }));
  }

  async setCaBundle(index: number, name: string, caBundle: string): Promise<void> {
    const entry = this.entries[index];
    if (entry?.name !== name) throw new Error('422: test operation failed');
    entry.caBundle = caBundle;
    this.patches++;
  }
}

function keeper(ca: CaStore, webhookConfig?: WebhookConfigStore, now = () => Date.now()) {
  const issued: CertificateAndKey[] = [];
  const k = new CertKeeper({
    ca,
    webhookConfig,
    hosts: ['wh.vpn.svc', '127.0.0.1'],
    validityMs: 90 * 86_400_000,
    logger: new RecordingLogger(),
    onCertificate: (c) => issued.push(c),
    now,
  });
  return { k, issued };
}

const b64 = (s: string | undefined) => Buffer.from(s ?? '').toString('base64');

describe('CertKeeper', () => {
  it('writes a CA into the empty Secret, issues a serving certificate for the hosts, sets every caBundle', async () => {
    const ca = new FakeCaStore();
    const mwc = new FakeWebhookConfig();
    const { k, issued } = keeper(ca, mwc);
    expect(k.ready).toBe(false);
    await k.check();
    expect(ca.writes).toBe(1);
    expect(issued).toHaveLength(1);
    const cert = new X509Certificate(issued[0]?.certPem ?? '');
    expect(cert.subjectAltName).toBe('DNS:wh.vpn.svc, IP Address:127.0.0.1');
    expect(await isSignedBy(issued[0]?.certPem ?? '', ca.data.caPem ?? '')).toBe(true);
    expect(mwc.entries.map((e) => e.caBundle)).toEqual([b64(ca.data.caPem), b64(ca.data.caPem)]);
    expect(k.ready).toBe(true);
  });

  it('uses the CA another replica wrote first (conditional write lost) and issues from it', async () => {
    const ca = new FakeCaStore();
    const other = await createCertificateAuthority('other-replica');
    ca.beforeWrite = async () => {
      ca.data = { caPem: other.certPem, keyPem: other.keyPem };
      ca.version++;
    };
    const { k, issued } = keeper(ca);
    await k.check();
    expect(ca.data.caPem).toBe(other.certPem);
    expect(k.caPem).toBe(other.certPem);
    expect(await isSignedBy(issued[0]?.certPem ?? '', other.certPem)).toBe(true);
  });

  it('does nothing when all is in place, repairs a cleared caBundle, renews after two thirds of the validity', async () => {
    let now = Date.now();
    const ca = new FakeCaStore();
    const mwc = new FakeWebhookConfig();
    const { k, issued } = keeper(ca, mwc, () => now);
    await k.check();
    await k.check();
    expect([issued.length, mwc.patches, ca.writes]).toEqual([1, 2, 1]);
    // helm upgrade or a hand edit cleared one caBundle: the next check puts it back.
    delete mwc.entries[1]?.caBundle;
    await k.check();
    expect(mwc.patches).toBe(3);
    expect(issued).toHaveLength(1);
    now += 61 * 86_400_000;
    await k.check();
    expect(issued).toHaveLength(2);
    expect(ca.writes).toBe(1);
  });

  it('follows a rotated CA: emptied Secret → new CA, new certificate, new caBundle', async () => {
    const ca = new FakeCaStore();
    const mwc = new FakeWebhookConfig();
    const { k, issued } = keeper(ca, mwc);
    await k.check();
    const first = ca.data.caPem;
    ca.data = {};
    ca.version++;
    await k.check();
    expect(ca.data.caPem).not.toBe(first);
    expect(issued).toHaveLength(2);
    expect(await isSignedBy(issued[1]?.certPem ?? '', ca.data.caPem ?? '')).toBe(true);
    expect(mwc.entries[0]?.caBundle).toBe(b64(ca.data.caPem));
  });

  it('replaces a Secret that holds no usable CA, and is not ready while the configuration has no webhooks', async () => {
    const ca = new FakeCaStore();
    ca.data = { caPem: 'garbage', keyPem: 'garbage' };
    const mwc = new FakeWebhookConfig();
    mwc.entries = [];
    const { k } = keeper(ca, mwc);
    await k.check();
    expect(ca.data.caPem).toContain('BEGIN CERTIFICATE');
    expect(k.ready).toBe(false);
  });

  it('gives up with a clear error when the Secret keeps changing under it', async () => {
    const ca = new FakeCaStore();
    ca.write = async () => {
      throw new CaConflict('the Secret changed');
    };
    await expect(keeper(ca).k.check()).rejects.toThrow(/kept changing .*5 conflicts/);
  });
});
