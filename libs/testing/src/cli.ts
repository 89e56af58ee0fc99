/**
 * Test bed command line: `npm run testbed -- build` builds (or finds) the control-plane binaries,
 * the node's binaries, Cluster API's managers and kubeadm; `npm run testbed -- up` starts a control
 * plane (with `--with-node`, a real node: containerd, kubelet, kube-proxy and kube-scheduler) and
 * prints how to reach it until Ctrl-C.
 */
import { Command } from 'commander';
import { ensureCapiManagers, ensureKubeadm } from './capi-core';
import { ControlPlane, ensureTestBedBinaries } from './controlplane';
import { ensureImages, type BuiltImage } from './images';
import { ensureNodeBinaries, NodeBed } from './node';

const program = new Command('testbed')
  .description(
    'Build and run the real Kubernetes test bed (etcd, kube-apiserver, kube-controller-manager, kubectl, helm)',
  )
  .showHelpAfterError();

const BUILD_PARTS = ['control-plane', 'node', 'capi'] as const;
type BuildPart = (typeof BUILD_PARTS)[number];

program
  .command('build')
  .description(
    'build the binaries pinned in tools/kube, tools/etcd, tools/kubenode, tools/capi and tools/kubeadm (no-op when cached) and print their paths',
  )
  .argument(
    '[parts...]',
    `what to build (default: all): control-plane (etcd, kube-apiserver, kube-controller-manager, kubectl, helm), node (kubelet, kube-proxy, kube-scheduler), capi (the Cluster API managers and kubeadm)`,
  )
  .action(async (parts: string[]) => {
    const unknown = parts.filter((p) => !(BUILD_PARTS as readonly string[]).includes(p));
    if (unknown.length > 0) {
      throw new Error(
        `unknown part ${unknown.map((p) => JSON.stringify(p)).join(', ')} for build: give any of ${BUILD_PARTS.join(', ')}, or none for all`,
      );
    }
    const want = (p: BuildPart) => parts.length === 0 || parts.includes(p);
    const started = Date.now();
    const log = (l: string) => console.error(`testbed: ${l}`);
    const out: Record<string, unknown> = {};
    if (want('control-plane')) Object.assign(out, await ensureTestBedBinaries(log));
    if (want('node')) out['node'] = await ensureNodeBinaries(log);
    if (want('capi')) {
      out['capi'] = (await ensureCapiManagers(log)).bin;
      out['kubeadm'] = await ensureKubeadm(log);
    }
    console.error(`testbed: binaries ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    console.log(JSON.stringify(out, null, 2));
  });

program
  .command('up')
  .description(
    'start a control plane on loopback (with --with-node, a real node and its control plane in a namespace) and keep it until SIGINT/SIGTERM',
  )
  .option('--no-controller-manager', 'do not run kube-controller-manager (not with --with-node)')
  .option(
    '--with-node',
    'also run a real node in a network namespace of its own: containerd, kubelet, kube-proxy, kube-scheduler (root; see libs/testing/README-node.md)',
  )
  .option(
    '--image <name...>',
    'with --with-node: images to build (npm run images) and import besides pause, e.g. busybox tower-proxy',
    [],
  )
  .action(async (opts: { controllerManager: boolean; withNode?: boolean; image: string[] }) => {
    const log = (l: string) => console.error(`testbed: ${l}`);
    if (opts.image.length > 0 && !opts.withNode)
      throw new Error('--image needs --with-node (images go to the node)');
    if (opts.withNode && !opts.controllerManager) {
      throw new Error(
        '--no-controller-manager cannot go with --with-node: pods need its ServiceAccounts and Endpoints',
      );
    }
    let node: NodeBed | undefined;
    let cp: ControlPlane;
    if (opts.withNode) {
      const images: Partial<Record<string, BuiltImage>> = await ensureImages(['pause', ...opts.image], log);
      const built = (n: string): BuiltImage => {
        const image = images[n];
        if (!image) throw new Error(`image ${n} was not built`);
        return image;
      };
      node = await NodeBed.start({ sandboxImage: built('pause'), images: opts.image.map(built), log });
      cp = node.cp;
    } else {
      cp = await ControlPlane.start({ controllerManager: opts.controllerManager });
    }
    console.log(`server:     ${cp.server}`);
    console.log(`kubeconfig: ${cp.kubeconfigPath}`);
    console.log(`logs:       ${cp.dir}/*.log`);
    console.log(`try:        ${cp.bin.kubectl} --kubeconfig ${cp.kubeconfigPath} get namespaces`);
    if (node) {
      console.log(`node:       ${node.network.nodeName} (${node.network.nodeIp}) in netns ${node.host.name}`);
      console.log(`node logs:  ${node.paths.dir}/{containerd,kubelet,kube-proxy,kube-scheduler}.log`);
      console.log(`images:     ctr --address ${node.paths.containerdSocket} -n k8s.io images ls`);
    }
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    if (node) await node.stop();
    else await cp.stop();
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`testbed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
