/**
 * One listing of a cluster's devices serves every machine that waits on it. CAPEM polls
 * `GET /devices/{id}` per machine every 10 s while devices provision; here the machines of a
 * cluster share `GET /projects/{id}/devices?tag=capp:cluster-id:<cluster>` (every page followed):
 * a listing younger than the caller's `maxAgeMs` is reused, and callers that arrive while one is
 * in flight wait for it instead of starting their own. With 100 machines provisioning at once
 * that is one paginated listing per poll interval instead of 100 GETs.
 */
import { clusterTag } from '@knet/capi';
import type { Device } from '@knet/metal';
import type { MetalPort } from './metal-port';

interface Snapshot {
  at: number;
  devices: Device[];
}

export class ClusterDeviceCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly inflight = new Map<string, Promise<Snapshot>>();

  constructor(
    private readonly metal: MetalPort,
    private readonly opts: { perPage?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /**
   * The cluster's devices as listed at most `maxAgeMs` ago (0: a listing that starts after this
   * call, possibly shared with concurrent callers).
   */
  async devices(projectId: string, cluster: string, maxAgeMs: number): Promise<Device[]> {
    const key = `${projectId}/${cluster}`;
    const asked = this.now();
    const snap = this.snapshots.get(key);
    if (snap && maxAgeMs > 0 && asked - snap.at <= maxAgeMs) return snap.devices;
    const running = this.inflight.get(key);
    // A listing already in flight started before this call; it only serves maxAge > 0 callers.
    if (running && maxAgeMs > 0) return (await running).devices;
    if (running) await running.catch(() => undefined);
    const again = this.inflight.get(key);
    if (again) return (await again).devices;
    const p = this.list(projectId, cluster).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    const s = await p;
    this.snapshots.set(key, s);
    return s.devices;
  }

  private async list(projectId: string, cluster: string): Promise<Snapshot> {
    const at = this.now();
    const devices = await this.metal.listProjectDevices(projectId, {
      tag: clusterTag(cluster),
      per_page: this.opts.perPage ?? 100,
    });
    return { at, devices };
  }

  /** Drops what is known of a cluster (after a create or delete, the next look lists again). */
  invalidate(projectId: string, cluster: string): void {
    this.snapshots.delete(`${projectId}/${cluster}`);
  }
}
