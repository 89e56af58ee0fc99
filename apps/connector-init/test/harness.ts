import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConnectorRelease,
  ControlPlane,
  FakeTwingateTenant,
  appBundle,
  type ConnectorPod,
  type FakeTenantOptions,
} from '@knet/testing';

export const NS = 'connectors';
export type Pod = ConnectorPod;

/**
 * The real API server, a fake tenant and connector-init as it ships (its bundle); releases of the
 * connector chart installed for real, whose pods are processes (see `ConnectorRelease`).
 */
export class ConnectorBed {
  private readonly releases = new Map<string, Promise<ConnectorRelease>>();

  private constructor(
    readonly cp: ControlPlane,
    readonly tenant: FakeTwingateTenant,
    readonly bundle: string,
    readonly dir: string,
  ) {}

  static async start(tenant: FakeTenantOptions = {}): Promise<ConnectorBed> {
    const dir = mkdtempSync(join(tmpdir(), 'knet-connector-bed-'));
    const [cp, t, bundle] = await Promise.allSettled([
      ControlPlane.start({ controllerManager: false }),
      FakeTwingateTenant.start(tenant),
      appBundle('connector-init'),
    ] as const);
    if (cp.status === 'rejected' || t.status === 'rejected' || bundle.status === 'rejected') {
      if (cp.status === 'fulfilled') await cp.value.stop();
      if (t.status === 'fulfilled') await t.value.stop();
      rmSync(dir, { recursive: true, force: true });
      throw [cp, t, bundle].flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))[0];
    }
    return new ConnectorBed(cp.value, t.value, bundle.value, dir);
  }

  /** The release (installed once, on first use) with `replicas`, on `network`, with `apiKey` in its Secret. */
  release(
    name: string,
    o: { replicas?: number; network?: string; apiKey?: string; values?: Record<string, unknown> } = {},
  ): Promise<ConnectorRelease> {
    let r = this.releases.get(name);
    if (!r) {
      r = ConnectorRelease.install({
        cp: this.cp,
        tenant: this.tenant,
        bundle: this.bundle,
        release: name,
        namespace: NS,
        network: o.network ?? 'lab',
        replicas: o.replicas ?? 5,
        ...(o.apiKey ? { apiKey: o.apiKey } : {}),
        dir: this.dir,
        values: { init: { reuseMinAge: '0s' }, ...o.values },
      });
      this.releases.set(name, r);
    }
    return r;
  }

  async stop(): Promise<void> {
    for (const r of this.releases.values())
      await (await r.catch(() => undefined))?.stopPods().catch(() => undefined);
    await this.tenant.stop().catch(() => undefined);
    await this.cp.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
