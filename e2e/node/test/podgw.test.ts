/**
 * charts/pod-gateway on a real node: the kubelet, containerd and runc run our images (gateway-init,
 * gateway-sidecar, gateway-webhook, client-init, client-sidecar) as the chart and the webhook
 * specify them. The API server calls the webhook through its Service (kube-proxy's rules in the
 * node's namespace); the kubelet runs what the webhook injected; a Job's traffic and DNS leave
 * through the gateway to "the internet" on the node's uplink.
 */
import {
  CLUSTER_DNS_IP,
  INTERNET_NAME,
  INTERNET_PORT,
  NodeBed,
  UPLINK_NETWORK,
  clusterDnsObjects,
  ensureImages,
  installPodGatewayChart,
  POD_GATEWAY_IMAGES,
  helmOrReport,
  kubectlOrReport,
  readyEndpoints,
  rootNetworkState,
  startInternetServer,
  startUplinkDns,
  untilNone,
  type LabProcess,
  type UplinkDns,
} from '@knet/testing';

jest.setTimeout(20 * 60_000);

const log = (l: string) => process.stderr.write(`podgw: ${l}\n`);

/** The release namespace (gateway and webhook) and the namespace whose pods are routed. */
const NS = 'vpn-gateway';
const ROUTED = 'media';
const RELEASE = 'pod-gateway';
const GATEWAY_NAME = `${RELEASE}.${NS}.svc.cluster.local`;
/** The overlay's gateway address (VXLAN_IP_NETWORK.1): the clients' router and nameserver. */
const OVERLAY_GATEWAY = '172.16.0.1';
/** CapEff of a process with exactly NET_BIND_SERVICE (10), NET_ADMIN (12) and NET_RAW (13). */
const CLIENT_CAPS = (1n << 10n) | (1n << 12n) | (1n << 13n);
const CAP_NET_ADMIN = 1n << 12n;

interface Container {
  name: string;
  image: string;
  restartPolicy?: string;
  securityContext?: {
    privileged?: boolean;
    runAsUser?: number;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface ContainerStatus {
  name: string;
  ready: boolean;
  started?: boolean;
  restartCount: number;
  state: {
    running?: { startedAt: string };
    terminated?: { exitCode: number; reason?: string; startedAt: string; finishedAt: string };
    waiting?: { reason?: string };
  };
}
interface Pod {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    dnsPolicy?: string;
    dnsConfig?: { nameservers?: string[]; searches?: string[] };
    initContainers?: Container[];
    containers: Container[];
    volumes?: { name: string; configMap?: { name: string } }[];
    securityContext?: { sysctls?: { name: string; value: string }[] };
  };
  status: {
    phase: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

let bed: NodeBed | undefined;
let rootBefore = '';
let dns: UplinkDns | undefined;
let internet: LabProcess | undefined;
let busybox = '';
let refs: Record<string, string> = {};
let installed = false;

beforeAll(async () => {
  rootBefore = await rootNetworkState();
  const images = await ensureImages(['pause', ...POD_GATEWAY_IMAGES], log);
  refs = Object.fromEntries(Object.entries(images).map(([k, v]) => [k, v.ref]));
  busybox = images.busybox.ref;
  const { pause, ...rest } = images;
  bed = await NodeBed.start({
    sandboxImage: pause,
    images: Object.values(rest),
    uplink: true,
    log,
    // The gateway pod asks for net.ipv4.ip_forward=1 (gatewayInit.ipForward: podSysctl); kubelets
    // refuse unsafe sysctls they were not told to allow.
    kubelet: { allowedUnsafeSysctls: ['net.ipv4.ip_forward'] },
  });
  internet = await startInternetServer(bed);
  dns = await startUplinkDns(bed);
});

afterAll(async () => {
  if (bed && installed) await bed.cp.helm(['uninstall', RELEASE, '-n', NS, '--wait']).catch(() => undefined);
  await dns?.close().catch(() => undefined);
  await internet?.kill().catch(() => undefined);
  await bed?.stop();
});

const node = () => {
  if (!bed) throw new Error('the node did not start');
  return bed;
};

async function getPod(ns: string, name: string): Promise<Pod> {
  return JSON.parse(await node().cp.kubectlOk(['get', 'pod', '-n', ns, name, '-o', 'json'])) as Pod;
}

/** `kubectl exec` in a container of a pod; returns stdout. */
async function exec(ns: string, pod: string, container: string, argv: string[]): Promise<string> {
  return kubectlOrReport(node(), ['exec', '-n', ns, pod, '-c', container, '--', ...argv], [NS, ns], 60_000);
}

/** CapEff of a container's PID 1, read from /proc inside it. */
async function effectiveCaps(ns: string, pod: string, container: string): Promise<bigint> {
  const status = await exec(ns, pod, container, ['cat', '/proc/1/status']);
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!hex) throw new Error(`no CapEff in /proc/1/status of ${ns}/${pod} ${container}:\n${status}`);
  return BigInt(`0x${hex}`);
}

describe('charts/pod-gateway on a real node', () => {
  let gatewayIp = '';

  it('installs with helm --wait: the gateway and both webhook replicas run and are Ready', async () => {
    const b = node();
    const cp = b.cp;
    await cp.kubectlOk(['create', 'namespace', NS]);
    await cp.kubectlOk(['create', 'namespace', ROUTED]);
    // The cluster DNS Service the chart looks up for K8S_DNS_IPS (values clusterDnsService).
    await cp.apply(clusterDnsObjects());
    installed = true;
    await installPodGatewayChart(b, { release: RELEASE, namespace: NS, routedNamespaces: [ROUTED] });

    const pods = JSON.parse(await cp.kubectlOk(['get', 'pods', '-n', NS, '-o', 'json'])) as { items: Pod[] };
    const component = (c: string) =>
      pods.items.filter((p) => p.metadata.labels?.['app.kubernetes.io/component'] === c);
    const gateways = component('gateway');
    expect(component('webhook')).toHaveLength(2);
    expect(gateways).toHaveLength(1);
    expect(pods.items).toHaveLength(3);
    for (const p of pods.items) {
      expect({ pod: p.metadata.name, phase: p.status.phase }).toEqual({
        pod: p.metadata.name,
        phase: 'Running',
      });
      expect(p.status.conditions).toContainEqual(expect.objectContaining({ type: 'Ready', status: 'True' }));
      for (const c of [...(p.status.initContainerStatuses ?? []), ...(p.status.containerStatuses ?? [])])
        expect({ container: c.name, restarts: c.restartCount }).toEqual({ container: c.name, restarts: 0 });
    }
    const gateway = gateways[0] as Pod;
    // ip_forward came from the pod's sysctl, which the kubelet allowed; gateway-init ran and finished.
    expect(gateway.spec.securityContext?.sysctls).toContainEqual({ name: 'net.ipv4.ip_forward', value: '1' });
    expect(gateway.status.initContainerStatuses?.[0]?.state.terminated).toMatchObject({ exitCode: 0 });
    // …so gateway-init ran unprivileged, with the two capabilities the chart grants.
    const gatewayInit = gateway.spec.initContainers?.[0];
    expect(gatewayInit?.name).toBe('gateway-init');
    expect(gatewayInit?.securityContext?.privileged).toBeUndefined();
    expect(gatewayInit?.securityContext?.capabilities).toEqual({
      drop: ['ALL'],
      add: ['NET_ADMIN', 'NET_RAW'],
    });
    const gw = gateway.status.podIP ?? '';
    expect(gw).toMatch(/^198\.51\.100\.\d+$/);
    gatewayIp = gw;
    // The headless Service lists the ready gateway; the cluster DNS answers its name with it.
    expect(await readyEndpoints(b, NS, RELEASE)).toEqual([gw]);
    await dns!.publish(GATEWAY_NAME, gw);
    expect(
      await exec(NS, gateway.metadata.name, 'gateway-sidecar', ['cat', '/proc/sys/net/ipv4/ip_forward']),
    ).toBe('1');
    // The settings the chart wrote: K8S_DNS_IPS looked up from kube-system/kube-dns at install.
    const settings = await cp.kubectlOk([
      'get',
      'configmap',
      RELEASE,
      '-n',
      ROUTED,
      '-o',
      'jsonpath={.data.settings\\.sh}',
    ]);
    expect(settings).toContain(`K8S_DNS_IPS="${CLUSTER_DNS_IP}"`);
    expect(settings).toContain(`GATEWAY_NAME="${GATEWAY_NAME}"`);
  });

  it('a pod created in the routed namespace is injected by the webhook and run by the kubelet', async () => {
    const b = node();
    const cp = b.cp;
    await cp.apply(
      [
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'client', namespace: ROUTED },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{ name: 'app', image: busybox, command: ['sleep', '3600'] }],
          },
        },
      ],
      { namespace: ROUTED },
    );
    await kubectlOrReport(
      b,
      ['wait', '--for=condition=Ready', 'pod/client', '-n', ROUTED, '--timeout=150s'],
      [NS, ROUTED],
    );
    const pod = await getPod(ROUTED, 'client');

    // The webhook's mark, and what it added: client-init first, client-sidecar as a native sidecar.
    expect(pod.metadata.annotations?.['pod-gateway.knet.dev/gateway']).toBe(`${RELEASE}.${NS}`);
    const inits = pod.spec.initContainers ?? [];
    expect(inits.map((c) => [c.name, c.image, c.restartPolicy])).toEqual([
      ['gateway-init', refs['client-init'], undefined],
      ['gateway-sidecar', refs['client-sidecar'], 'Always'],
    ]);
    expect(pod.spec.containers.map((c) => c.name)).toEqual(['app']);
    for (const c of inits) {
      expect(c.securityContext).toMatchObject({
        runAsUser: 0,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE'] },
      });
      expect(c.volumeMounts).toContainEqual(
        expect.objectContaining({ name: 'gateway-configmap', mountPath: '/config', readOnly: true }),
      );
    }
    expect(pod.spec.containers[0]?.securityContext).toBeUndefined();
    expect(pod.spec.volumes).toContainEqual(
      expect.objectContaining({
        name: 'gateway-configmap',
        configMap: expect.objectContaining({ name: RELEASE }),
      }),
    );
    expect(pod.spec.dnsPolicy).toBe('None');
    expect(pod.spec.dnsConfig?.nameservers).toEqual([OVERLAY_GATEWAY]);

    // The kubelet ran them in order: client-init completed before the sidecar started, which runs.
    const [init, sidecar] = pod.status.initContainerStatuses ?? [];
    expect(init?.name).toBe('gateway-init');
    expect(init?.state.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(sidecar?.name).toBe('gateway-sidecar');
    expect(sidecar?.state.running).toBeDefined();
    expect(sidecar?.started).toBe(true);
    expect(Date.parse(init?.state.terminated?.finishedAt ?? '')).toBeLessThanOrEqual(
      Date.parse(sidecar?.state.running?.startedAt ?? ''),
    );
    expect(pod.status.containerStatuses?.[0]).toMatchObject({ name: 'app', ready: true });

    // Inside the pod: the resolv.conf the kubelet wrote names the gateway, the default route is the
    // overlay, the ConfigMap is mounted, and only the injected containers hold the capabilities.
    const resolv = await exec(ROUTED, 'client', 'app', ['cat', '/etc/resolv.conf']);
    expect(resolv.split('\n').filter((l) => l.startsWith('nameserver'))).toEqual([
      `nameserver ${OVERLAY_GATEWAY}`,
    ]);
    const routes = await exec(ROUTED, 'client', 'app', ['ip', 'route']);
    expect(routes).toMatch(
      new RegExp(`^default via ${OVERLAY_GATEWAY.replace(/\./g, '\\.')} dev vxlan0`, 'm'),
    );
    expect(routes).toMatch(new RegExp(`^${gatewayIp.replace(/\./g, '\\.')} via \\S+ dev eth0`, 'm'));
    expect(await exec(ROUTED, 'client', 'gateway-sidecar', ['cat', '/config/settings.sh'])).toContain(
      `GATEWAY_NAME="${GATEWAY_NAME}"`,
    );
    expect(await effectiveCaps(ROUTED, 'client', 'gateway-sidecar')).toBe(CLIENT_CAPS);
    expect((await effectiveCaps(ROUTED, 'client', 'app')) & CAP_NET_ADMIN).toBe(0n);
  });

  it("routes a Job's traffic and DNS through the gateway, and the Job completes", async () => {
    const b = node();
    const cp = b.cp;
    const url = `http://${INTERNET_NAME}:${INTERNET_PORT}/from-job`;
    await cp.apply(
      [
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: { name: 'fetch', namespace: ROUTED },
          spec: {
            backoffLimit: 0,
            template: {
              spec: {
                restartPolicy: 'Never',
                containers: [
                  {
                    name: 'fetch',
                    image: busybox,
                    // (Debian's static busybox wget crashes with -T; `timeout` bounds it instead.)
                    command: [
                      'sh',
                      '-c',
                      `nslookup ${INTERNET_NAME} && ` +
                        `for i in 1 2 3 4 5; do timeout 5 wget -q -O /tmp/page ${url} && break; sleep 1; done; ` +
                        'echo "page: $(cat /tmp/page)"; test -s /tmp/page',
                    ],
                  },
                ],
              },
            },
          },
        },
      ],
      { namespace: ROUTED },
    );
    await kubectlOrReport(
      b,
      ['wait', '--for=condition=Complete', 'job/fetch', '-n', ROUTED, '--timeout=150s'],
      [NS, ROUTED],
    );
    const job = JSON.parse(
      await cp.kubectlOk(['get', 'pods', '-n', ROUTED, '-l', 'job-name=fetch', '-o', 'json']),
    ) as {
      items: Pod[];
    };
    expect(job.items).toHaveLength(1);
    const jobPod = job.items[0] as Pod;
    const jobIp = jobPod.status.podIP ?? '';
    expect(jobPod.metadata.annotations?.['pod-gateway.knet.dev/gateway']).toBe(`${RELEASE}.${NS}`);
    expect(jobPod.status.phase).toBe('Succeeded');
    // The native sidecar was stopped by the kubelet once the Job's container had ended.
    const sidecar = jobPod.status.initContainerStatuses?.find((c) => c.name === 'gateway-sidecar');
    expect(sidecar?.state.terminated).toBeDefined();

    const logs = await cp.kubectlOk(['logs', '-n', ROUTED, jobPod.metadata.name, '-c', 'fetch']);
    // The name was resolved by the gateway (the pod's only nameserver), which asked the uplink.
    expect(logs).toContain(`Server:\t\t${OVERLAY_GATEWAY}`);
    expect(logs).toMatch(new RegExp(`Address:\\s+${UPLINK_NETWORK.internet.replace(/\./g, '\\.')}\\b`));
    // The internet saw the gateway's address (its NAT), never the Job pod's.
    expect(logs).toContain(`page: internet saw ${gatewayIp}`);
    const seen = (internet?.output() ?? '')
      .split('\n')
      .filter((l) => l.endsWith(' /from-job'))
      .map((l) => l.split(' ')[1]);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([gatewayIp]));
    expect(jobIp).toMatch(/^198\.51\.100\.\d+$/);
    expect(jobIp).not.toBe(gatewayIp);
    // The uplink's nameserver was asked by the gateway pod, not by the Job's.
    const queries = (dns?.proc.output() ?? '')
      .split('\n')
      .filter((l) => l.includes(`query[A] ${INTERNET_NAME} from`));
    expect(queries.length).toBeGreaterThan(0);
    for (const q of queries) expect(q).toMatch(new RegExp(`from ${gatewayIp.replace(/\./g, '\\.')}$`));
  });

  it('helm uninstall leaves nothing of the release', async () => {
    const b = node();
    const cp = b.cp;
    await helmOrReport(b, ['uninstall', RELEASE, '-n', NS, '--wait', '--timeout=2m'], [NS]);
    installed = false;
    await untilNone(b, `the pods of ${NS} gone`, ['pods', '-n', NS]);
    const left = await cp.kubectlOk([
      'get',
      'deployments,replicasets,pods,services,configmaps,secrets,serviceaccounts,roles,rolebindings,poddisruptionbudgets,networkpolicies',
      '-A',
      '-l',
      `app.kubernetes.io/instance=${RELEASE}`,
      '-o',
      'name',
    ]);
    expect(left.trim()).toBe('');
    const cluster = await cp.kubectlOk([
      'get',
      'mutatingwebhookconfigurations,clusterroles,clusterrolebindings',
      '-l',
      `app.kubernetes.io/instance=${RELEASE}`,
      '-o',
      'name',
    ]);
    expect(cluster.trim()).toBe('');
    expect((await cp.kubectl(['get', 'configmap', RELEASE, '-n', ROUTED])).exitCode).not.toBe(0);
    expect((await cp.helm(['list', '-A', '-q'])).stdout.trim()).toBe('');
  });

  it('stops the node and leaves the root network namespace as it was', async () => {
    const b = node();
    await dns?.close();
    dns = undefined;
    await internet?.kill();
    internet = undefined;
    await b.stop();
    bed = undefined;
    expect(b.leftovers()).toEqual([]);
    expect(await rootNetworkState()).toBe(rootBefore);
  });
});
