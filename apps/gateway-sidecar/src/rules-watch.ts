// The gateway's iptables rules (the kill switch, NAT, port forwards) re-checked while the gateway
// runs: VPN containers (wg-quick's PostUp/PostDown, OpenVPN up/down scripts, gluetun's firewall)
// may flush or reorder FORWARD and OUTPUT, and gateway-init ran only once, at pod start.
import { Counter, Gauge, errorMessage, type Logger, type Registry } from '@knet/runtime';

export interface RulesWatchOptions {
  /** Compares the live rules with the plan and repairs them; returns what it repaired. */
  reconcile: () => Promise<string[]>;
  /** Time between two checks (ms). */
  intervalMs: number;
  logger: Logger;
  registry: Registry;
}

/**
 * Runs `reconcile` now and every `intervalMs`. A repair is logged as a warning with what had
 * drifted and counted in `knet_podgw_rules_repairs_total`; a failed check is logged, counted in
 * `knet_podgw_rules_check_failures_total` and makes `ok` false (the pod's readiness) until a check
 * succeeds. `knet_podgw_rules_ok` is 1 while the rules are as planned.
 */
export class RulesWatch {
  private ok_ = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly repairs: Counter<string>;
  private readonly failures: Counter<string>;

  constructor(private readonly o: RulesWatchOptions) {
    this.repairs = new Counter({
      name: 'knet_podgw_rules_repairs_total',
      help: "Checks that found the gateway's iptables rules changed (flushed, reordered, removed) and restored them",
      registers: [o.registry],
    });
    this.failures = new Counter({
      name: 'knet_podgw_rules_check_failures_total',
      help: "Checks of the gateway's iptables rules that failed (the pod is not ready until one succeeds)",
      registers: [o.registry],
    });
    const ok = () => this.ok_;
    new Gauge({
      name: 'knet_podgw_rules_ok',
      help: "1 while the gateway's iptables rules (kill switch, NAT) are as planned, 0 after a failed check",
      registers: [o.registry],
      collect() {
        this.set(ok() ? 1 : 0);
      },
    });
  }

  /** The rules were as planned (or restored) at the last check. */
  get ok(): boolean {
    return this.ok_;
  }

  /** Checks once, then every `intervalMs` until stop(). */
  async start(): Promise<void> {
    await this.check();
    this.timer ??= setInterval(() => void this.check(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check (a call while one runs waits for it); never rejects. */
  check(): Promise<void> {
    this.running ??= this.checkOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async checkOnce(): Promise<void> {
    try {
      const repaired = await this.o.reconcile();
      if (repaired.length > 0) {
        this.repairs.inc();
        this.o.logger.warn(
          { repaired },
          "the gateway's iptables rules had changed (a VPN container's scripts?): restored",
        );
      }
      if (!this.ok_) this.o.logger.info("the gateway's iptables rules are as planned");
      this.ok_ = true;
    } catch (err) {
      this.failures.inc();
      // Logged on every failure: a kill switch that cannot be restored is worth the noise.
      this.o.logger.error(
        { err: errorMessage(err) },
        "could not check or restore the gateway's iptables rules: not ready until they are",
      );
      this.ok_ = false;
    }
  }
}
