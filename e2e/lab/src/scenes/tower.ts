/**
 * Scene `tower`: KubeSphere's multi-cluster tunnel between the lab's clusters. tower-proxy runs for
 * the host and tower-agent for the member, each as its chart deploys it (the chart's default flags,
 * ServiceAccount and RBAC; only addresses, ports and in-cluster credentials made loopback). The lab
 * creates the proxy-type Cluster `member` on the host; the kubeconfig the proxy writes into it
 * (`member-via-tower.kubeconfig`) is what the real kubectl uses to list the member's namespaces
 * through the tunnel, `lab-member-only` among them, which only the member has.
 */
import { join } from 'node:path';
import {
  TOWER_NAMESPACE,
  createReadyCluster,
  expectClusterCondition,
  oneLine,
  prepareTowerHost,
  run,
  startChartTowerAgent,
  startChartTowerProxy,
  until,
  writeClusterKubeconfig,
} from '@knet/testing';
import { formatAge } from '../display';
import { registerScene, type Row } from '../scene';

/** The Cluster object of the member on the host (and the agent's --name). */
const CLUSTER = 'member';
/** A namespace only the member has: in the list, it shows the member answered. */
const MEMBER_ONLY = 'lab-member-only';
/** The ServiceAccount tokens the apps run with outlive any lab (the test bed's default is an hour). */
const TOKEN_SECONDS = 7 * 24 * 3600;

registerScene({
  name: 'tower',
  title:
    "tower-proxy (host) and tower-agent (member), as their charts run them: the member's API through the tunnel",
  needs: ['clusters'],
  bundles: ['tower-proxy', 'tower-agent'],
  async up(ctx) {
    const { host, member } = ctx.clusters();
    const onHost = `kubectl --kubeconfig ${ctx.shownDir}/host.kubeconfig`;
    ctx.progress(`preparing the host: KubeSphere's Cluster CRD, namespace ${TOWER_NAMESPACE}`);
    await prepareTowerHost(host);
    await member.kubectlOk(['create', 'namespace', MEMBER_ONLY]);

    ctx.progress("starting tower-proxy with its chart's flags, ServiceAccount and RBAC");
    const proxy = await startChartTowerProxy(host, {
      logFile: join(ctx.dir, 'tower-proxy.log'),
      tokenSeconds: TOKEN_SECONDS,
    });
    ctx.defer('tower-proxy', () => proxy.proc.stop());

    ctx.progress(`creating the proxy-type Cluster ${CLUSTER} on the host`);
    const cluster = await createReadyCluster(host, CLUSTER, proxy.proc);
    const token = cluster.spec?.connection?.token as string;
    const kubeconfig = writeClusterKubeconfig(cluster, join(ctx.dir, 'member-via-tower.kubeconfig'));

    ctx.progress("starting tower-agent in the member with its chart's flags, ServiceAccount and RBAC");
    const agent = await startChartTowerAgent(
      member,
      { name: CLUSTER, token, proxy },
      { logFile: join(ctx.dir, 'tower-agent.log'), tokenSeconds: TOKEN_SECONDS },
    );
    ctx.defer('tower-agent', () => agent.proc.stop());

    /** `kubectl get ns` through the tunnel: the namespaces' names. */
    const viaTower = async (): Promise<string[]> => {
      const r = await run(ctx.kubectl, ['--kubeconfig', kubeconfig, 'get', 'ns', '-o', 'name'], {
        timeoutMs: 15_000,
      });
      if (r.exitCode !== 0) throw new Error(`kubectl through the tunnel failed: ${oneLine(r.stderr)}`);
      return r.stdout
        .split('\n')
        .filter(Boolean)
        .map((n) => n.replace(/^namespace\//, ''));
    };
    ctx.progress("waiting for the member's namespaces through the tunnel");
    // The chart binds the aggregated ClusterRole `view`, which the member's controller manager fills.
    await until(
      () => `the member's namespaces through the tunnel; agent log:\n${agent.proc.tail(10)}`,
      async () => (await viaTower()).includes(MEMBER_ONLY),
      30_000,
    );

    /** Cluster `member` with its condition `type` True, or one line why not. */
    const expectCondition = (type: string) => expectClusterCondition(host, CLUSTER, type);

    const rows: Row[] = [
      {
        component: 'tower-proxy',
        proof: `ready on loopback as the chart's ServiceAccount; Cluster ${CLUSTER} initialized`,
        command: `curl -s ${proxy.url}/readyz`,
        async check() {
          if (!proxy.proc.running) throw new Error(`tower-proxy exited: ${oneLine(proxy.proc.tail(3))}`);
          await expectReady('tower-proxy', proxy.url);
          const { cluster: c } = await expectCondition('Initialized');
          const listener = c.spec?.connection?.kubernetesAPIEndpoint ?? '?';
          return `ready on ${proxy.url}; Cluster ${CLUSTER} Initialized, its kube-apiserver at ${listener}`;
        },
      },
      {
        component: 'tower-agent',
        proof: `connected to the proxy (its /readyz), and the proxy says so: Cluster ${CLUSTER} AgentAvailable=True`,
        command: `${onHost} get cluster ${CLUSTER} -o jsonpath='{.status.conditions}'`,
        async check() {
          if (!agent.proc.running) throw new Error(`tower-agent exited: ${oneLine(agent.proc.tail(3))}`);
          const { condition: available } = await expectCondition('AgentAvailable');
          await expectReady('tower-agent', agent.metricsUrl);
          const since = available.lastTransitionTime ? new Date(available.lastTransitionTime) : undefined;
          const ago = since
            ? ` since ${since.toTimeString().slice(0, 8)} (${formatAge(Date.now() - since.getTime())})`
            : '';
          return `AgentAvailable=True${ago}; agent pid ${agent.proc.pid} running, ready (connected)`;
        },
      },
      {
        component: 'kubectl via tower',
        proof: "the real kubectl lists the member's namespaces through the proxy's listener and the tunnel",
        command: `kubectl --kubeconfig ${ctx.shownDir}/member-via-tower.kubeconfig get ns`,
        async check() {
          const names = await viaTower();
          if (!names.includes(MEMBER_ONLY)) {
            throw new Error(
              `${MEMBER_ONLY} is not among the namespaces listed (${names.join(', ')}): not the member`,
            );
          }
          return `${names.length} namespaces incl. ${MEMBER_ONLY}`;
        },
      },
      {
        component: `Service mc-${CLUSTER}`,
        proof: "the proxy's Service for the member on the host (what KubeSphere's ks-apiserver dials)",
        command: `${onHost} -n ${TOWER_NAMESPACE} get service mc-${CLUSTER}`,
        async check() {
          const svc = JSON.parse(
            await host.kubectlOk(['get', 'service', `mc-${CLUSTER}`, '-n', TOWER_NAMESPACE, '-o', 'json']),
          ) as { spec: { clusterIP?: string; ports: { port: number; targetPort: number }[] } };
          const ports = svc.spec.ports.map((p) => `${p.port}→${p.targetPort}`).join(', ');
          return `${svc.spec.clusterIP ?? 'no ClusterIP'}, ports ${ports}`;
        },
      },
    ];
    return rows;
  },
});

/** Throws one line unless `<url>/readyz` answers 200. */
async function expectReady(app: string, url: string): Promise<void> {
  const r = await fetch(`${url}/readyz`).catch((e: Error) => e);
  if (r instanceof Error || !r.ok) {
    throw new Error(
      `${app} ${url}/readyz: ${r instanceof Error ? r.message : `${r.status} ${await r.text()}`}`,
    );
  }
}
