/**
 * Kill-switch timings in the pod-gateway lab (@knet/testing's podgw-lab.ts):
 *   gateway_start_to_routed_ms  a new gateway pod (new IP; the cluster DNS record updated as it
 *                               starts): from gateway-init's start to a client, whose client-sidecar
 *                               follows the gateway, routed through it (a TCP round trip to the
 *                               internet host arriving from the new VPN address)
 *   rules_restore_ms            a "VPN container" flushes the gateway's filter table (`iptables -F`,
 *                               every chain); from the flush to gateway-sidecar having the kill
 *                               switch's jump back in FORWARD. Goal: ≤ one --resync-interval
 */
import { PodgwLab, median, until } from '@knet/testing';
import type { BenchContext } from './context';
import { NEXT_GATEWAY_IPS, removeGateway, startGateway } from './gateway';

const { INTERNET } = PodgwLab;
/** gateway-sidecar's default --resync-interval. */
const RESYNC_MS = 2000;

export async function benchKillSwitch(ctx: BenchContext, rounds = 5): Promise<void> {
  const w = await PodgwLab.create();
  ctx.cleanup.defer('pod-gateway lab (kill switch)', () => w.dispose());

  let gw = await startGateway(w, '192.0.2.10', '203.0.113.2');
  const c = await w.addClient('bench-ks');
  const init = await w.clientInit(c);
  if (init.exitCode !== 0) throw new Error(`client-init failed: ${init.stderr.trim()}`);
  await w.startClientSidecar(c);

  const started: number[] = [];
  for (let i = 0; i < Math.min(rounds, NEXT_GATEWAY_IPS.length); i++) {
    await removeGateway(gw);
    const podIp = NEXT_GATEWAY_IPS[i] as string;
    const vpnIp = `203.0.113.${3 + i}`;
    const t0 = performance.now();
    w.setClusterRecord(podIp);
    gw = await startGateway(w, podIp, vpnIp);
    await until(
      `the client to be routed through the new gateway (${vpnIp})`,
      async () => (await w.whoami(c.host, INTERNET, 7, 500)) === vpnIp,
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    const ms = performance.now() - t0;
    started.push(ms);
    ctx.log(
      `gateway ${i + 1} started: client routed through it ${ms.toFixed(0)} ms after gateway-init began`,
    );
  }
  ctx.emit({
    metric: 'gateway_start_to_routed_ms',
    value: median(started),
    unit: 'ms',
    rounds: started.length,
    max: Math.max(...started),
    check_interval_ms: 500,
  });

  const restored: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // A random moment of the resync period, as a VPN container's scripts would.
    await new Promise((r) => setTimeout(r, Math.random() * RESYNC_MS));
    const t0 = performance.now();
    await gw.host.exec('iptables', ['-F']);
    await until(
      'gateway-sidecar to restore the kill switch',
      async () => (await gw.host.exec('iptables', ['-S', 'FORWARD'])).stdout.includes('-j KNET-PGW-FWD'),
      { timeoutMs: 10 * RESYNC_MS, intervalMs: 10 },
    );
    const ms = performance.now() - t0;
    restored.push(ms);
    ctx.log(`rules flushed ${i + 1}: restored after ${ms.toFixed(0)} ms`);
  }
  const value = median(restored);
  ctx.emit({
    metric: 'rules_restore_ms',
    value,
    unit: 'ms',
    rounds,
    max: Math.max(...restored),
    goal_ms: RESYNC_MS,
    resync_interval_ms: RESYNC_MS,
    max_within_goal: Math.max(...restored) <= RESYNC_MS,
  });
}
