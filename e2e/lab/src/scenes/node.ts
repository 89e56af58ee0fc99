/**
 * Scene `node` (`--with-node` only): a real one-node Kubernetes cluster, NodeBed — the test bed's
 * etcd, kube-apiserver and kube-controller-manager, kube-scheduler, containerd, runc, the CNI bridge,
 * the kubelet and kube-proxy, all inside a network namespace the lab creates, with an uplink ("the
 * internet", a second namespace behind the node's default route). The scenes on the node (`tower`,
 * `pod-gateway`) install our charts into it and import the images they run. Its admin kubeconfig is
 * `node.kubeconfig` in the lab folder (the API server is reached through a relay on loopback).
 *
 * The teardown is the bed's `stop()` (containers, mounts, cgroups, processes, namespaces, files),
 * and the bed's `leftovers()` joins the lab's check of what is left.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeBed, ensureImages, oneLine, type BuiltImage, type ControlPlane } from '@knet/testing';
import { formatMs } from '../display';
import { registerScene, type LabContext } from '../scene';

/** Progress that never throws: for callbacks of the test kit, which must not be cut off halfway. */
export function progressLog(ctx: LabContext, prefix: string): (line: string) => void {
  return (line) => {
    try {
      ctx.progress(`${prefix}${line}`);
    } catch {
      // interrupted: the scene stops at its own next ctx.progress()
    }
  };
}

/** The images `names` (`npm run images`: built when missing, then cached), imported into the node. */
export async function imagesOnNode<N extends string>(
  ctx: LabContext,
  bed: NodeBed,
  names: readonly N[],
): Promise<Record<N, BuiltImage>> {
  ctx.progress(`the images ${names.join(', ')} (npm run images: built when missing, then cached)`);
  const images = await ensureImages(names, progressLog(ctx, 'images: '));
  ctx.progress('importing the images into the node');
  await bed.importImages(names.map((n) => images[n]));
  return images;
}

/** The fields of a Pod the scenes on the node read. */
export interface PodObject {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    initContainers?: { name: string; image: string; restartPolicy?: string }[];
    containers: { name: string; image: string }[];
  };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount: number }[];
  };
}

/** Pod `name` in `namespace`. */
export async function podObject(cp: ControlPlane, namespace: string, name: string): Promise<PodObject> {
  return JSON.parse(await cp.kubectlOk(['get', 'pod', name, '-n', namespace, '-o', 'json'])) as PodObject;
}

/** The pods in `namespace` (that match the label `selector`, if given). */
export async function podsIn(cp: ControlPlane, namespace: string, selector?: string): Promise<PodObject[]> {
  const args = ['get', 'pods', '-n', namespace, ...(selector ? ['-l', selector] : []), '-o', 'json'];
  return (JSON.parse(await cp.kubectlOk(args)) as { items: PodObject[] }).items;
}

interface NodeObject {
  metadata: { name: string; creationTimestamp: string };
  status: {
    conditions?: { type: string; status: string; message?: string }[];
    addresses?: { type: string; address: string }[];
    nodeInfo?: { kubeletVersion: string; containerRuntimeVersion: string };
  };
}

registerScene({
  name: 'node',
  onNode: true,
  title:
    'a real node in a network namespace: kubelet, containerd, runc, kube-proxy, kube-scheduler and its own control plane, an uplink as "the internet"',
  needs: [],
  bundles: [],
  async up(ctx) {
    ctx.progress('the pause image (npm run images: built once, then cached)');
    const images = await ensureImages(['pause'], progressLog(ctx, 'images: '));
    ctx.progress('starting the node (control plane, containerd, kubelet, kube-proxy): ~15 s');
    const bed = await NodeBed.start({
      sandboxImage: images.pause,
      uplink: true,
      // pod-gateway's gateway asks for net.ipv4.ip_forward=1 as a pod sysctl, as an operator allows it.
      kubelet: { allowedUnsafeSysctls: ['net.ipv4.ip_forward'] },
      log: progressLog(ctx, ''),
      // Its folder where the next NodeBed.start() sweeps it should the lab be killed (SIGKILL).
      parentDir: ctx.machineTmpDir,
    });
    ctx.defer('the node', () => bed.stop());
    ctx.checkLeftovers('the node', () => bed.leftovers());
    ctx.setNode(bed);
    const kubeconfig = join(ctx.dir, 'node.kubeconfig');
    copyFileSync(bed.cp.kubeconfigPath, kubeconfig);
    const onNode = `kubectl --kubeconfig ${ctx.shownDir}/node.kubeconfig`;
    const inNs = (h: { name: string }) => `ip netns exec ${h.name}`;
    const uplink = bed.uplink;
    if (!uplink) throw new Error('the node has no uplink');
    const net = bed.network;

    return [
      {
        component: `node ${net.nodeName}`,
        proof: 'the kubelet registered the node and it is Ready (containerd, the CNI bridge, kube-proxy)',
        command: `${onNode} get nodes -o wide; ${onNode} get pods -A -o wide`,
        async check() {
          const node = JSON.parse(
            await bed.cp.kubectlOk(['get', 'node', net.nodeName, '-o', 'json']),
          ) as NodeObject;
          const ready = node.status.conditions?.find((c) => c.type === 'Ready');
          if (ready?.status !== 'True')
            throw new Error(
              `node ${net.nodeName} Ready=${ready?.status ?? 'unset'}: ${oneLine(ready?.message ?? '')}`,
            );
          if (!['kubelet', 'containerd', 'kube-proxy'].every((p) => bed.process(p)?.running))
            throw new Error(
              `not running: ${['kubelet', 'containerd', 'kube-proxy'].filter((p) => !bed.process(p)?.running).join(', ')}`,
            );
          const ip = node.status.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '?';
          const pods = (
            await bed.cp.kubectlOk([
              'get',
              'pods',
              '-A',
              '--field-selector=status.phase=Running',
              '-o',
              'name',
            ])
          )
            .split('\n')
            .filter(Boolean).length;
          const age = formatMs(Date.now() - Date.parse(node.metadata.creationTimestamp));
          return `Ready, ${ip}, kubelet ${node.status.nodeInfo?.kubeletVersion ?? '?'}, ${node.status.nodeInfo?.containerRuntimeVersion ?? '?'}; ${pods} pods running; up ${age}`;
        },
      },
      {
        component: 'node network',
        proof: `pods on ${net.podCidr} (bridge), Services ${net.serviceCidr}, default route via the uplink: all inside the lab's namespaces`,
        command: `${inNs(bed.host)} ip -br addr; ${inNs(bed.host)} ip route`,
        async check() {
          const routes = await bed.host.ip('route');
          const via = /^default via (\S+)/m.exec(routes)?.[1];
          if (!via) throw new Error(`the node has no default route (uplink): ${oneLine(routes)}`);
          // The bridge plugin makes cni0 with the first pod.
          const addr = await bed.host.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'cni0'], {
            check: false,
          });
          const bridge = /inet (\S+)/.exec(addr.stdout)?.[1] ?? 'not made yet (no pod so far)';
          return `namespace ${bed.host.name}: cni0 ${bridge}, default via ${via} (uplink ${uplink.name})`;
        },
      },
    ];
  },
});
