/**
 * Scene `tower` with `--with-node`: tower-proxy and tower-agent as pods on the real node, installed
 * with `helm install --wait` from charts/tower-proxy and charts/tower-agent and run from the images
 * `npm run images` builds (imported into the node: nothing is pulled). The node is both the host
 * (tower-proxy, KubeSphere's Cluster CRD, the proxy-type Cluster `member`) and the member (the agent
 * dials the proxy at the ClusterIP of the Service `tower`, as an agent of a member cluster dials a
 * LoadBalancer address). What the rows prove is that requests take the tunnel: the kubeconfig the
 * proxy wrote into the Cluster (`member-via-tower.kubeconfig`: its server is the ClusterIP of the
 * Service mc-member, which only the node's namespace routes) works with the real kubectl run in the
 * node's namespace, the answers come back as the agent's ServiceAccount, and the proxy counts the
 * bytes it carried for `member`.
 */
import { join } from 'node:path';
import {
  TOWER_NAMESPACE,
  clusterCondition,
  createReadyCluster,
  expectClusterCondition,
  getCluster,
  installTowerAgentChart,
  installTowerProxyChart,
  oneLine,
  prepareTowerHost,
  readyEndpoints,
  releasePod,
  towerAgentValues,
  towerProxyMetrics,
  towerTunnelBytes,
  until,
  writeClusterKubeconfig,
  type ControlPlane,
  type NodeBed,
} from '@knet/testing';
import { formatAge } from '../display';
import { registerScene, type Row } from '../scene';
import { imagesOnNode, type PodObject } from './node';

/** The Cluster object of the member on the host (and the agent's --name). */
const CLUSTER = 'member';
/** A namespace made for the proof: in the list through the tunnel, it shows the cluster answered. */
const MEMBER_ONLY = 'lab-member-only';
const NS = TOWER_NAMESPACE;

/** The one pod of `release`: Running and Ready, or one line why not; "pod <name> <ip>, <image>". */
async function readyPod(cp: ControlPlane, release: string): Promise<string> {
  const pod = await releasePod<PodObject>(cp, NS, release);
  const name = pod.metadata.name;
  const ready = pod.status.conditions?.find((c) => c.type === 'Ready')?.status;
  if (pod.status.phase !== 'Running' || ready !== 'True')
    throw new Error(`pod ${name} is ${pod.status.phase ?? 'unknown'}, Ready=${ready ?? 'unset'}`);
  const restarts = pod.status.containerStatuses?.reduce((n, c) => n + c.restartCount, 0) ?? 0;
  return `pod ${name} ${pod.status.podIP ?? '?'} Running, Ready${restarts ? `, ${restarts} restarts` : ''} (${pod.spec.containers[0]?.image ?? '?'})`;
}

/** The real kubectl in the node's network namespace (where the Service ClusterIPs are routed). */
async function kubectlInNode(bed: NodeBed, kubectl: string, kubeconfig: string, args: string[]) {
  return bed.host.exec(kubectl, [`--kubeconfig=${kubeconfig}`, ...args], { check: false, timeoutMs: 20_000 });
}

registerScene({
  name: 'tower',
  onNode: true,
  title:
    "tower-proxy and tower-agent as pods of their charts on the node: the Cluster's kubeconfig through the tunnel",
  needs: ['node'],
  bundles: [],
  async up(ctx) {
    const bed = ctx.node();
    const cp = bed.cp;
    const onNode = `kubectl --kubeconfig ${ctx.shownDir}/node.kubeconfig`;
    await imagesOnNode(ctx, bed, ['tower-proxy', 'tower-agent']);
    ctx.progress(`KubeSphere's Cluster CRD, namespace ${NS}`);
    await prepareTowerHost(cp);
    await cp.kubectlOk(['create', 'namespace', MEMBER_ONLY]);

    // The releases, their pods and the Cluster go with the node (its teardown).
    ctx.progress('helm install tower-proxy charts/tower-proxy --wait');
    await installTowerProxyChart(cp);
    ctx.progress(`creating the proxy-type Cluster ${CLUSTER}`);
    const cluster = await createReadyCluster(cp, CLUSTER);
    const kubeconfig = writeClusterKubeconfig(cluster, join(ctx.dir, 'member-via-tower.kubeconfig'));
    const shownKubeconfig = `${ctx.shownDir}/member-via-tower.kubeconfig`;

    ctx.progress(
      "helm install tower-agent charts/tower-agent --wait (the Cluster's token, the proxy's fingerprint)",
    );
    await installTowerAgentChart(cp, await towerAgentValues(cp, CLUSTER));

    /** The namespaces, and who asked, through the tunnel. */
    const viaTower = async (): Promise<{ names: string[]; user: string }> => {
      const ns = await kubectlInNode(bed, ctx.kubectl, kubeconfig, ['get', 'ns', '-o', 'name']);
      if (ns.exitCode !== 0) throw new Error(`kubectl through the tunnel failed: ${oneLine(ns.stderr)}`);
      const who = await kubectlInNode(bed, ctx.kubectl, kubeconfig, [
        'auth',
        'whoami',
        '-o',
        'jsonpath={.status.userInfo.username}',
      ]);
      if (who.exitCode !== 0)
        throw new Error(`kubectl auth whoami through the tunnel: ${oneLine(who.stderr)}`);
      return {
        names: ns.stdout
          .split('\n')
          .filter(Boolean)
          .map((n) => n.replace(/^namespace\//, '')),
        user: who.stdout.trim(),
      };
    };
    ctx.progress('waiting for the agent to connect and the namespaces through the tunnel');
    await until(
      () => `Cluster ${CLUSTER} AgentAvailable=True`,
      async () => clusterCondition(await getCluster(cp, CLUSTER), 'AgentAvailable')?.status === 'True',
      60_000,
    );
    await until(
      'the namespaces through the tunnel',
      async () => (await viaTower().catch(() => undefined))?.names.includes(MEMBER_ONLY),
      30_000,
    );

    /** Cluster `member` with its condition `type` True, or one line why not. */
    const expectCondition = (type: string) => expectClusterCondition(cp, CLUSTER, type);

    const rows: Row[] = [
      {
        component: 'tower-proxy',
        proof: `the chart's pod, from the image built here, Ready; Cluster ${CLUSTER} initialized`,
        command: `${onNode} -n ${NS} get pods -l app.kubernetes.io/instance=tower-proxy -o wide`,
        async check() {
          const pod = await readyPod(cp, 'tower-proxy');
          const { cluster: c } = await expectCondition('Initialized');
          return `${pod}; Cluster ${CLUSTER} Initialized, listener ${c.spec?.connection?.kubernetesAPIEndpoint ?? '?'}`;
        },
      },
      {
        component: 'tower-agent',
        proof: `the chart's pod Ready (its readiness is "connected"), and the proxy says so: AgentAvailable=True, one session`,
        command: `${onNode} get cluster ${CLUSTER} -o jsonpath='{.status.conditions}'`,
        async check() {
          const pod = await readyPod(cp, 'tower-agent');
          const { condition } = await expectCondition('AgentAvailable');
          const sessions = new RegExp(
            `^tower_proxy_agent_sessions\\{cluster="${CLUSTER}"\\} (\\d+)$`,
            'm',
          ).exec(await towerProxyMetrics(cp))?.[1];
          if (sessions !== '1')
            throw new Error(`the proxy counts ${sessions ?? 'no'} agent sessions for ${CLUSTER}, not 1`);
          const since = condition.lastTransitionTime ? new Date(condition.lastTransitionTime) : undefined;
          const ago = since
            ? ` since ${since.toTimeString().slice(0, 8)} (${formatAge(Date.now() - since.getTime())})`
            : '';
          return `${pod}; AgentAvailable=True${ago}, 1 session`;
        },
      },
      {
        component: 'kubectl via tower',
        proof:
          "the real kubectl, in the node's namespace, lists the namespaces through the proxy and the tunnel, as the agent's ServiceAccount",
        command: `source ${ctx.shownDir}/env; ip netns exec ${bed.host.name} kubectl --kubeconfig ${shownKubeconfig} get ns`,
        async check() {
          const before = towerTunnelBytes(await towerProxyMetrics(cp), CLUSTER, 'from_agent');
          const { names, user } = await viaTower();
          if (!names.includes(MEMBER_ONLY))
            throw new Error(`${MEMBER_ONLY} is not among the namespaces listed (${names.join(', ')})`);
          const agent = `system:serviceaccount:${NS}:tower-agent`;
          if (user !== agent)
            throw new Error(`through the tunnel kubectl is ${user || 'nobody'}, not ${agent}`);
          const carried = towerTunnelBytes(await towerProxyMetrics(cp), CLUSTER, 'from_agent') - before;
          if (carried <= 0)
            throw new Error(`the proxy carried no bytes for ${CLUSTER}: not through the tunnel`);
          return `${names.length} namespaces incl. ${MEMBER_ONLY}, as ${agent}; ${carried} bytes back through the tunnel`;
        },
      },
      {
        component: `Service mc-${CLUSTER}`,
        proof: "the proxy's Service for the Cluster (the kubeconfig's server), backed by the proxy pod",
        command: `${onNode} -n ${NS} get service,endpointslices -l kubernetes.io/service-name=mc-${CLUSTER} -o wide`,
        async check() {
          const svc = JSON.parse(
            await cp.kubectlOk(['get', 'service', `mc-${CLUSTER}`, '-n', NS, '-o', 'json']),
          ) as {
            spec: { clusterIP?: string; ports: { port: number; targetPort: number }[] };
          };
          const endpoints = (await readyEndpoints(bed, NS, `mc-${CLUSTER}`)).join(', ');
          const proxyIp = (await releasePod<PodObject>(cp, NS, 'tower-proxy')).status.podIP;
          if (endpoints !== proxyIp)
            throw new Error(
              `mc-${CLUSTER}'s endpoints are ${endpoints || 'none'}, not the proxy pod ${proxyIp ?? '?'}`,
            );
          const ports = svc.spec.ports.map((p) => `${p.port}→${p.targetPort}`).join(', ');
          return `${svc.spec.clusterIP ?? 'no ClusterIP'}, ports ${ports} → proxy pod ${endpoints}`;
        },
      },
    ];
    return rows;
  },
});
