/**
 * Scene `pod-gateway`: pod-gateway's data plane in network namespaces (PodgwLab: a pod network with
 * a router, the cluster DNS, and behind a VPN-like link the "internet" host 203.0.113.100, all in
 * documentation ranges), with the real apps: gateway-init and gateway-sidecar in the gateway pod;
 * gateway-webhook registered with the member's kube-apiserver as charts/pod-gateway registers it
 * (WebhookBed). Two client pods are created through the member API server in the routed namespace
 * `media` — `web` (nat.conf: static .10, port 8080 → 80) and a generated `batch-…` — and the pod
 * runner plays the kubelet for the spec the webhook admitted: client-init, then client-sidecar, as
 * the stored spec says (image → app bundle, env, volumes, securityContext, dnsConfig).
 *
 * The kill switch row takes the VPN link down and counts, with PodgwLab's leak counters (iptables
 * counters in the lab's own namespaces), what still leaves: packets reaching the router for the VPN side's addresses (the
 * only way out of the pod network other than tun0) and queries for outside names reaching the
 * cluster DNS. Each counter is first shown to catch a deliberate leak: the client's same traffic
 * with the gateway's kill switch bypassed (an ACCEPT ahead of it in FORWARD, gateway-sidecar
 * paused meanwhile so it does not repair the rules under the proof), and an outside name asked of
 * the cluster DNS directly.
 */
import { writeFileSync } from 'node:fs';
import {
  INJECTED_IMAGE_APPS,
  LAB_WEBHOOK_ARGS,
  OVERLAY_GATEWAY,
  PodgwLab,
  WebhookBed,
  applyLabConfigMap,
  createPod,
  labWebhookResolvConf,
  oneLine,
  repository,
  runAdmittedPod,
  until,
  type LeakCounts,
  type NetHost,
  type PodgwGateway,
  type RunningPod,
} from '@knet/testing';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { registerScene, type Row } from '../scene';

const { CLUSTER_DNS, INTERNET, VPN_SERVER, VPN_SIDE } = PodgwLab;
/** The gateway's (and the webhook's) namespace, and the routed one the client pods are created in. */
const GATEWAY_NS = 'vpn';
const ROUTED_NS = 'media';
/** The chart release: the webhook's object names and the routed namespace's ConfigMap. */
const RELEASE = 'pod-gateway';
const GW_POD_IP = '192.0.2.10';
const GW_VPN_IP = '203.0.113.2';
/** nat.conf's static client and its forwarded port. */
const WEB_OVERLAY_IP = '172.16.0.10';
const FORWARDED = { public: 8080, pod: 80 };

registerScene({
  name: 'pod-gateway',
  title:
    'a gateway pod with a VPN link to an "internet" host; client pods admitted by gateway-webhook in the member, run from their stored spec',
  needs: ['clusters'],
  bundles: ['gateway-init', 'gateway-sidecar', 'client-init', 'client-sidecar', 'gateway-webhook'],
  async up(ctx) {
    const { member } = ctx.clusters();
    const kubectl = `kubectl --kubeconfig ${ctx.shownDir}/member.kubeconfig`;

    // The member's side (namespaces, ConfigMap, webhook) and the network's side (namespaces, the
    // gateway) come up together; each thing is handed to ctx.defer as soon as it exists.
    ctx.progress('network namespaces, the gateway pod, gateway-webhook in the member');
    let w: PodgwLab | undefined;
    let gw: PodgwGateway | undefined;
    let bed: WebhookBed | undefined;
    const sides = await Promise.allSettled([
      (async () => {
        w = await PodgwLab.create();
        const lab = w;
        ctx.defer('the pod-gateway network namespaces', () => lab.dispose());
        gw = await startGateway(lab);
        await lab.installLeakCounters();
      })(),
      (async () => {
        // API objects in the member go with it (the clusters scene stops it last).
        await member.kubectlOk(['create', 'namespace', GATEWAY_NS]);
        await member.kubectlOk(['create', 'namespace', ROUTED_NS]);
        await member.kubectlOk(['label', 'namespace', ROUTED_NS, 'routed-gateway=true']);
        await applyLabConfigMap(member, ROUTED_NS, RELEASE);
        // The chart's defaults (a native sidecar), with the lab's gateway and DNS.
        bed = await WebhookBed.start(member, {
          name: RELEASE,
          namespace: GATEWAY_NS,
          namespaceLabel: { key: 'routed-gateway', value: 'true' },
          args: [...LAB_WEBHOOK_ARGS],
          resolvConf: labWebhookResolvConf(GATEWAY_NS),
        });
        const started = bed;
        ctx.defer('gateway-webhook', () => started.remove());
      })(),
    ]);
    for (const r of sides) if (r.status === 'rejected') throw r.reason;
    const lab = w as PodgwLab;
    const gateway = gw as PodgwGateway;
    const webhook = bed as WebhookBed;

    ctx.progress(`creating pods web and batch-… in ${ROUTED_NS} through the member API server`);
    const stored = [
      await createPod(member, ROUTED_NS, { name: 'web' }),
      await createPod(member, ROUTED_NS, { generateName: 'batch-' }, { restartPolicy: 'Never' }),
    ];
    const runs: RunningPod[] = [];
    for (const pod of stored) {
      ctx.progress(`running ${pod.metadata?.name ?? ''} from its stored spec (client-init, client-sidecar)`);
      const run = await runAdmittedPod(member, lab, pod);
      ctx.defer(`pod ${run.name}`, () => run.stop());
      const failed = run.inits.find((i) => i.exitCode !== 0);
      if (failed) {
        throw new Error(
          `pod ${run.name}: init container ${failed.name} exited ${failed.exitCode}: ${oneLine(failed.output.trim().split('\n').pop() ?? '')}`,
        );
      }
      for (const s of run.sidecars) await s.proc.waitForOutput(/routed through the gateway/, 30_000);
      runs.push(run);
    }
    const [web, batch] = runs as [RunningPod, RunningPod];
    // web's app container: a whoami server on its port, which the gateway forwards to.
    await lab.serveWhoami(web.client.host, WEB_OVERLAY_IP, FORWARDED.pod);

    const ns = (h: NetHost) => `ip netns exec ${h.name}`;
    const tcp = (h: NetHost, address: string, port: number) =>
      `${ns(h)} bash -c 'cat </dev/tcp/${address}/${port}'`;

    /** `whoami` of the internet host from each client: the address it sees. */
    const routed = async (run: RunningPod): Promise<string> => {
      const seen = await lab.whoami(run.client.host, INTERNET);
      if (seen !== GW_VPN_IP) {
        throw new Error(
          `${run.name}: ${INTERNET}:7 saw ${seen || 'nothing'}, not the gateway's VPN address ${GW_VPN_IP}`,
        );
      }
      return seen;
    };

    const rows: Row[] = [
      {
        component: 'gateway-webhook',
        proof: `pods created in ${ROUTED_NS} are stored with client-init first and client-sidecar (the chart's webhook)`,
        command: `${kubectl} -n ${ROUTED_NS} get pods -o 'custom-columns=NAME:.metadata.name,INIT:.spec.initContainers[*].name,CONTAINERS:.spec.containers[*].name'`,
        async check() {
          await webhook.metrics(); // throws when the webhook is not serving
          // Pods injected alike are named together: "web, batch-x2k9z: gateway-init (client-init), …".
          const byInjection = new Map<string, string[]>();
          for (const r of runs) {
            const pod = JSON.parse(
              await member.kubectlOk(['get', 'pod', r.name, '-n', ROUTED_NS, '-o', 'json']),
            ) as V1Pod;
            const what = injection(pod);
            byInjection.set(what, [...(byInjection.get(what) ?? []), r.name]);
          }
          return [...byInjection].map(([what, pods]) => `${pods.join(', ')}: ${what}`).join('; ');
        },
      },
      {
        component: 'gateway',
        proof: `gateway-sidecar serves DHCP and DNS on the overlay (${OVERLAY_GATEWAY}), kill switch in place`,
        command: `${ns(gateway.host)} ss -lnup; ${ns(gateway.host)} iptables -S FORWARD`,
        async check() {
          const sidecar = gateway.sidecar;
          if (!sidecar?.running)
            throw new Error(
              `gateway-sidecar is not running: ${oneLine(sidecar?.output().slice(-300) ?? '')}`,
            );
          const answer = await lab.resolve(batch.client.host, OVERLAY_GATEWAY, 'web');
          if (answer !== `["${WEB_OVERLAY_IP}"]`)
            throw new Error(`DNS at ${OVERLAY_GATEWAY}: web → ${answer}, not ${WEB_OVERLAY_IP}`);
          const lease = await lab.overlayAddress(batch.client);
          if (!lease) throw new Error(`${batch.name} has no overlay address (no DHCP lease)`);
          const forward = (await gateway.host.exec('iptables', ['-S', 'FORWARD'])).stdout;
          if (!forward.includes('-P FORWARD DROP'))
            throw new Error("the gateway's FORWARD policy is not DROP (kill switch off)");
          return `pid ${sidecar.pid}; DNS web → ${WEB_OVERLAY_IP}; DHCP lease ${lease} → ${batch.name}; FORWARD DROP`;
        },
      },
      ...runs.map((run): Row => ({
        component: `client ${run.name}`,
        proof: `routed: ${INTERNET} sees the gateway's VPN address`,
        command: tcp(run.client.host, INTERNET, 7),
        async check() {
          const sidecar = run.sidecar('gateway-sidecar');
          if (!sidecar?.running) throw new Error(`${run.name}: client-sidecar is not running`);
          const seen = await routed(run);
          return `overlay ${(await lab.overlayAddress(run.client)) ?? '?'}; ${INTERNET} sees ${seen}`;
        },
      })),
      {
        component: 'DNS via gateway',
        proof: `www.outside.example resolves through the gateway (${OVERLAY_GATEWAY}), also with web's resolv.conf`,
        command: `${ns(batch.client.host)} node -e "const r=new (require('dns').Resolver)();r.setServers(['${OVERLAY_GATEWAY}']);r.resolve4('www.outside.example',(e,a)=>console.log(e?e.code:a))"`,
        async check() {
          const answer = await lab.resolve(batch.client.host, OVERLAY_GATEWAY, 'www.outside.example');
          if (answer !== `["${INTERNET}"]`)
            throw new Error(`www.outside.example at ${OVERLAY_GATEWAY}: ${answer}`);
          const libc = await web.lookup('www.outside.example');
          if (libc.addresses.join() !== INTERNET) {
            throw new Error(`getent in web (its resolv.conf): ${libc.addresses.join(', ') || 'no answer'}`);
          }
          return `www.outside.example → ${INTERNET} (from ${batch.name}, and getent in web)`;
        },
      },
      {
        component: 'forwarded port',
        proof: `${GW_VPN_IP}:${FORWARDED.public} from the VPN side reaches web's :${FORWARDED.pod} (nat.conf)`,
        command: tcp(lab.vpn, GW_VPN_IP, FORWARDED.public),
        async check() {
          const seen = await lab.whoami(lab.vpn, GW_VPN_IP, FORWARDED.public);
          if (seen !== VPN_SERVER) {
            throw new Error(
              `${GW_VPN_IP}:${FORWARDED.public}: ${seen || 'no answer'} (web's server should see ${VPN_SERVER})`,
            );
          }
          return `web ${WEB_OVERLAY_IP}:${FORWARDED.pod} answered; it saw ${seen}`;
        },
      },
      {
        component: 'kill switch',
        proof:
          'VPN link down: 0 packets out of the pod network, 0 outside DNS queries (counters first catch a deliberate leak)',
        command: `${ns(lab.router)} iptables -t raw -L PREROUTING -v -x -n; ${ns(lab.clusterDns)} iptables -t raw -L PREROUTING -v -x -n`,
        live: false,
        check: () => killSwitch(lab, gateway, runs, routed),
      },
    ];
    return rows;
  },
});

/** The gateway pod as pod-gateway's chart runs it: gateway-init, the VPN client's resolv.conf, gateway-sidecar. */
async function startGateway(lab: PodgwLab): Promise<PodgwGateway> {
  const gw = await lab.addGateway(GW_POD_IP, GW_VPN_IP);
  const resolv = lab.resolvConf(gw);
  const init = await lab.gatewayInit(gw, resolv);
  if (init.exitCode !== 0)
    throw new Error(`gateway-init exited ${init.exitCode}: ${oneLine(init.stderr || init.stdout)}`);
  writeFileSync(resolv, `nameserver ${VPN_SERVER}\n`);
  await lab.startGatewaySidecar(gw, resolv);
  return gw;
}

/** `client-init, native sidecar gateway-sidecar (client-sidecar)`: the injected containers, in order. */
function injection(pod: V1Pod): string {
  const app = (c: V1Container) => INJECTED_IMAGE_APPS[repository(c.image ?? '')];
  const inits = pod.spec?.initContainers ?? [];
  const first = inits[0];
  if (!first || app(first) !== 'client-init') {
    throw new Error(
      `${pod.metadata?.name ?? ''}: the first init container is ${first?.image ?? 'missing'}, not client-init (not admitted by the webhook?)`,
    );
  }
  const native = inits.find((c) => app(c) === 'client-sidecar' && c.restartPolicy === 'Always');
  const classic = (pod.spec?.containers ?? []).find((c) => app(c) === 'client-sidecar');
  const sidecar = native ?? classic;
  if (!sidecar) throw new Error(`${pod.metadata?.name ?? ''}: no client-sidecar in the stored spec`);
  return `${first.name} (client-init) first, ${native ? 'native' : 'classic'} sidecar ${sidecar.name}`;
}

/**
 * The kill switch's proof (disturbs the scene for ~10 s; the link is back up and the clients routed
 * again before it returns).
 */
async function killSwitch(
  lab: PodgwLab,
  gw: PodgwGateway,
  runs: RunningPod[],
  routed: (run: RunningPod) => Promise<string>,
): Promise<string> {
  const [first] = runs as [RunningPod];
  const sidecar = gw.sidecar;
  if (!sidecar?.running) throw new Error('gateway-sidecar is not running');
  const bypass = ['FORWARD', '-j', 'ACCEPT'];
  let names = 0;
  const outside = () => `ks${Date.now()}-${++names}.outside.example`;

  await gw.host.ip('link', 'set', 'tun0', 'down');
  let caught: LeakCounts;
  let after: LeakCounts;
  try {
    // The VPN routes are gone with tun0: the default route (eth0) is left. The counters must see
    // the client's traffic when the kill switch is bypassed, and an outside query at the cluster DNS.
    await lab.resetLeakCounters();
    process.kill(-sidecar.pid, 'SIGSTOP');
    try {
      await gw.host.exec('iptables', ['-I', ...bypass]);
      await lab.whoami(first.client.host, INTERNET, 7, 1500);
    } finally {
      await gw.host.exec('iptables', ['-D', ...bypass], { check: false });
      process.kill(-sidecar.pid, 'SIGCONT');
    }
    await lab.resolve(first.client.host, CLUSTER_DNS, outside());
    caught = await lab.leakCounts();
    if (caught.router === 0 || caught.clusterDns === 0) {
      throw new Error(
        `the counters missed a deliberate leak (router ${caught.router}, cluster DNS ${caught.clusterDns}): they would prove nothing`,
      );
    }

    // The kill switch: each client's traffic to the internet and an outside name, VPN down.
    await lab.resetLeakCounters();
    const tries = await Promise.all(
      runs.map(async (r) => ({
        name: r.name,
        tcp: await lab.whoami(r.client.host, INTERNET, 7, 1500),
        dns: await lab.resolve(r.client.host, OVERLAY_GATEWAY, outside()),
      })),
    );
    after = await lab.leakCounts();
    const answered = tries.find((t) => !/^(timeout|error )/.test(t.tcp) || t.dns.startsWith('['));
    if (answered) {
      throw new Error(
        `VPN down, yet ${answered.name} was answered: ${INTERNET} saw ${answered.tcp}, DNS ${answered.dns}`,
      );
    }
  } finally {
    await gw.host.ip('link', 'set', 'tun0', 'up');
    await gw.host.ip('route', 'replace', '0.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
    await gw.host.ip('route', 'replace', '128.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
  }
  if (after.router > 0 || after.clusterDns > 0) {
    throw new Error(
      `LEAK with the VPN down: ${after.router} packets to ${VPN_SIDE} reached the router, ${after.clusterDns} outside queries the cluster DNS`,
    );
  }
  const start = Date.now();
  for (const r of runs) {
    await until(
      `${r.name} routed again after the VPN link came back`,
      async () => (await routed(r).catch(() => '')) !== '',
      30_000,
    );
  }
  const n = (count: number, one: string, more: string) => `${count} ${count === 1 ? one : more}`;
  return `leak test caught ${n(caught.router, 'packet', 'packets')} + ${n(caught.clusterDns, 'query', 'queries')}; VPN down: 0 + 0 (${runs.length} pods); routed again in ${((Date.now() - start) / 1000).toFixed(1)} s`;
}
