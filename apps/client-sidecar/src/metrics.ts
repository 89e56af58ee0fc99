import { Counter, Gauge, Histogram, type Registry } from '@knet/runtime';
import type { WatchdogOptions } from './watchdog';

/** client-sidecar's metrics, fed by the watchdog's hooks; `routed` is the readiness check. */
export interface ClientMetrics extends Required<Pick<WatchdogOptions, 'onRouted' | 'onRecovered'>> {
  /** True while the pod is routed through a gateway that answers. */
  readonly routed: boolean;
}

export function createClientMetrics(registry: Registry): ClientMetrics {
  const registers = [registry];
  const routedGauge = new Gauge({
    name: 'podgw_client_routed',
    help: '1 while this pod is routed through a gateway that answers',
    registers,
  });
  const reconnects = new Counter({
    name: 'podgw_client_reconnects_total',
    help: 'tunnel rebuilds (start, gateway lost, lease lost)',
    registers,
  });
  const recovery = new Histogram({
    name: 'podgw_client_recovery_seconds',
    help: 'time from deciding to rebuild to being routed again',
    buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 30, 60],
    registers,
  });
  let routed = false;
  return {
    get routed() {
      return routed;
    },
    onRouted: (r) => {
      routed = r;
      routedGauge.set(r ? 1 : 0);
    },
    onRecovered: (ms) => {
      reconnects.inc();
      recovery.observe(ms / 1000);
    },
  };
}
