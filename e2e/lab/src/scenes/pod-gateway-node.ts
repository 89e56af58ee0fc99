/**
 * Scene `pod-gateway` with `--with-node`: charts/pod-gateway on the real node. `helm install --wait`
 * runs the gateway pod (gateway-init, gateway-sidecar) and gateway-webhook from the images
 * `npm run images` builds; the API server calls the webhook through its Service (kube-proxy's rules
 * in the node's namespace); the kubelet runs the client pod `web` as the webhook admitted it
 * (client-init first, client-sidecar as a native sidecar), and its traffic and DNS leave through
 * the gateway to "the internet" on the node's uplink: an HTTP server that says which address it
 * saw, and a dnsmasq that is also the cluster DNS stand-in (`kube-system/kube-dns`, which the chart
 * looks up). The operator's values are the e2e/node suite's (`podGatewayNodeValues`): no VPN
 * client, the gateway NATs out of its eth0.
 */
import {
  INTERNET_NAME,
  INTERNET_PORT,
  UPLINK_NETWORK,
  clusterDnsObjects,
  installPodGatewayChart,
  POD_GATEWAY_IMAGES,
  kubectlOrReport,
  oneLine,
  readyEndpoints,
  startInternetServer,
  startUplinkDns,
  type NodeBed,
} from '@knet/testing';
import { registerScene, type Row } from '../scene';
import { imagesOnNode, podObject, podsIn, type PodObject } from './node';

/** The release namespace (gateway and webhook) and the namespace whose pods are routed. */
const NS = 'vpn-gateway';
const ROUTED = 'media';
const RELEASE = 'pod-gateway';
const GATEWAY_NAME = `${RELEASE}.${NS}.svc.cluster.local`;
/** The overlay's gateway address (VXLAN_IP_NETWORK.1): the clients' router and nameserver. */
const OVERLAY_GATEWAY = '172.16.0.1';
const CLIENT = 'web';
const JOB = 'fetch';
const URL = `http://${INTERNET_NAME}:${INTERNET_PORT}`;

const ready = (p: PodObject) => p.status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';

registerScene({
  name: 'pod-gateway',
  onNode: true,
  title:
    'charts/pod-gateway on the node: the gateway and webhook pods, a client pod the webhook injected, routed to "the internet" on the uplink',
  needs: ['node'],
  bundles: [],
  async up(ctx) {
    const bed = ctx.node();
    const cp = bed.cp;
    const onNode = `kubectl --kubeconfig ${ctx.shownDir}/node.kubeconfig`;
    const images = await imagesOnNode(ctx, bed, POD_GATEWAY_IMAGES);

    ctx.progress(`"the internet" on the uplink ${UPLINK_NETWORK.internet}: an HTTP server and dnsmasq`);
    const internet = await startInternetServer(bed);
    ctx.defer('the internet server on the uplink', () => internet.kill());
    const dns = await startUplinkDns(bed);
    ctx.defer('dnsmasq on the uplink', () => dns.close());

    // The namespaces, the release and its pods go with the node (its teardown).
    await cp.kubectlOk(['create', 'namespace', NS]);
    await cp.kubectlOk(['create', 'namespace', ROUTED]);
    await cp.apply(clusterDnsObjects());
    ctx.progress(`helm install ${RELEASE} charts/pod-gateway --wait (routed namespace ${ROUTED})`);
    await installPodGatewayChart(bed, { release: RELEASE, namespace: NS, routedNamespaces: [ROUTED] });
    const gateway = await gatewayPod(bed);
    const gatewayIp = gateway.status.podIP ?? '';
    // What the cluster DNS would answer for the headless Service: the ready gateway.
    const endpoints = await readyEndpoints(bed, NS, RELEASE);
    if (endpoints.join() !== gatewayIp)
      throw new Error(
        `the Service ${RELEASE} lists ${endpoints.join(', ') || 'nothing'}, not the gateway ${gatewayIp}`,
      );
    await dns.publish(GATEWAY_NAME, gatewayIp);

    ctx.progress(`creating pod ${CLIENT} in ${ROUTED}: the webhook injects client-init and client-sidecar`);
    await cp.apply(
      [
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: CLIENT, namespace: ROUTED },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{ name: 'app', image: images.busybox.ref, command: ['sleep', '86400'] }],
          },
        },
      ],
      { namespace: ROUTED },
    );
    await kubectlOrReport(
      bed,
      ['wait', '--for=condition=Ready', `pod/${CLIENT}`, '-n', ROUTED, '--timeout=150s'],
      [NS, ROUTED],
    );

    /** `sh -c script` in the client's app container (busybox); stdout, or one line why not. */
    const inClient = async (script: string): Promise<string> => {
      const r = await cp.kubectl(['exec', '-n', ROUTED, CLIENT, '-c', 'app', '--', 'sh', '-c', script], {
        timeoutMs: 30_000,
      });
      if (r.exitCode !== 0)
        throw new Error(
          `in pod ${CLIENT}: ${script}: ${oneLine(r.stderr || r.stdout) || `exit ${r.exitCode}`}`,
        );
      return r.stdout;
    };
    let requests = 0;

    const rows: Row[] = [
      {
        component: 'gateway and webhook',
        proof:
          'the release: the gateway pod (gateway-init done, gateway-sidecar) and 2 gateway-webhook pods, Running and Ready',
        command: `${onNode} -n ${NS} get pods -o wide`,
        async check() {
          const pods = await podsIn(cp, NS);
          const component = (c: string) =>
            pods.filter((p) => p.metadata.labels?.['app.kubernetes.io/component'] === c);
          const notReady = pods.filter((p) => p.status.phase !== 'Running' || !ready(p));
          if (notReady.length > 0)
            throw new Error(
              `not Running and Ready: ${notReady.map((p) => `${p.metadata.name} (${p.status.phase ?? '?'})`).join(', ')}`,
            );
          const [gw, ...others] = component('gateway');
          if (!gw || others.length > 0) throw new Error(`${component('gateway').length} gateway pods, not 1`);
          if (gw.status.podIP !== gatewayIp)
            throw new Error(
              `the gateway pod is now ${gw.status.podIP ?? '?'}, not ${gatewayIp} (the name ${GATEWAY_NAME} is stale)`,
            );
          const webhooks = component('webhook').length;
          if (webhooks !== 2) throw new Error(`${webhooks} webhook pods, not 2`);
          return `gateway ${gw.metadata.name} ${gatewayIp}, ${webhooks} webhook pods; all Running and Ready`;
        },
      },
      {
        component: `client ${CLIENT}`,
        proof: `admitted by gateway-webhook (client-init first, client-sidecar native sidecar), Ready, default route via the overlay`,
        command: `${onNode} -n ${ROUTED} get pod ${CLIENT} -o 'custom-columns=NAME:.metadata.name,INIT:.spec.initContainers[*].image,CONTAINERS:.spec.containers[*].name'; ${onNode} -n ${ROUTED} exec ${CLIENT} -c app -- ip route`,
        async check() {
          const pod = await podObject(cp, ROUTED, CLIENT);
          const inits = pod.spec.initContainers ?? [];
          const [first, second] = inits;
          if (
            inits.length !== 2 ||
            first?.image !== images['client-init'].ref ||
            second?.image !== images['client-sidecar'].ref ||
            second.restartPolicy !== 'Always'
          )
            throw new Error(
              `init containers ${inits.map((c) => `${c.name}=${c.image}`).join(', ') || 'none'}: not admitted by the webhook`,
            );
          if (!ready(pod)) throw new Error(`pod ${CLIENT} is not Ready (${pod.status.phase ?? '?'})`);
          const route = /^default via (\S+) dev (\S+)/m.exec(await inClient('ip route'));
          if (route?.[1] !== OVERLAY_GATEWAY)
            throw new Error(`default route ${route?.[0] ?? 'none'}, not via ${OVERLAY_GATEWAY}`);
          return `${pod.status.podIP ?? '?'}: ${first.name} (client-init) first, native sidecar ${second.name} (client-sidecar); default via ${OVERLAY_GATEWAY} dev ${route[2] ?? '?'}`;
        },
      },
      {
        component: 'routed',
        proof: `${URL} from ${CLIENT} sees the gateway's address (its NAT), never the client's`,
        command: `${onNode} -n ${ROUTED} exec ${CLIENT} -c app -- wget -qO- ${URL}/`,
        async check() {
          const path = `/lab-${++requests}`;
          // (Debian's static busybox wget crashes with -T; `timeout` bounds it instead.)
          const page = (await inClient(`timeout 10 wget -q -O - ${URL}${path}`)).trim();
          if (page !== `internet saw ${gatewayIp}`)
            throw new Error(`${URL}${path}: "${page}", not the gateway ${gatewayIp}`);
          const seen = internet
            .output()
            .split('\n')
            .filter((l) => l.endsWith(` ${path}`))
            .map((l) => l.split(' ')[1]);
          if (seen.join() !== gatewayIp)
            throw new Error(`the internet server logged ${seen.join(', ') || 'nothing'} for ${path}`);
          return `${INTERNET_NAME} (${UPLINK_NETWORK.internet}) saw ${gatewayIp}, the gateway`;
        },
      },
      {
        component: 'DNS via gateway',
        proof: `${CLIENT}'s only nameserver is the gateway (${OVERLAY_GATEWAY}); the uplink's nameserver is asked by the gateway, not the client`,
        command: `${onNode} -n ${ROUTED} exec ${CLIENT} -c app -- nslookup ${INTERNET_NAME}`,
        async check() {
          const resolv = await inClient('cat /etc/resolv.conf');
          const servers = resolv
            .split('\n')
            .filter((l) => l.startsWith('nameserver'))
            .map((l) => l.split(/\s+/)[1]);
          if (servers.join() !== OVERLAY_GATEWAY)
            throw new Error(`resolv.conf names ${servers.join(', ') || 'nothing'}`);
          const answer = await inClient(`nslookup ${INTERNET_NAME}`);
          if (
            !answer.includes(`Server:\t\t${OVERLAY_GATEWAY}`) ||
            !new RegExp(`Address:\\s+${UPLINK_NETWORK.internet.replace(/\./g, '\\.')}\\b`).test(answer)
          )
            throw new Error(`nslookup ${INTERNET_NAME}: ${oneLine(answer)}`);
          const askers = new Set(
            dns.proc
              .output()
              .split('\n')
              .filter((l) => l.includes(`query[A] ${INTERNET_NAME} from`))
              .map((l) => l.split(' ').at(-1)),
          );
          if (askers.size === 0 || [...askers].some((a) => a !== gatewayIp))
            throw new Error(
              `the uplink's nameserver was asked by ${[...askers].join(', ') || 'nobody'}, not only by the gateway ${gatewayIp}`,
            );
          return `${INTERNET_NAME} → ${UPLINK_NETWORK.internet} from ${OVERLAY_GATEWAY}; the uplink's nameserver saw only ${gatewayIp} ask`;
        },
      },
      {
        component: `Job ${JOB}`,
        proof: `a Job in ${ROUTED}: injected, its DNS and traffic through the gateway, it completes (the kubelet stops the native sidecar)`,
        command: `${onNode} -n ${ROUTED} get job ${JOB}; ${onNode} -n ${ROUTED} logs job/${JOB} -c ${JOB}`,
        live: false,
        check: () => routedJob(bed, images.busybox.ref, gatewayIp),
      },
    ];
    return rows;
  },
});

/** The release's one gateway pod. */
async function gatewayPod(bed: NodeBed): Promise<PodObject> {
  const pods = await podsIn(bed.cp, NS, 'app.kubernetes.io/component=gateway');
  if (pods.length !== 1 || !pods[0]?.status.podIP)
    throw new Error(
      `${pods.length} gateway pods (${pods.map((p) => p.metadata.name).join(', ')}), not one with an address`,
    );
  return pods[0];
}

/** Runs the Job `fetch` (once) and checks it went through the gateway; its one-line result. */
async function routedJob(bed: NodeBed, busybox: string, gatewayIp: string): Promise<string> {
  const cp = bed.cp;
  const started = Date.now();
  await cp.apply(
    [
      {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: JOB, namespace: ROUTED },
        spec: {
          backoffLimit: 0,
          template: {
            spec: {
              restartPolicy: 'Never',
              containers: [
                {
                  name: JOB,
                  image: busybox,
                  command: [
                    'sh',
                    '-c',
                    `nslookup ${INTERNET_NAME} && ` +
                      `for i in 1 2 3 4 5; do timeout 5 wget -q -O /tmp/page ${URL}/from-job && break; sleep 1; done; ` +
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
    bed,
    ['wait', '--for=condition=Complete', `job/${JOB}`, '-n', ROUTED, '--timeout=150s'],
    [NS, ROUTED],
  );
  const pods = await podsIn(cp, ROUTED, `job-name=${JOB}`);
  const [pod] = pods;
  if (pods.length !== 1 || !pod) throw new Error(`Job ${JOB} has ${pods.length} pods, not 1`);
  if (!pod.metadata.annotations?.['pod-gateway.knet.dev/gateway'])
    throw new Error(`the Job's pod ${pod.metadata.name} was not injected by the webhook`);
  const logs = await cp.kubectlOk(['logs', '-n', ROUTED, pod.metadata.name, '-c', JOB]);
  if (!logs.includes(`Server:\t\t${OVERLAY_GATEWAY}`))
    throw new Error(`the Job's nslookup did not ask the gateway: ${oneLine(logs)}`);
  if (!logs.includes(`page: internet saw ${gatewayIp}`)) throw new Error(`the Job's page: ${oneLine(logs)}`);
  return `${pod.metadata.name} (${pod.status.podIP ?? '?'}) ${pod.status.phase ?? '?'} in ${((Date.now() - started) / 1000).toFixed(1)} s; the internet saw ${gatewayIp}`;
}
