import type { NetHost, NetLab, NetSwitch } from './lab';

/** The gateway's address on the node switch (underlay) and on vxlan0 (overlay). */
export const OVERLAY_GATEWAY_UNDERLAY = '192.0.2.1';
export const OVERLAY_GATEWAY = '172.16.0.1';

/** Client `i`'s address on the node switch: 192.0.2.(10 + i). */
export function overlayClientUnderlay(i: number): string {
  return `192.0.2.${10 + i}`;
}

export interface VxlanOverlay {
  sw: NetSwitch;
  gw: NetHost;
  clients: NetHost[];
}

/** `vxlan0` (VNI 42, port 4789, over eth0, learning on) in a host. */
async function addVxlan(h: NetHost): Promise<void> {
  await h.ip(
    'link',
    'add',
    'vxlan0',
    'type',
    'vxlan',
    'id',
    '42',
    'dstport',
    '4789',
    'dev',
    'eth0',
    'learning',
  );
}

/**
 * pod-gateway's overlay, for DHCP tests and benches: a "node" switch (192.0.2.0/24) with a gateway
 * (eth0 .1, vxlan0 172.16.0.1/24 and no FDB entries: it learns its clients) and `clientCount`
 * clients (eth0 .10+i, vxlan0 without address whose only FDB entry is `00:00:00:00:00:00 dst
 * 192.0.2.1`). Routes for the clients' DHCP broadcasts are left to the caller.
 */
export async function buildVxlanOverlay(lab: NetLab, clientCount: number): Promise<VxlanOverlay> {
  const sw = await lab.addSwitch('node');
  const gw = await lab.addHost('gw');
  await sw.connect(gw, { ifname: 'eth0', address: `${OVERLAY_GATEWAY_UNDERLAY}/24` });
  await addVxlan(gw);
  await gw.ip('addr', 'add', `${OVERLAY_GATEWAY}/24`, 'dev', 'vxlan0');
  await gw.ip('link', 'set', 'vxlan0', 'up');
  const clients: NetHost[] = [];
  for (let i = 0; i < clientCount; i++) clients.push(await addVxlanClient(lab, sw, i));
  return { sw, gw, clients };
}

/** Client `i` of {@link buildVxlanOverlay}'s overlay. */
export async function addVxlanClient(lab: NetLab, sw: NetSwitch, i: number): Promise<NetHost> {
  const c = await lab.addHost(`c${i}`);
  await sw.connect(c, { ifname: 'eth0', address: `${overlayClientUnderlay(i)}/24` });
  await addVxlan(c);
  await c.exec('bridge', [
    'fdb',
    'append',
    '00:00:00:00:00:00',
    'dev',
    'vxlan0',
    'dst',
    OVERLAY_GATEWAY_UNDERLAY,
  ]);
  await c.ip('link', 'set', 'vxlan0', 'up');
  return c;
}
