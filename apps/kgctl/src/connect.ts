import type { RouteSpec, SetResult, StateDriver, WireGuardDeviceConfig } from '@knet/host-net';
import { errorMessage, shutdownFollows, sleep, type Logger } from '@knet/runtime';
import type { ClusterView } from '@knet/kilo';
import { clusterView, type KiloApi } from './cluster';
import { connectPeer, planConnect, type ConnectInput } from './connect-plan';

/**
 * The loop of `kgctl connect` (Kilo's `runConnect`): make sure the Peer exists, bring the
 * interface up with its address, then sync device and routes every resync period and on every
 * Node or Peer change; on the signal, clean up what it made.
 */

/** What the loop drives: the WireGuard device, its addresses, the routes (host-net drivers or fakes). */
export interface ConnectDrivers {
  device: StateDriver<WireGuardDeviceConfig>;
  addresses: { set(desired: readonly string[]): Promise<SetResult>; cleanup(): Promise<SetResult> };
  routes: { set(desired: readonly RouteSpec[]): Promise<SetResult>; cleanup(): Promise<SetResult> };
}

export interface ConnectOptions extends Omit<ConnectInput, 'view' | 'resolve'> {
  publicKey: string;
  persistentKeepalive: number;
  topologyLabel: string;
  resyncPeriodMs: number;
  /** Remove routes, interface and (if this run created it) the Peer on exit. */
  cleanUp: boolean;
}

export interface ConnectDeps {
  api: KiloApi;
  drivers: ConnectDrivers;
  signal: AbortSignal;
  logger: Logger;
  /** Unix seconds (default: the clock). */
  now?: () => number;
  /** Resolves a DNS endpoint name (default: none resolved, such endpoints fail the sync). */
  resolve?: (name: string) => Promise<string | undefined>;
  /** Called after each sync (tests, metrics). */
  onSync?: (result: { ok: boolean; error?: string }) => void;
  /**
   * How long a failed sync waits for a shutdown signal before it counts as an error
   * (default `SHUTDOWN_GRACE_MS` of `@knet/runtime`).
   */
  shutdownGraceMs?: number;
}

async function resolveNames(
  view: ClusterView,
  resolve: ConnectDeps['resolve'],
): Promise<Record<string, string>> {
  const names = new Set<string>();
  for (const n of view.nodes) if (n.endpoint?.dns && n.endpoint.ip === undefined) names.add(n.endpoint.dns);
  for (const p of view.peers) if (p.endpoint?.dns && p.endpoint.ip === undefined) names.add(p.endpoint.dns);
  const out: Record<string, string> = {};
  if (!resolve) return out;
  for (const name of names) {
    const ip = await resolve(name);
    if (ip !== undefined) out[name] = ip;
  }
  return out;
}

/** One pass of Kilo's `sync`: read the cluster, plan, apply device then routes. */
export async function syncOnce(opts: ConnectOptions, deps: ConnectDeps): Promise<void> {
  const [nodes, peers] = await Promise.all([deps.api.listNodes(), deps.api.listPeers()]);
  const now = deps.now?.() ?? Math.floor(Date.now() / 1000);
  const view = clusterView(nodes, peers, opts.topologyLabel, now);
  const plan = planConnect({ ...opts, view, resolve: await resolveNames(view, deps.resolve) });
  await deps.drivers.device.set(plan.device);
  await deps.drivers.addresses.set(plan.addresses);
  await deps.drivers.routes.set(plan.routes);
}

/**
 * Runs `connect` until `deps.signal` aborts. Creates the Peer when none of that name exists (and
 * then, with `cleanUp`, deletes it on exit); an existing Peer is used as it is. Sync failures are
 * logged and retried at the next period or change, as in Kilo (one that fails after the signal is
 * not: the shutdown interrupted it); failing to create the Peer or the interface is fatal.
 */
export async function runConnect(opts: ConnectOptions, deps: ConnectDeps): Promise<void> {
  const { api, drivers, logger, signal } = deps;
  let created = false;
  if (!(await api.getPeer(opts.peerName))) {
    await api.createPeer(
      connectPeer({
        name: opts.peerName,
        allowedIP: opts.allowedIP,
        persistentKeepalive: opts.persistentKeepalive,
        publicKey: opts.publicKey,
      }),
    );
    created = true;
    logger.info({ peer: opts.peerName }, 'created peer');
  }
  let wake: (() => void) | undefined;
  const stopWatch = api.watch(() => wake?.());
  try {
    await drivers.device.set({
      privateKey: opts.privateKey,
      listenPort: opts.port,
      peers: [],
      mtu: opts.mtu,
      up: true,
    });
    await drivers.addresses.set([opts.allowedIP]);
    logger.info({ interface: opts.interface, address: opts.allowedIP }, 'WireGuard interface up');
    while (!signal.aborted) {
      try {
        await syncOnce(opts, deps);
        deps.onSync?.({ ok: true });
      } catch (e) {
        // A sync that fails from the shutdown itself (its commands got the same signal) is no error.
        if (await shutdownFollows(signal, deps.shutdownGraceMs)) {
          logger.debug({ err: errorMessage(e) }, 'sync interrupted by shutdown');
          break;
        }
        logger.error({ err: errorMessage(e) }, 'failed to sync');
        deps.onSync?.({ ok: false, error: errorMessage(e) });
      }
      const tick = new AbortController();
      wake = () => tick.abort();
      await sleep(opts.resyncPeriodMs, AbortSignal.any([signal, tick.signal]));
      wake = undefined;
    }
  } finally {
    stopWatch();
    if (opts.cleanUp) await cleanUp(opts, deps, created);
  }
}

async function cleanUp(opts: ConnectOptions, deps: ConnectDeps, created: boolean): Promise<void> {
  const { drivers, logger, api } = deps;
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      logger.error({ err: errorMessage(e) }, `failed to ${what}`);
    }
  };
  await step('clean up routes', () => drivers.routes.cleanup());
  await step('remove the WireGuard interface', () => drivers.device.cleanup());
  if (created) {
    await step('delete peer', async () => {
      await api.deletePeer(opts.peerName, AbortSignal.timeout(10_000));
      logger.info({ peer: opts.peerName }, 'deleted peer');
    });
  }
}
