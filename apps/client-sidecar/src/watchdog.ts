import { DhcpNakError, type DhcpLease } from '@knet/dhcp';
import {
  VXLAN_DEVICE,
  connectToGateway,
  dhcpClientFor,
  gatewayAnswers,
  type ClientContext,
  type ClientPlan,
  type ClientFacts,
  type GatewayConnection,
} from '@knet/podgw';
import { errorMessage, sleep } from '@knet/runtime';

export interface WatchdogOptions {
  /** Time between gateway checks. */
  intervalMs: number;
  /** Time between reconnection attempts while the gateway is away. */
  retryMs: number;
  /** Called when routing through the gateway starts or stops working. */
  onRouted?: (routed: boolean) => void;
  /** Called after each successful reconnection with the time it took. */
  onRecovered?: (ms: number, conn: GatewayConnection) => void;
}

/**
 * Keeps the pod routed through the gateway: checks it every `intervalMs` (ICMP over vxlan0); after
 * CONNECTION_RETRY_COUNT failed checks it reconnects — resolves the gateway again (its pod IP
 * changes when it is recreated), points the route and the flood entry at the new IP and takes the
 * lease again (the gateway keeps leases in a file, so the address stays) — retrying every
 * `retryMs` until it works. Renews the DHCP lease at T1, rebinds at T2, starts over on a NAK.
 */
export class Watchdog {
  private conn: GatewayConnection | undefined;
  private routed = false;

  constructor(
    private readonly ctx: ClientContext,
    private readonly plan: ClientPlan,
    private readonly facts: ClientFacts,
    private readonly options: WatchdogOptions,
  ) {}

  get connection(): GatewayConnection | undefined {
    return this.conn;
  }

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await this.reconnect(signal, 'start');
    let failures = 0;
    while (await sleep(this.options.intervalMs, signal)) {
      const ok = await gatewayAnswers(this.ctx.net, this.plan.gatewayAddress);
      if (ok) {
        failures = 0;
        this.setRouted(true);
        await this.maintainLease(signal);
        continue;
      }
      failures++;
      this.ctx.logger.warn(
        { gateway: this.plan.gatewayAddress, failures, of: this.ctx.settings.connectionRetryCount },
        'gateway did not answer',
      );
      if (failures >= this.ctx.settings.connectionRetryCount) {
        this.setRouted(false);
        await this.reconnect(signal, 'gateway lost');
        failures = 0;
      }
    }
  }

  /** Releases a dynamic lease (on shutdown), so the address is free at once. Best effort. */
  async release(): Promise<void> {
    const lease = this.conn?.lease;
    if (!lease) return;
    try {
      await (await dhcpClientFor(this.ctx)).release(lease);
      this.ctx.logger.info({ address: lease.address }, 'released the DHCP lease');
    } catch (e) {
      this.ctx.logger.warn({ err: errorMessage(e) }, 'could not release the DHCP lease');
    }
  }

  private setRouted(routed: boolean): void {
    if (routed === this.routed) return;
    this.routed = routed;
    this.options.onRouted?.(routed);
  }

  private async reconnect(signal: AbortSignal, why: string): Promise<void> {
    const started = performance.now();
    const before = this.conn;
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        const requestedIp = this.conn?.address.split('/')[0];
        const conn = await connectToGateway(this.ctx, this.plan, this.facts, {
          signal,
          ...(requestedIp ? { requestedIp } : {}),
        });
        this.conn = conn;
        const ms = performance.now() - started;
        for (const c of conn.changes) this.ctx.logger.info({ change: c }, 'changed');
        this.ctx.logger.info(
          {
            why,
            attempts: attempt,
            ms: Math.round(ms),
            gatewayIp: conn.gatewayIp,
            previousGatewayIp: before?.gatewayIp,
            address: conn.address,
          },
          before && before.gatewayIp !== conn.gatewayIp
            ? 'gateway moved: routed through its new pod'
            : 'routed through the gateway',
        );
        this.setRouted(true);
        this.options.onRecovered?.(ms, conn);
        return;
      } catch (e) {
        if (signal.aborted) return;
        this.ctx.logger.warn(
          { why, attempt, err: errorMessage(e) },
          'cannot reach the gateway yet; retrying',
        );
        await sleep(this.options.retryMs, signal);
      }
    }
  }

  /** RENEWING at T1, REBINDING at T2, a new lease after expiry or a NAK. */
  private async maintainLease(signal: AbortSignal): Promise<void> {
    const lease = this.conn?.lease;
    if (!lease) return;
    const age = (Date.now() - lease.obtainedAt) / 1000;
    if (age < lease.t1) return;
    const mode = age >= lease.leaseTimeSec ? 'expired' : age >= lease.t2 ? 'rebind' : 'renew';
    try {
      if (mode === 'expired')
        throw new DhcpNakError(VXLAN_DEVICE, 'lease expired before it could be renewed');
      const client = await dhcpClientFor(this.ctx);
      const fresh: DhcpLease =
        mode === 'renew' ? await client.renew(lease, { signal }) : await client.rebind(lease, { signal });
      this.conn = { ...(this.conn as GatewayConnection), lease: fresh };
      this.ctx.logger.info(
        { address: fresh.address, leaseSeconds: fresh.leaseTimeSec, mode },
        'lease extended',
      );
    } catch (e) {
      if (e instanceof DhcpNakError) {
        this.ctx.logger.warn({ err: e.message }, 'lease lost; taking a new one');
        this.setRouted(false);
        await this.reconnect(signal, 'lease lost');
      } else {
        // Not fatal before T2/expiry: the next check tries again.
        this.ctx.logger.warn({ err: errorMessage(e), mode }, 'could not extend the lease yet');
      }
    }
  }
}
