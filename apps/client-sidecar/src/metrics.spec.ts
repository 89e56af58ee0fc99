import { createMetricsRegistry } from '@knet/runtime';
import { createClientMetrics } from './metrics';

describe('client-sidecar metrics', () => {
  it('follow the watchdog: routed, rebuilds and how long they took', async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const m = createClientMetrics(registry);
    expect(m.routed).toBe(false);
    m.onRouted(true);
    m.onRecovered(1200, { gatewayIp: '192.0.2.10', address: '172.16.0.20/24', lease: undefined });
    expect(m.routed).toBe(true);
    const text = await registry.metrics();
    expect(text).toMatch(/^podgw_client_routed 1$/m);
    expect(text).toMatch(/^podgw_client_reconnects_total 1$/m);
    expect(text).toMatch(/^podgw_client_recovery_seconds_bucket\{le="1"\} 0$/m);
    expect(text).toMatch(/^podgw_client_recovery_seconds_bucket\{le="2"\} 1$/m);
    m.onRouted(false);
    expect(m.routed).toBe(false);
    expect(await registry.metrics()).toMatch(/^podgw_client_routed 0$/m);
  });
});
