import { Counter, Gauge, type Registry } from '@knet/runtime';

/** capi-packet-manager's metrics, registered on the app's registry (served on /metrics by `app.serve()`). */
export interface AppMetrics {
  reconciled(result: 'ok' | 'error'): void;
  /** True once a reconcile succeeded (the readiness check). */
  readonly ready: boolean;
}

export function createAppMetrics(registry: Registry): AppMetrics {
  const registers = [registry];
  const reconciles = new Counter({
    name: 'capi_packet_manager_reconciles_total',
    help: 'reconcile passes, by result',
    labelNames: ['result'],
    registers,
  });
  const last = new Gauge({
    name: 'capi_packet_manager_last_reconcile_ok',
    help: '1 when the last reconcile pass succeeded',
    registers,
  });
  let ready = false;
  return {
    get ready() {
      return ready;
    },
    reconciled(result) {
      reconciles.inc({ result });
      last.set(result === 'ok' ? 1 : 0);
      if (result === 'ok') ready = true;
    },
  };
}
