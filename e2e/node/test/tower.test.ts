/**
 * tower-proxy and tower-agent as pods on a real node (NodeBed: kubelet, containerd, runc, the CNI
 * bridge, kube-proxy), installed with `helm install --wait` from charts/tower-proxy and
 * charts/tower-agent, from the images `npm run images` builds (ghcr.io/knet/<app>:<appVersion>),
 * imported into the node: nothing is pulled, nothing runs as a host process.
 *
 * One NodeBed is one cluster, so it is both the host (tower-proxy, the Cluster CRD, the Cluster
 * `alpha`) and the member (tower-agent). Tower's data path does not care that the member's API
 * server is the host's; what the test proves is that requests take the tunnel: the kubeconfig's
 * server is the proxy's listener behind the Service mc-alpha (a ClusterIP served by the proxy pod),
 * its client certificate comes from the proxy's CA (the API server itself refuses it), the answers
 * come back as the agent's ServiceAccount (`kubectl auth whoami`, and Secrets are forbidden: the
 * agent chart's "view"), and the proxy counts the bytes it carried for `alpha`.
 *
 * Addresses: there is no cluster DNS on the node (pods fall back to dnsPolicy Default), so the
 * agent dials the proxy at the ClusterIP of the Service `tower` (kube-proxy's rules), as an agent
 * in a member cluster would dial a LoadBalancer address; the agent finds its own API server through
 * KUBERNETES_SERVICE_HOST, which the kubelet sets without DNS.
 *
 * How kubectl reaches the tunnel. The test process lives in the root network namespace and reaches
 * the node only through the relay to the API server (`bed.cp.server`); the kubeconfig's server is
 * the ClusterIP of mc-alpha, which only the node's namespace and its pods route. Three routes, each
 * with the kubeconfig's CA, client certificate and key as the proxy wrote them:
 * - The real kubectl with the kubeconfig file exactly as written, run in the node's network
 *   namespace (`ip netns exec`, as a program on the node): the node routes its Service range to
 *   kube-proxy's OUTPUT rules, which send mc-alpha's ClusterIP to the proxy pod. The test process
 *   changes nothing there; it only starts kubectl inside.
 * - The real kubectl from the test process through `kubectl port-forward svc/mc-alpha` (the API
 *   server and the kubelet's streaming to the pod the Service selects, at its target port). Only the
 *   address changes (`--server=https://127.0.0.1:<forwarded port>`); `--tls-server-name` is the
 *   ClusterIP, so kubectl still checks that the proxy's certificate names it.
 * - From a pod of the host cluster, as KubeSphere's ks-apiserver uses the kubeconfig: a TLS client
 *   with its CA, certificate and key, run by `kubectl exec` in the proxy pod with the image's node
 *   (the images have no kubectl, and mounting the bed's into a pod would need a hostPath).
 * Not the API server's service proxy (`…/services/https:mc-alpha:6443/proxy/`): the API server would
 * connect without the kubeconfig's client certificate, and the listener rightly refuses that.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from '@knet/cluster-crd';
import { kubeconfigTls } from '@knet/k8s';
import {
  NodeBed,
  TOWER_NAMESPACE,
  clusterCondition,
  createReadyCluster,
  ensureImages,
  getCluster,
  installTowerAgentChart,
  installTowerProxyChart,
  prepareTowerHost,
  rootNetworkState,
  towerAgentValues,
  towerProxyMetrics,
  towerTunnelBytes,
  until,
  writeClusterKubeconfig,
} from '@knet/testing';
import {
  chartAppVersion,
  containerIdentity,
  kubectlOnNode,
  helmOk,
  podCondition,
  portForward,
  releaseObjects,
  releasePod,
  releasePods,
  type ContainerIdentity,
  type Pod,
  type PortForward,
} from './harness';

// Cold image builds take minutes; with the images cached the file runs in about a minute.
jest.setTimeout(600_000);

const NS = TOWER_NAMESPACE;
const CLUSTER = 'alpha';
/** What both charts promise about their pods (podSecurityContext, securityContext). */
const NONROOT = 65532;
/** Bounds `helm uninstall --wait`; the run gets a minute more. */
const HELM_WAIT = '180s';
const HELM_RUN_MS = 240_000;

let bed: NodeBed | undefined;
let rootBefore: string;
let dir: string;
const forwards: PortForward[] = [];

const node = (): NodeBed => {
  if (!bed) throw new Error('the node did not start (see beforeAll)');
  return bed;
};
const cluster = (): Promise<Cluster> => getCluster(node().cp, CLUSTER);
const condition = async (type: string) => clusterCondition(await cluster(), type)?.status;

/** The proxy's /metrics (its metricsPort, 9090) through the API server's pod proxy. */
const proxyMetrics = (): Promise<string> => towerProxyMetrics(node().cp);

/** tower_proxy_bytes_total of `alpha`'s kubernetes target in `direction`. */
const tunnelBytes = async (direction: 'from_agent' | 'to_agent'): Promise<number> =>
  towerTunnelBytes(await proxyMetrics(), CLUSTER, direction);

type KubectlRun = (args: string[]) => Promise<{ exitCode: number | null; stdout: string; stderr: string }>;

/**
 * What kubectl with the Cluster's kubeconfig gets through the tunnel: the member's namespaces, as
 * the agent's ServiceAccount (not the kubeconfig's certificate) with the agent chart's "view" (no
 * Secrets), and the answers counted by the proxy for `alpha`.
 */
async function expectThroughTunnel(kubectl: KubectlRun): Promise<void> {
  const before = await tunnelBytes('from_agent');
  const ns = await kubectl(['get', 'namespaces', '-o', 'name']);
  expect([ns.exitCode, ns.stderr]).toEqual([0, '']);
  expect(ns.stdout.split('\n')).toEqual(
    expect.arrayContaining(['namespace/seen-through-tower', `namespace/${NS}`, 'namespace/kube-system']),
  );
  const who = await kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  expect([who.exitCode, who.stdout, who.stderr]).toEqual([0, `system:serviceaccount:${NS}:tower-agent`, '']);
  const secrets = await kubectl(['get', 'secrets', '-n', NS]);
  expect(secrets.exitCode).not.toBe(0);
  expect(secrets.stderr).toContain(
    `User "system:serviceaccount:${NS}:tower-agent" cannot list resource "secrets"`,
  );
  expect(await tunnelBytes('from_agent')).toBeGreaterThan(before);
}

/** A pod of a chart, as the chart says it runs: its image, Running and Ready, non-root, read-only root. */
async function expectChartPod(release: string, image: string): Promise<Pod> {
  const pod = await releasePod(node().cp, NS, release);
  const [container] = pod.spec.containers;
  expect(pod.spec.containers).toHaveLength(1);
  expect(container?.image).toBe(image);
  expect(pod.status.phase).toBe('Running');
  expect(podCondition(pod, 'Ready')).toBe('True');
  expect(pod.status.containerStatuses?.map((s) => [s.ready, s.restartCount, s.image])).toEqual([
    [true, 0, image],
  ]);
  expect(pod.spec.securityContext).toMatchObject({
    runAsNonRoot: true,
    runAsUser: NONROOT,
    runAsGroup: NONROOT,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  expect(container?.securityContext).toMatchObject({
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  return pod;
}

/** What the kernel says about the app in the container, and a probe run beside it. */
async function expectHardened(pod: Pod, app: string): Promise<void> {
  const id = await containerIdentity(node().cp, pod);
  expect(id).toEqual<ContainerIdentity>({
    app: expect.stringContaining(`/app/main.js`) as string,
    appUids: [NONROOT, NONROOT, NONROOT, NONROOT],
    appGids: [NONROOT, NONROOT, NONROOT, NONROOT],
    appCapEff: '0000000000000000',
    appNoNewPrivs: '1',
    appSeccomp: '2',
    uid: NONROOT,
    gid: NONROOT,
    rootWrite: 'EROFS',
    tmpWrite: 'ok',
  });
  expect(id.app).toContain(app === 'tower-proxy' ? '--host=0.0.0.0' : `--name=${CLUSTER}`);
}

beforeAll(async () => {
  rootBefore = await rootNetworkState();
  dir = mkdtempSync(join(tmpdir(), 'knet-tower-node-'));
  const images = await ensureImages(['pause', 'tower-proxy', 'tower-agent']);
  bed = await NodeBed.start({
    sandboxImage: images.pause,
    images: [images['tower-proxy'], images['tower-agent']],
  });
  // The Cluster CRD (charts/tower-proxy/crds, as KubeSphere has it installed) and the namespace.
  await prepareTowerHost(bed.cp);
}, 900_000);

afterAll(async () => {
  for (const f of forwards) await f.proc.stop();
  try {
    await bed?.stop();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

describe('tower-proxy and tower-agent as pods of their charts on a real node', () => {
  const proxyImage = `ghcr.io/knet/tower-proxy:${chartAppVersion('tower-proxy')}`;
  const agentImage = `ghcr.io/knet/tower-agent:${chartAppVersion('tower-agent')}`;
  let kubeconfig: string;
  let clusterIp: string;

  it('tower-proxy: helm install --wait; its pod runs the image built here, Ready, as the chart says', async () => {
    const cp = node().cp;
    await installTowerProxyChart(cp);
    const pod = await expectChartPod('tower-proxy', proxyImage);
    await expectHardened(pod, 'tower-proxy');
    // It published the fingerprint agents pin, as the chart's NOTES say.
    const version = JSON.parse(
      await cp.kubectlOk(['get', '--raw', `/api/v1/namespaces/${NS}/services/tower:8080/proxy/version`]),
    ) as { fingerprint: string };
    expect(
      await cp.kubectlOk(['-n', NS, 'get', 'configmap', 'tower-proxy', '-o', 'jsonpath={.data.fingerprint}']),
    ).toBe(version.fingerprint);
  });

  it('a proxy-type Cluster gets a token, the Service mc-alpha (backed by the proxy pod) and a kubeconfig for its ClusterIP', async () => {
    const cp = node().cp;
    const c = await createReadyCluster(cp, CLUSTER);
    const svc = JSON.parse(
      await cp.kubectlOk(['get', 'service', `mc-${CLUSTER}`, '-n', NS, '-o', 'json']),
    ) as {
      spec: { clusterIP: string; ports: { port: number; targetPort: number }[] };
    };
    clusterIp = svc.spec.clusterIP;
    const conn = c.spec!.connection!;
    expect(svc.spec.ports.map((p) => [p.port, p.targetPort])).toEqual([
      [6443, conn.kubernetesAPIServerPort],
      [80, conn.kubesphereAPIServerPort],
    ]);
    expect(conn.kubernetesAPIEndpoint).toBe(`https://${clusterIp}:6443`);
    kubeconfig = writeClusterKubeconfig(c, join(dir, `${CLUSTER}.kubeconfig`));
    expect(kubeconfigTls(Buffer.from(conn.kubeconfig!, 'base64').toString()).server).toBe(
      `https://${clusterIp}:6443`,
    );
    // The Service's selector finds the proxy pod (the chart's --service-selector).
    const proxyPod = await releasePod(cp, NS, 'tower-proxy');
    await until(
      () => `mc-${CLUSTER} to have the proxy pod as its endpoint`,
      async () =>
        (
          await cp.kubectlOk([
            'get',
            'endpointslices',
            '-n',
            NS,
            '-l',
            `kubernetes.io/service-name=mc-${CLUSTER}`,
            '-o',
            'jsonpath={.items[*].endpoints[*].addresses[*]}',
          ])
        ).trim() === proxyPod.status.podIP,
      20_000,
    );
    // No agent yet.
    expect(await condition('AgentAvailable')).not.toBe('True');
  });

  it('tower-agent: helm install --wait, dialling the ClusterIP of the Service tower; it connects and the Cluster is AgentAvailable', async () => {
    const cp = node().cp;
    const values = await towerAgentValues(cp, CLUSTER);
    expect(values.proxyServer).toMatch(/^http:\/\/203\.0\.113\.\d+:8080$/);
    await installTowerAgentChart(cp, values);
    // Ready means connected (the chart's readiness probe is the agent's /readyz).
    const pod = await expectChartPod('tower-agent', agentImage);
    await expectHardened(pod, 'tower-agent');
    await until(
      () => 'the Cluster to say AgentAvailable=True',
      async () => (await condition('AgentAvailable')) === 'True',
      30_000,
    );
    // Nothing the proxy asked of the API server with the chart's RBAC was refused.
    const proxyPod = await releasePod(cp, NS, 'tower-proxy');
    const logs = await cp.kubectlOk(['logs', '-n', NS, proxyPod.metadata.name]);
    expect(logs.split('\n').filter((l) => /forbidden|"code":403\b/i.test(l))).toEqual([]);
    expect(await proxyMetrics()).toMatch(
      new RegExp(`^tower_proxy_agent_sessions\\{cluster="${CLUSTER}"\\} 1$`, 'm'),
    );
  });

  it("the Cluster's kubeconfig, as written, works with the real kubectl on the node through the tunnel", async () => {
    await node().cp.kubectlOk(['create', 'namespace', 'seen-through-tower']);
    await expectThroughTunnel((args) => kubectlOnNode(node(), kubeconfig, args));
  });

  it('the same kubeconfig from the test process, through kubectl port-forward to mc-alpha; straight at the API server it is refused', async () => {
    const cp = node().cp;
    const forward = await portForward(cp, NS, `svc/mc-${CLUSTER}`, 6443);
    forwards.push(forward);
    try {
      await expectThroughTunnel((args) =>
        cp.kubectl(
          [`--server=https://127.0.0.1:${forward.port}`, `--tls-server-name=${clusterIp}`, ...args],
          {
            kubeconfig,
          },
        ),
      );
    } finally {
      await forward.proc.stop();
    }
    // Straight at the API server: the kubeconfig's CA does not sign the API server's certificate…
    const direct = await cp.kubectl([`--server=${cp.server}`, 'get', 'namespaces'], { kubeconfig });
    expect(direct.exitCode).not.toBe(0);
    expect(direct.stderr).toContain('certificate signed by unknown authority');
    // …and the API server does not take its client certificate (anonymous: refused).
    const tls = kubeconfigTls(readFileSync(kubeconfig, 'utf8'));
    const status = await new Promise<number | undefined>((resolve, reject) => {
      httpsGet(
        `${cp.server}/api/v1/namespaces`,
        { cert: tls.cert, key: tls.key, rejectUnauthorized: false },
        (res) => (res.resume(), resolve(res.statusCode)),
      ).on('error', reject);
    });
    expect([401, 403]).toContain(status);
  });

  it("the kubeconfig's own address (mc-alpha's ClusterIP) works from a pod of the host cluster, as ks-apiserver uses it", async () => {
    const cp = node().cp;
    const tls = kubeconfigTls(await cp.kubectlOk(['config', 'view', '--raw'], { kubeconfig }));
    expect(tls.server).toBe(`https://${clusterIp}:6443`);
    const proxyPod = await releasePod(cp, NS, 'tower-proxy');
    // Node's https client, in the proxy pod, given the kubeconfig's TLS material on stdin.
    const script = `
      let input = '';
      process.stdin.on('data', (d) => (input += d)).on('end', () => {
        const kc = JSON.parse(input);
        require('https').get(kc.server + '/api/v1/namespaces', { ca: kc.ca, cert: kc.cert, key: kc.key }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d)).on('end', () =>
            console.log(JSON.stringify({ status: res.statusCode, names: JSON.parse(body).items?.map((i) => i.metadata.name) })));
        }).on('error', (e) => { console.log(JSON.stringify({ error: e.message })); });
      });`;
    const out = await cp.kubectlOk(
      ['exec', '-i', '-n', NS, proxyPod.metadata.name, '--', '/nodejs/bin/node', '-e', script],
      { input: JSON.stringify(tls) },
    );
    const answer = JSON.parse(out) as { status?: number; names?: string[]; error?: string };
    expect(answer).toEqual({
      status: 200,
      names: expect.arrayContaining(['seen-through-tower', NS]) as string[],
    });
  });

  it('helm uninstall of both releases leaves no pod and no object of them; the Cluster loses its agent', async () => {
    const cp = node().cp;
    await helmOk(cp, ['uninstall', 'tower-agent', '-n', NS, '--wait', `--timeout=${HELM_WAIT}`], HELM_RUN_MS);
    await until(
      () => 'the agent pod to be gone',
      async () => (await releasePods(cp, NS, 'tower-agent')).length === 0,
      60_000,
    );
    // Up to 30 s after the proxy started: it keeps AgentAvailable for --agent-grace-period (30 s)
    // after it starts leading, while agents redial after a restart.
    await until(
      () => 'the Cluster to say AgentAvailable=False',
      async () => (await condition('AgentAvailable')) === 'False',
      60_000,
    );
    // The Cluster is KubeSphere's, not the chart's: removed as KubeSphere would, its Service goes with it.
    await cp.kubectlOk(['delete', 'clusters.cluster.kubesphere.io', CLUSTER]);
    await until(
      () => `the Service mc-${CLUSTER} to be deleted`,
      async () => (await cp.kubectl(['get', 'service', `mc-${CLUSTER}`, '-n', NS])).exitCode !== 0,
      30_000,
    );
    await helmOk(cp, ['uninstall', 'tower-proxy', '-n', NS, '--wait', `--timeout=${HELM_WAIT}`], HELM_RUN_MS);
    await until(
      () => 'the proxy pod to be gone',
      async () => (await releasePods(cp, NS, 'tower-proxy')).length === 0,
      60_000,
    );
    expect((await helmOk(cp, ['list', '--all-namespaces', '-q'])).trim()).toBe('');
    expect(await releaseObjects(cp, 'tower-agent')).toEqual([]);
    expect(await releaseObjects(cp, 'tower-proxy')).toEqual([]);
    expect((await cp.kubectlOk(['get', 'pods', '-n', NS, '-o', 'name'])).trim()).toBe('');
    // What stays in the namespace is the state the proxy keeps on purpose (the host key agents pin,
    // the CA of the kubeconfigs, the info ConfigMap: a reinstall keeps its fingerprint) and what
    // Kubernetes puts in every namespace.
    const left = await cp.kubectlOk([
      'get',
      'all,secrets,configmaps,serviceaccounts,roles,rolebindings,leases,endpointslices',
      '-n',
      NS,
      '-o',
      'name',
    ]);
    expect(left.split('\n').filter(Boolean).sort()).toEqual([
      'configmap/kube-root-ca.crt',
      'configmap/tower-proxy',
      'secret/tower-proxy-ca',
      'secret/tower-proxy-host-key',
      'serviceaccount/default',
    ]);
  });

  it('the root network namespace is as it was (the node lives in its own)', async () => {
    expect(await rootNetworkState()).toBe(rootBefore);
  });
});
