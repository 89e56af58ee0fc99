// The gateway pods of the pod-gateway lab the bench parts share (client.ts, killswitch.ts).
import { writeFileSync } from 'node:fs';
import { PodgwLab, type PodgwGateway as Gateway } from '@knet/testing';

/**
 * A gateway pod that serves: gateway-init, then resolv.conf as a VPN client leaves it (the VPN's
 * DNS), then gateway-sidecar.
 */
export async function startGateway(w: PodgwLab, podIp: string, vpnIp: string): Promise<Gateway> {
  const gw = await w.addGateway(podIp, vpnIp);
  const resolv = w.resolvConf(gw);
  const init = await w.gatewayInit(gw, resolv);
  if (init.exitCode !== 0) throw new Error(`gateway-init failed: ${init.stderr.trim()}`);
  writeFileSync(resolv, `nameserver ${PodgwLab.VPN_SERVER}\n`);
  await w.startGatewaySidecar(gw, resolv);
  return gw;
}

/** The gateway pod goes away: its sidecar stopped, its links down. */
export async function removeGateway(gw: Gateway): Promise<void> {
  if (gw.sidecar) process.kill(gw.sidecar.pid, 'SIGTERM');
  await gw.host.ip('link', 'set', 'eth0', 'down');
  await gw.host.ip('link', 'set', 'tun0', 'down');
}

/** Pod IPs for the gateways that replace the first (192.0.2.10) one after the other. */
export const NEXT_GATEWAY_IPS = [
  '192.0.2.11',
  '192.0.2.12',
  '192.0.2.13',
  '192.0.2.14',
  '192.0.2.15',
  '192.0.2.16',
];
