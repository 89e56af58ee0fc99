/**
 * Scene `clusters`: a host and a member control plane, each a real etcd + kube-apiserver +
 * kube-controller-manager from the test bed, on loopback. Their admin kubeconfigs are copied to
 * the lab folder (`host.kubeconfig`, `member.kubeconfig`) for the user's own kubectl.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlane } from '@knet/testing';
import { registerScene, type Row } from '../scene';

registerScene({
  name: 'clusters',
  title: 'a host and a member control plane (etcd, kube-apiserver, kube-controller-manager)',
  needs: [],
  bundles: [],
  async up(ctx) {
    ctx.progress('starting the host and member control planes');
    const planes: Partial<Record<'host' | 'member', ControlPlane>> = {};
    const started = await Promise.allSettled(
      (['host', 'member'] as const).map(async (name) => {
        const cp = await ControlPlane.start({ controllerManager: true });
        planes[name] = cp;
        ctx.defer(`the ${name} control plane`, () => cp.stop());
      }),
    );
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    const host = planes.host as ControlPlane;
    const member = planes.member as ControlPlane;
    ctx.setClusters({ host, member });
    const rows: Row[] = [];
    for (const [name, cp] of [
      ['host', host],
      ['member', member],
    ] as const) {
      const file = join(ctx.dir, `${name}.kubeconfig`);
      copyFileSync(cp.kubeconfigPath, file);
      rows.push({
        component: `${name} cluster`,
        proof: `kube-apiserver ${cp.server} ready; the namespaces it stores`,
        command: `kubectl --kubeconfig ${ctx.shownDir}/${name}.kubeconfig get ns`,
        async check() {
          const ready = await cp.kubectl(['get', '--raw', '/readyz'], { timeoutMs: 10_000 });
          if (ready.stdout.trim() !== 'ok') {
            throw new Error(`${name} kube-apiserver is not ready: ${(ready.stderr || ready.stdout).trim()}`);
          }
          const ns = (await cp.kubectlOk(['get', 'namespaces', '-o', 'name']))
            .split('\n')
            .filter(Boolean)
            .map((n) => n.replace(/^namespace\//, ''));
          return `ready; ${ns.length} namespaces: ${ns.join(', ')}`;
        },
      });
    }
    return rows;
  },
});
