/**
 * Client timings in the pod-gateway lab (@knet/testing's podgw-lab.ts):
 *   client_routed_ms   client-init from process start to exit 0: routes isolated, gateway resolved,
 *                      vxlan0 built, DHCP lease taken, default route set, gateway answering
 *   recovery_ms        gateway pod replaced by one with a new IP: from the new gateway serving (DHCP
 *                      and DNS up, cluster DNS record updated) to the client routed through it again
 *                      (a TCP round trip to the internet host that arrives from the new VPN address)
 */
import { PodgwLab, median, until } from '@knet/testing';
import type { BenchContext } from './context';
import { NEXT_GATEWAY_IPS, removeGateway, startGateway } from './gateway';

const { INTERNET } = PodgwLab;

export async function benchClient(ctx: BenchContext, rounds = 5): Promise<void> {
  const w = await PodgwLab.create();
  ctx.cleanup.defer('pod-gateway lab', () => w.dispose());

  let gw = await startGateway(w, '192.0.2.10', '203.0.113.2');

  const routed: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const c = await w.addClient(`bench-${i}`);
    const t0 = performance.now();
    const r = await w.clientInit(c);
    const ms = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`client-init failed: ${r.stderr.trim()}`);
    routed.push(ms);
    ctx.log(`client-init ${i + 1}/${rounds}: routed in ${ms.toFixed(0)} ms`);
    // An outlier is worth reading: what took the time is in client-init's own log.
    if (ms > 2000) ctx.log(`slow client-init, its log:\n${r.stdout.trim()}`);
  }
  ctx.emit({
    metric: 'client_routed_ms',
    value: median(routed),
    unit: 'ms',
    rounds,
    min: Math.min(...routed),
  });

  const c = await w.addClient('bench-recovery');
  const init = await w.clientInit(c);
  if (init.exitCode !== 0) throw new Error(`client-init failed: ${init.stderr.trim()}`);
  await w.startClientSidecar(c);
  const recovery: number[] = [];
  for (let i = 0; i < Math.min(rounds, NEXT_GATEWAY_IPS.length); i++) {
    // The old gateway pod goes away; a new one with a new IP starts serving.
    await removeGateway(gw);
    const vpnIp = `203.0.113.${3 + i}`;
    gw = await startGateway(w, NEXT_GATEWAY_IPS[i] as string, vpnIp);
    w.setClusterRecord(gw.podIp);
    const t0 = performance.now();
    await until(
      `the client to be routed through the new gateway (${vpnIp})`,
      async () => (await w.whoami(c.host, INTERNET, 7, 500)) === vpnIp,
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    const ms = performance.now() - t0;
    recovery.push(ms);
    ctx.log(`gateway replaced ${i + 1}: client routed again after ${ms.toFixed(0)} ms`);
  }
  ctx.emit({
    metric: 'recovery_ms',
    value: median(recovery),
    unit: 'ms',
    rounds: recovery.length,
    max: Math.max(...recovery),
    goal_ms: 3000,
    check_interval_ms: 500,
  });
}
