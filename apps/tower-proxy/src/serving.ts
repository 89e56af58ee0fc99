import type { ClusterController } from './controller';
import type { ClusterListeners } from './listeners';
import type { TunnelServer } from './tunnel-server';

export interface ServingParts {
  controller: Pick<ClusterController, 'setLeading'>;
  tunnel: Pick<TunnelServer, 'closeAll'>;
  listeners: Pick<ClusterListeners, 'closeAll'>;
}

/**
 * Whether this replica serves agents and clusters: from `start()` (at once without
 * --leader-elect, else once it holds the Lease) until it loses the Lease or shuts down. Losing
 * the Lease stops serving at once — the controller stops writing, agent sessions and listeners
 * close — and then `onLost` (main: SIGTERM to itself, so the pod restarts clean as a follower).
 */
export class Serving {
  private on = false;

  constructor(
    private readonly parts: ServingParts,
    private readonly onLost: () => void,
  ) {}

  /** The readiness check and the tunnel's accept gate. */
  get serving(): boolean {
    return this.on;
  }

  start(): void {
    this.on = true;
    this.parts.controller.setLeading(true);
  }

  lost(): void {
    this.on = false;
    this.parts.controller.setLeading(false);
    this.parts.tunnel.closeAll('lost leadership');
    void this.parts.listeners.closeAll();
    this.onLost();
  }

  /** Shutdown: stop accepting; the parts are closed by their own shutdown handlers. */
  stop(): void {
    this.on = false;
  }
}
