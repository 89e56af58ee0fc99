/**
 * Scene `capi`: a Cluster API cluster provisioned on Packet / Equinix Metal — the real Cluster API
 * v1.11 core (`CapiCore`: its CRDs, webhooks and controller manager, built from the Go module) and
 * capi-packet-manager from its shipped bundle, both against the host's kube-apiserver, with the
 * Metal API played by `FakeMetalApi` on loopback (one project; devices queued ~2 s, provisioning
 * ~6 s, so the states are visible while the scene comes up). One cluster `lab` in namespace `capi`,
 * from the `packet-bootstrap` template objects of @knet/capi: a control-plane Machine and a
 * MachineDeployment of 2 workers, each Machine bootstrapped by the manager's own bootstrap provider
 * (PacketKubeadmConfig: the seed's kubeadm init on the first control plane, join elsewhere).
 *
 * Network: the bootstrap provider writes `lab-kubeconfig`, so CAPI core dials the cluster's
 * endpoint. The fake hands out elastic IPs from a loopback block ({@link ENDPOINT_RANGE}), where
 * nothing answers; its other addresses (documentation ranges) are data only.
 *
 * Rows, live: the cluster (the elastic IP the provider reserved in the fake and assigned to the
 * control plane's device, the endpoint CAPI copied, infrastructure provisioned, the Metal API
 * calls so far as the fake logged them and as the manager counted them); the bootstrap (who runs
 * kubeadm init, the joins pinning the cluster CA, the kubeconfig Secret, no CA private key in any
 * device's userdata and the other keys on control planes only); and one per Machine (role, Machine phase, PacketMachine
 * state, device state in the fake, the device its providerID names, addresses, the PacketMachine's
 * Ready reason), each cross-checked against the fake (the device, its addresses, its userdata the
 * Machine's bootstrap data).
 *
 * Teardown, in order: the Cluster is deleted (the manager deletes every device, the finalizers
 * go), the manager stops, Cluster API's managers stop, its CRDs and webhook configurations and the
 * provider's CRDs are removed from the host, the fake stops.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { dumpYaml } from '@kubernetes/client-node';
import {
  TEMPLATE_VARIABLES,
  bootstrapCrds,
  caCertHash,
  clusterSecretName,
  clusterManifests,
  clusterTag,
  eipTag,
  infrastructureCrds,
  type ClusterSecretPurpose,
} from '@knet/capi';
import {
  CapiCore,
  FakeMetalApi,
  capiBootstrapProblem,
  capiBootstrapView,
  ManagedProcess,
  capiPacketManagerCommand,
  capiClusterProblem,
  capiClusterView,
  capiMachineProblem,
  capiMachineViews,
  formatCapiMachine,
  freePort,
  metalRequestsCounted,
  readCapiObjects,
  sleep,
  sshPublicKeyLine,
  uninstallCapi,
  until,
  type CapiMachineView,
  type KeyPlace,
} from '@knet/testing';
import { registerScene, type Row } from '../scene';

const CLUSTER = 'lab';
const NAMESPACE = 'capi';
const METRO = 'da';
const WORKERS = 2;
/**
 * Where the fake takes elastic IPs from: the endpoint CAPI core dials once the kubeconfig Secret
 * exists must be on this machine (nothing listens there).
 */
const ENDPOINT_RANGE = '127.0.64.0/24';
/**
 * Where the private key of each of the cluster's key Secrets may reach (libs/capi's README, kubeadm's
 * external CA mode): the CAs' never leave the management cluster; the service-account key and the
 * kubelet signer's go to control planes only.
 */
const KEY_PLACES = {
  ca: 'no device',
  etcd: 'no device',
  proxy: 'no device',
  sa: 'control planes',
  'kubelet-signer': 'control planes',
} as const satisfies Record<ClusterSecretPurpose, KeyPlace>;
/** How long each device state lasts in the fake: long enough to watch, short enough to wait for. */
const DURATIONS = { queuedMs: 2_000, provisioningMs: 6_000, deprovisioningMs: 2_000 };
const UP_TIMEOUT_MS = 180_000;
const DELETE_TIMEOUT_MS = 120_000;

registerScene({
  name: 'capi',
  title: `Cluster API core and capi-packet-manager on the host: cluster ${CLUSTER} (1 control plane + ${WORKERS} workers) on a fake Metal API`,
  needs: ['clusters'],
  bundles: ['capi-packet-manager'],
  async up(ctx) {
    const { host: cp } = ctx.clusters();
    const kubectl = `kubectl --kubeconfig ${ctx.shownDir}/host.kubeconfig -n ${NAMESPACE}`;

    ctx.progress('starting the fake Metal API on loopback (devices queued 2 s, then provisioning 6 s)');
    // A fresh token per run: only the manager has it (from its env, never in a flag or a log).
    const token = randomUUID();
    const api = await FakeMetalApi.start({
      tokens: [token],
      durations: DURATIONS,
      reservationRange: ENDPOINT_RANGE,
    });
    ctx.defer('the fake Metal API', () => api.close());
    const project = api.addProject({ name: 'knet-lab' });

    const providerCrds = [...infrastructureCrds(), ...bootstrapCrds()];
    // Registered before the install, so it also runs when the install stops half-way; it runs
    // after Cluster API's managers are stopped (registered later, so torn down earlier).
    ctx.defer("Cluster API's and the provider's CRDs and webhook configurations", () =>
      uninstallCapi(
        cp,
        providerCrds.map((c) => c.metadata.name),
      ),
    );
    ctx.progress('installing Cluster API v1.11 core in the host (CRDs, webhooks, controller manager)');
    const capi = await CapiCore.start(cp, {
      log: (line) => {
        try {
          ctx.progress(`Cluster API: ${line}`);
        } catch {
          // Ctrl-C during the build: the next step's ctx.progress ends up().
        }
      },
    });
    ctx.defer("Cluster API's controller manager", () => capi.stop());

    ctx.progress("applying the provider's CRDs (PacketCluster, PacketMachine, …) to the host");
    await cp.kubectlOk(['apply', '-f', '-'], { input: providerCrds.map((c) => dumpYaml(c)).join('---\n') });
    await cp.kubectlOk([
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      ...providerCrds.map((c) => `crd/${c.metadata.name}`),
    ]);
    await cp.kubectlOk(['create', 'namespace', NAMESPACE]);

    ctx.progress('starting capi-packet-manager from its bundle');
    const metricsPort = await freePort();
    const metricsUrl = `http://127.0.0.1:${metricsPort}`;
    const command = await capiPacketManagerCommand({
      kubeconfig: cp.kubeconfigPath,
      namespace: NAMESPACE,
      metalApiUrl: api.url,
      token,
      metricsPort,
      flags: ['--device-poll-interval=1s'],
    });
    const manager = ManagedProcess.start(
      'capi-packet-manager',
      command.cmd,
      command.args,
      join(ctx.dir, 'capi-packet-manager.log'),
      command.env,
    );
    ctx.defer('capi-packet-manager', () => manager.stop());
    /** Why the manager is not running, or undefined. */
    const managerDown = () =>
      manager.running
        ? undefined
        : `capi-packet-manager exited: ${manager.tail(5).replace(/\s*\n\s*/g, ' ')}`;
    await until(
      () => `capi-packet-manager's /readyz; its log: ${manager.tail(5)}`,
      async () => {
        const down = managerDown();
        if (down) throw new Error(down);
        return (await fetch(`${metricsUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).ok;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );

    ctx.progress(
      `creating cluster ${CLUSTER} in namespace ${NAMESPACE}: 1 control plane + ${WORKERS} workers`,
    );
    const v = TEMPLATE_VARIABLES;
    const { cluster, machines } = clusterManifests(
      {
        clusterName: CLUSTER,
        projectID: project,
        location: { metro: METRO },
        kubernetesVersion: v.kubernetesVersion.default,
        controlPlaneMachineCount: 1,
        workerMachineCount: WORKERS,
        controlPlaneNodeType: v.controlPlaneNodeType.default,
        workerNodeType: v.workerNodeType.default,
        sshKey: sshPublicKeyLine('knet-lab'),
        nodeOS: v.nodeOS.default,
        podCIDR: v.podCIDR.default,
        serviceCIDR: v.serviceCIDR.default,
      },
      'packet-bootstrap',
    );
    // Deleted first at teardown, while the manager still runs: it deletes the devices.
    ctx.defer(`cluster ${CLUSTER} (every device deleted, every finalizer gone)`, async () => {
      await cp.kubectl([
        'delete',
        'cluster.cluster.x-k8s.io',
        CLUSTER,
        '-n',
        NAMESPACE,
        '--ignore-not-found',
        '--wait=false',
      ]);
      await until(
        () =>
          `cluster ${CLUSTER} and its devices to be gone (devices: ${
            api
              .devices()
              .filter((d) => d.tags.includes(clusterTag(CLUSTER)))
              .map((d) => `${d.hostname} ${d.state}`)
              .join(', ') || 'none'
          }); manager: ${manager.tail(3)}`,
        async () =>
          api.devices().every((d) => !d.tags.includes(clusterTag(CLUSTER))) &&
          (await readCapiObjects(cp, NAMESPACE)).clusters.length === 0,
        { timeoutMs: DELETE_TIMEOUT_MS, intervalMs: 500 },
      );
    });
    await cp.apply([...cluster, ...machines], { namespace: NAMESPACE });

    /** The cluster's Machines and what is wrong, from one read of the objects and the fake. */
    const look = async () => {
      const objects = await readCapiObjects(cp, NAMESPACE);
      const devices = api.devices();
      const views = capiMachineViews(objects, CLUSTER, devices);
      const clusterView = capiClusterView(objects, CLUSTER, eipTag(CLUSTER), devices, api.reservations());
      const controlPlane = views.find((m) => m.role === 'control plane')?.name ?? '';
      const ca = objects.secrets.find((x) => x.metadata.name === clusterSecretName(CLUSTER, 'ca'))?.data?.[
        'tls.crt'
      ];
      const bootstrap = ca
        ? capiBootstrapView(
            objects,
            CLUSTER,
            devices.filter((d) => d.tags.includes(clusterTag(CLUSTER))),
            {
              caPin: caCertHash(Buffer.from(ca, 'base64').toString('utf8')),
              keys: Object.fromEntries(
                Object.entries(KEY_PLACES).map(([purpose, place]) => [
                  clusterSecretName(CLUSTER, purpose as ClusterSecretPurpose),
                  place,
                ]),
              ),
            },
          )
        : undefined;
      const bootstrapProblem = bootstrap
        ? capiBootstrapProblem(bootstrap, {
            machines: views.length,
            controlPlane,
            endpoint: clusterView.endpoint,
          })
        : `no Secret ${CLUSTER}-ca (the cluster CA) yet`;
      return { views, clusterView, controlPlane, bootstrap, bootstrapProblem };
    };

    const deadline = Date.now() + UP_TIMEOUT_MS;
    let ready: Awaited<ReturnType<typeof look>>;
    for (;;) {
      const down = managerDown();
      if (down) throw new Error(down);
      const now = await look();
      const problems = [
        ...(now.views.length === 1 + WORKERS ? [] : [`${now.views.length} of ${1 + WORKERS} Machines`]),
        ...now.views.map(capiMachineProblem).filter((p): p is string => p !== undefined),
        ...[capiClusterProblem(now.clusterView, now.controlPlane), now.bootstrapProblem].filter(
          (p): p is string => p !== undefined,
        ),
      ];
      if (problems.length === 0) {
        ready = now;
        break;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `cluster ${CLUSTER} not provisioned after ${UP_TIMEOUT_MS / 1000} s: ${problems.join('; ')}; manager: ${manager.tail(3)}`,
        );
      }
      ctx.progress(`${CLUSTER}: ${states(now.views)} · ${api.calls.length} Metal API calls`);
      await sleep(1000);
    }
    const callsAtReady = api.calls.length;

    /** The manager's count of its Metal API requests, from its /metrics. */
    const managerCount = async () => {
      const r = await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
      if (!r.ok) throw new Error(`capi-packet-manager /metrics answered ${r.status}`);
      return metalRequestsCounted(await r.text());
    };

    const clusterRow: Row = {
      component: `cluster ${CLUSTER}`,
      proof: `the provider reserved the control-plane elastic IP in the Metal API and assigned it to ${ready.controlPlane}'s device; CAPI core copied the endpoint to the Cluster and marked its infrastructure provisioned; every Metal API request the fake logged is one the manager counted`,
      command: `${kubectl} get cluster.cluster.x-k8s.io,packetcluster ${CLUSTER} -o wide; curl -s ${metricsUrl}/metrics | grep ^capi_packet_metal_api`,
      async check() {
        const down = managerDown();
        if (down) throw new Error(down);
        const { clusterView, controlPlane } = await look();
        const problem = capiClusterProblem(clusterView, controlPlane);
        if (problem) throw new Error(problem);
        // A request still in flight is logged by the fake before the manager counts it: look again.
        let logged = api.calls.length;
        let counted = await managerCount();
        for (let i = 0; i < 3 && counted !== logged; i++) {
          await sleep(300);
          logged = api.calls.length;
          counted = await managerCount();
        }
        if (counted !== logged) {
          throw new Error(`the fake logged ${logged} Metal API requests, the manager counted ${counted}`);
        }
        return `EIP ${clusterView.endpoint} on ${controlPlane} · infra provisioned · ${logged} Metal API calls, +${logged - callsAtReady} since ready`;
      },
    };

    const bootstrapRow: Row = {
      component: 'bootstrap',
      proof: `the manager's bootstrap provider: every Machine's PacketKubeadmConfig ready with its data; exactly ${ready.controlPlane} runs kubeadm init, every other device joins pinning the CA of Secret ${CLUSTER}-ca; Secret ${CLUSTER}-kubeconfig (clusterctl get kubeconfig) points at the endpoint; no CA private key in any device's userdata, the service-account and kubelet-signer keys on control planes only (the same search finds each key planted there)`,
      command: `${kubectl} get packetkubeadmconfigs,secrets`,
      async check() {
        const down = managerDown();
        if (down) throw new Error(down);
        const { bootstrap, bootstrapProblem, controlPlane, clusterView } = await look();
        if (bootstrapProblem || !bootstrap) throw new Error(bootstrapProblem);
        const host = clusterView.endpoint.slice(0, clusterView.endpoint.lastIndexOf(':'));
        return `init on ${controlPlane} · ${bootstrap.pinned.length} pinned joins · kubeconfig → ${host} · ${bootstrap.keys.length} keys, none out of place`;
      },
    };

    const machineRow = (first: CapiMachineView): Row => ({
      component: first.name,
      proof: `${first.role} Machine: CAPI phase Provisioned, its PacketMachine ready (Ready condition) with the device its providerID names active in the Metal API, the Machine's addresses that device's, and its userdata the Machine's bootstrap data`,
      command: `${kubectl} get machine.cluster.x-k8s.io/${first.name} packetmachine/${first.packetMachine?.name ?? first.name} -o wide`,
      async check() {
        const down = managerDown();
        if (down) throw new Error(down);
        const { views, clusterView } = await look();
        const m = views.find((x) => x.name === first.name);
        if (!m)
          throw new Error(
            `Machine ${first.name} is gone (now: ${views.map((x) => x.name).join(', ') || 'none'})`,
          );
        const problem = capiMachineProblem(m);
        if (problem) throw new Error(problem);
        if (first.device && m.device?.id !== first.device.id) {
          throw new Error(
            `${m.name} now has device ${m.device?.shortId ?? 'none'}, not ${first.device.shortId}`,
          );
        }
        return formatCapiMachine(m, clusterView.endpoint.slice(0, clusterView.endpoint.lastIndexOf(':')));
      },
    });

    return [clusterRow, bootstrapRow, ...ready.views.map(machineRow)];
  },
});

/** `lab-control-plane-0 provisioning, lab-worker-a-… queued`: where each Machine is. */
function states(views: readonly CapiMachineView[]): string {
  if (views.length === 0) return 'no Machine yet';
  return views
    .map(
      (m) => `${m.name} ${m.device?.state ?? m.packetMachine?.condition?.reason ?? (m.phase || 'pending')}`,
    )
    .join(', ');
}
