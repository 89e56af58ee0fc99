/**
 * The admitted Pod spec is enough to route the pod: gateway-webhook, called by the real
 * kube-apiserver, injects pod-gateway's clients into pods; the test then plays the kubelet and the
 * container runtime (@knet/testing's pod runner, `runAdmittedPod`) for the injected containers of
 * the spec *as the API server stored it* — each image's app bundle at the image's path and
 * entrypoint, in the kubelet's order, with the spec's env, volume mounts, securityContext and DNS —
 * in a network namespace of PodgwLab with a real gateway, and shows the pod routed through it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import {
  ControlPlane,
  IMAGE_ENTRYPOINT,
  LAB_WEBHOOK_ARGS,
  OVERLAY_GATEWAY,
  PodgwLab,
  WebhookBed,
  applyLabConfigMap,
  createPod,
  labWebhookResolvConf,
  repository,
  runAdmittedPod,
  settingsSh,
  type PodgwGateway,
  type RunningPod,
} from '@knet/testing';

const { CLUSTER_DNS, INTERNET, VPN_SERVER } = PodgwLab;

jest.setTimeout(300_000);

const NS = 'vpn';
/** Routed by the classic webhook (sidecar as a container) and by the native one (--sidecarAsInit). */
const CLASSIC_NS = 'media';
const NATIVE_NS = 'batch';
const GW_POD_IP = '192.0.2.10';
const GW_VPN_IP = '203.0.113.2';

let cp: ControlPlane | undefined;
let w: PodgwLab;
let gw: PodgwGateway;
const beds: WebhookBed[] = [];
const runs: RunningPod[] = [];
let web: V1Pod;
let job: V1Pod;

beforeAll(async () => {
  // Each kept as soon as it is up, so afterAll stops it even when the other failed to start.
  await Promise.all([
    ControlPlane.start({ controllerManager: true }).then((c) => (cp = c)),
    PodgwLab.create().then((l) => (w = l)),
  ]);
  const k = kube();
  for (const ns of [NS, CLASSIC_NS, NATIVE_NS]) await k.kubectlOk(['create', 'namespace', ns]);
  await k.kubectlOk(['label', 'namespace', CLASSIC_NS, 'routed-gateway=true']);
  await k.kubectlOk(['label', 'namespace', NATIVE_NS, 'routed-gateway-native=true']);

  // The chart's ConfigMap, in each routed namespace: the lab's settings.sh and nat.conf, rendered
  // as the lab writes them (KEY="value" lines).
  await applyLabConfigMap(k, CLASSIC_NS, 'pod-gateway');
  await applyLabConfigMap(k, NATIVE_NS, 'pod-gateway-native');
  // client-sidecar reads its own pod (classic sidecar): the chart's Role for clientServiceAccounts.
  await k.grant(CLASSIC_NS, 'default', { verbs: ['get'], resources: ['pods'], role: 'pod-gateway-client' });

  beds.push(
    await WebhookBed.start(k, {
      name: 'pod-gateway',
      namespace: NS,
      namespaceLabel: { key: 'routed-gateway', value: 'true' },
      // A classic sidecar (the chart's default is a native one, as the second gateway below).
      values: { webhook: { sidecarAsInit: false } },
      args: [...LAB_WEBHOOK_ARGS],
      resolvConf: labWebhookResolvConf(NS),
    }),
  );
  beds.push(
    await WebhookBed.start(k, {
      name: 'pod-gateway-native',
      namespace: NS,
      namespaceLabel: { key: 'routed-gateway-native', value: 'true' },
      args: [...LAB_WEBHOOK_ARGS, '--sidecarAsInit'],
      resolvConf: labWebhookResolvConf(NS),
    }),
  );

  // Created through the API server, then read back as stored.
  web = await createPod(k, CLASSIC_NS, { name: 'web' });
  job = await createPod(k, NATIVE_NS, { generateName: 'batch-' }, { restartPolicy: 'Never' });

  // The gateway, as e2e.test.ts starts it.
  gw = await w.addGateway(GW_POD_IP, GW_VPN_IP);
  const resolv = w.resolvConf(gw);
  const init = await w.gatewayInit(gw, resolv);
  if (init.exitCode !== 0) throw new Error(`gateway-init failed: ${init.stdout}${init.stderr}`);
  writeFileSync(resolv, `nameserver ${VPN_SERVER}\n`);
  await w.startGatewaySidecar(gw, resolv);
});

afterAll(async () => {
  const steps = [
    ...runs.map((r) => () => r.stop()),
    () => w?.dispose(),
    ...beds.map((b) => () => b.remove()),
    () => cp?.stop(),
  ];
  const errors: unknown[] = [];
  for (const step of steps) await Promise.resolve(step()).catch((e: unknown) => errors.push(e));
  if (errors.length > 0) throw errors[0];
});

function kube(): ControlPlane {
  if (!cp) throw new Error('no control plane');
  return cp;
}

/** The kubelet starting the injected containers of `pod`, in order, in a lab client host. */
async function startPod(pod: V1Pod): Promise<RunningPod> {
  const run = await runAdmittedPod(kube(), w, pod);
  runs.push(run);
  return run;
}

describe('a pod admitted by gateway-webhook is routed by its spec alone', () => {
  it('the stored pods carry client-init first, the sidecar, the ConfigMap and the gateway as DNS', () => {
    expect(readFileSync(join(w.configDir, 'settings.sh'), 'utf8')).toBe(settingsSh());
    for (const pod of [web, job]) {
      const init = pod.spec?.initContainers?.[0];
      expect(init?.name).toBe('gateway-init');
      expect(repository(init?.image ?? '')).toBe('ghcr.io/knet/client-init');
      expect(pod.spec?.dnsConfig?.nameservers).toEqual([OVERLAY_GATEWAY]);
      expect(init?.env).toContainEqual({ name: 'K8S_DNS_ips', value: CLUSTER_DNS });
      // The image's entrypoint runs: no command, no args.
      expect(init?.command).toBeUndefined();
      expect(init?.args).toBeUndefined();
      // The apps read /config/settings.sh and /config/nat.conf by default: the mountPath.
      expect(init?.volumeMounts).toContainEqual({
        name: 'gateway-configmap',
        mountPath: '/config',
        readOnly: true,
      });
    }
    // The securityContext the runner emulates (it refuses any other): root, drop ALL, read-only root.
    const injected = [web, job].flatMap((p) =>
      [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].filter((c) => c.name !== 'app'),
    );
    expect(injected).toHaveLength(4);
    for (const c of injected) {
      expect(c.securityContext).toMatchObject({
        runAsUser: 0,
        capabilities: { drop: ['ALL'] },
        readOnlyRootFilesystem: true,
      });
    }
    expect(web.spec?.containers.map((c) => c.name)).toEqual(['app', 'gateway-sidecar']);
    expect(job.metadata?.name).toMatch(/^batch-[a-z0-9]{5}$/);
    expect(job.spec?.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([
      ['gateway-init', undefined],
      ['gateway-sidecar', 'Always'],
    ]);
    expect(job.spec?.containers.map((c) => c.name)).toEqual(['app']);
  });

  describe('web (classic sidecar, nat.conf: static .10 and a port forward)', () => {
    let run: RunningPod;
    beforeAll(async () => {
      run = await startPod(web);
    });

    it('client-init exits 0, routed through the gateway, with the static overlay address', async () => {
      expect(run.inits.map((i) => [i.name, i.exitCode])).toEqual([['gateway-init', 0]]);
      expect(run.inits[0]?.output).toContain('routed through the gateway');
      expect(await w.overlayAddress(run.client)).toBe('172.16.0.10');
    });

    it('client-sidecar reports routed, and read its own pod with the token the spec mounts', async () => {
      const sidecar = run.sidecar('gateway-sidecar');
      expect(sidecar).toBeDefined();
      await sidecar?.waitForOutput(/routed through the gateway/, 30_000);
      await sidecar?.waitForOutput(/this pod never finishes by itself/, 30_000);
      expect(sidecar?.output()).not.toContain('cannot read this pod');
      expect(sidecar?.running).toBe(true);
    });

    it('the sidecar runs as the spec says: the entrypoint, its capabilities only, the spec env and no more', () => {
      const sidecar = run.sidecar('gateway-sidecar');
      const spec = web.spec?.containers.find((c) => c.name === 'gateway-sidecar');
      // ip netns exec, unshare, sh, chroot, setpriv and env all exec: the pid is the app's.
      const proc = (file: string) => readFileSync(`/proc/${sidecar?.pid}/${file}`, 'utf8');
      expect(proc('cmdline').split('\0').filter(Boolean)).toEqual(IMAGE_ENTRYPOINT);
      // NET_BIND_SERVICE (10), NET_ADMIN (12), NET_RAW (13); allowPrivilegeEscalation false.
      expect(/^CapEff:\s*(\w+)$/m.exec(proc('status'))?.[1]).toBe('0000000000003400');
      expect(/^NoNewPrivs:\s*(\d)$/m.exec(proc('status'))?.[1]).toBe('1');
      const env = proc('environ').split('\0').filter(Boolean);
      expect(env.map((kv) => kv.slice(0, kv.indexOf('='))).sort()).toEqual(
        [
          ...(spec?.env ?? []).map((e) => e.name),
          'PATH',
          'HOSTNAME',
          'KUBERNETES_SERVICE_HOST',
          'KUBERNETES_SERVICE_PORT',
        ].sort(),
      );
      expect(env).toEqual(expect.arrayContaining(['POD_NAME=web', `POD_NAMESPACE=${CLASSIC_NS}`]));
    });

    it('the internet host sees the VPN address, and the forwarded port reaches the pod', async () => {
      expect(await w.whoami(run.client.host, INTERNET)).toBe(GW_VPN_IP);
      expect(await run.client.host.ip('route', 'show', 'default')).toMatch(
        /default via 172\.16\.0\.1 dev vxlan0/,
      );
      await w.serveWhoami(run.client.host, '172.16.0.10', 80);
      expect(await w.whoami(w.vpn, GW_VPN_IP, 8080)).toBe(VPN_SERVER);
    });

    it("DNS with the pod's resolv.conf: the gateway answers outside names (VPN) and cluster names (split)", async () => {
      expect(readFileSync(run.resolvConf, 'utf8')).toBe(
        `nameserver ${OVERLAY_GATEWAY}\nsearch ${CLASSIC_NS}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`,
      );
      // Straight to the admitted nameserver (the gateway's overlay address).
      const [nameserver = ''] = web.spec?.dnsConfig?.nameservers ?? [];
      expect(await w.resolve(run.client.host, nameserver, 'www.outside.example')).toBe(`["${INTERNET}"]`);
      expect(await w.resolve(run.client.host, nameserver, 'web.default.svc.cluster.local')).toBe(
        '["198.51.100.20"]',
      );
      // The libc resolver of an app container: nameserver and search list from dnsConfig.
      expect(await run.lookup('web.default')).toEqual({
        addresses: ['198.51.100.20'],
        canonical: 'web.default.svc.cluster.local',
      });
      expect((await run.lookup('outside.example')).addresses).toEqual([INTERNET]);
    });
  });

  describe('a generated name (native sidecar, DHCP lease)', () => {
    let run: RunningPod;
    beforeAll(async () => {
      run = await startPod(job);
    });

    it('client-init takes a lease; the native sidecar reports routed without any API access', async () => {
      expect(run.inits.map((i) => [i.name, i.exitCode])).toEqual([['gateway-init', 0]]);
      expect(run.inits[0]?.output).toContain('routed through the gateway');
      expect(await w.overlayAddress(run.client)).toMatch(
        /^172\.16\.0\.(2\d|[3-9]\d|1\d\d|2[0-4]\d|25[0-4])$/,
      );
      const sidecar = run.sidecar('gateway-sidecar');
      await sidecar?.waitForOutput(/routed through the gateway/, 30_000);
      expect(sidecar?.running).toBe(true);
      expect(sidecar?.output()).not.toMatch(/cannot read this pod|no Kubernetes credentials/);
    });

    it('reaches the internet host through the VPN and resolves through the gateway', async () => {
      expect(await w.whoami(run.client.host, INTERNET)).toBe(GW_VPN_IP);
      expect(await run.lookup('web.default')).toEqual({
        addresses: ['198.51.100.20'],
        canonical: 'web.default.svc.cluster.local',
      });
      expect((await run.lookup('www.outside.example')).addresses).toEqual([INTERNET]);
      // The static pod's name, from nat.conf, through the gateway's DNS.
      expect((await run.lookup('web')).addresses).toEqual(['172.16.0.10']);
    });
  });
});
