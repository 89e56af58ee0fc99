/**
 * Test bed command line: `npm run testbed -- build` builds (or finds) the control-plane binaries,
 * Cluster API's managers and kubeadm; `npm run testbed -- up` starts a control plane and prints
 * how to reach it until Ctrl-C.
 */
import { Command } from 'commander';
import { ensureCapiManagers, ensureKubeadm } from './capi-core';
import { ControlPlane, ensureTestBedBinaries } from './controlplane';

const program = new Command('testbed')
  .description(
    'Build and run the real Kubernetes test bed (etcd, kube-apiserver, kube-controller-manager, kubectl, helm)',
  )
  .showHelpAfterError();

program
  .command('build')
  .description(
    'build the binaries pinned in tools/kube, tools/etcd, tools/capi and tools/kubeadm (no-op when cached) and print their paths',
  )
  .action(async () => {
    const started = Date.now();
    const log = (l: string) => console.error(`testbed: ${l}`);
    const bin = await ensureTestBedBinaries(log);
    const capi = (await ensureCapiManagers(log)).bin;
    const kubeadm = await ensureKubeadm(log);
    console.error(`testbed: binaries ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    console.log(JSON.stringify({ ...bin, capi, kubeadm }, null, 2));
  });

program
  .command('up')
  .description('start a control plane on loopback and keep it until SIGINT/SIGTERM')
  .option('--no-controller-manager', 'do not run kube-controller-manager')
  .action(async (opts: { controllerManager: boolean }) => {
    const cp = await ControlPlane.start({ controllerManager: opts.controllerManager });
    console.log(`server:     ${cp.server}`);
    console.log(`kubeconfig: ${cp.kubeconfigPath}`);
    console.log(`logs:       ${cp.dir}/*.log`);
    console.log(`try:        ${cp.bin.kubectl} --kubeconfig ${cp.kubeconfigPath} get namespaces`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await cp.stop();
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`testbed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
