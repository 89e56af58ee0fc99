import { Counter, Gauge, Histogram, type Registry } from '@knet/runtime';

/** capi-packet-manager's metrics, registered on the app's registry (served on /metrics by `app.serve()`). */
export interface AppMetrics {
  /** One reconcile pass of an object. */
  reconciled(
    kind: 'PacketCluster' | 'PacketMachine' | 'PacketKubeadmConfig',
    seconds: number,
    outcome: 'ok' | 'error',
  ): void;
  /** One Metal API request (each retry counts: this is what the API's rate limit sees). */
  metalCall(operation: string, status: number | 'none'): void;
  /** Watches listed (and, with --leader-elect, leading): the readiness check. */
  ready: boolean;
}

export function createAppMetrics(registry: Registry): AppMetrics {
  const registers = [registry];
  const passes = new Histogram({
    name: 'capi_packet_reconcile_duration_seconds',
    help: 'reconcile passes, by kind and outcome',
    labelNames: ['kind', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const calls = new Counter({
    name: 'capi_packet_metal_api_requests_total',
    help: 'Metal API requests, by operation and HTTP status (none: no answer)',
    labelNames: ['operation', 'status'],
    registers,
  });
  const readyGauge = new Gauge({ name: 'capi_packet_manager_ready', help: '1 while reconciling', registers });
  let ready = false;
  return {
    get ready() {
      return ready;
    },
    set ready(v: boolean) {
      ready = v;
      readyGauge.set(v ? 1 : 0);
    },
    reconciled(kind, seconds, outcome) {
      passes.observe({ kind, outcome }, seconds);
    },
    metalCall(operation, status) {
      calls.inc({ operation, status: String(status) });
    },
  };
}
