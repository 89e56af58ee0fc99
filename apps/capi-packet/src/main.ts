import { randomBytes } from 'node:crypto';
import { TEMPLATE_VARIABLES } from '@knet/capi';
import { Secrets, loadKubeConfig } from '@knet/k8s';
import { parseCommand, runMain } from '@knet/runtime';
import { chooseSshKey, readComponents, summary, writeFiles } from './files';
import { defaultClusterName, generateFiles } from './generate';
import { contextNamespace, readClusterKubeconfig } from './kubeconfig';
import { cli, kubeconfigCluster } from './options';

// Wiring only: command and options → the pure core (generate) and the files, or the API server (kubeconfig).
void runMain('capi-packet', async () => {
  const parsed = parseCommand(cli);
  switch (parsed.command) {
    case 'generate': {
      const o = parsed.opts;
      const clusterName = o.clusterName ?? defaultClusterName(randomBytes(5));
      const key = chooseSshKey(o.out, o.sshKey, `capi-packet@${clusterName}`);
      const files = [
        ...generateFiles({
          ...o,
          clusterName,
          defaultMetro: TEMPLATE_VARIABLES.location.default,
          sshPublicKey: key.publicKey,
          components: readComponents(o.components),
        }),
        ...key.files,
      ];
      writeFiles(o.out, files, o.force);
      process.stdout.write(`${summary(o.out, files, key).join('\n')}\n`);
      return;
    }
    case 'kubeconfig': {
      const cluster = kubeconfigCluster();
      const { kc } = loadKubeConfig({ kubeconfig: parsed.opts.kubeconfig });
      const namespace = parsed.opts.namespace ?? contextNamespace(kc);
      const value = await readClusterKubeconfig(new Secrets(kc), namespace, cluster);
      process.stdout.write(value.endsWith('\n') ? value : `${value}\n`);
      return;
    }
  }
});
