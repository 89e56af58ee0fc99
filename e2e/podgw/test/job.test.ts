/**
 * client-sidecar lets a Job finish (pod-gateway#55): it reads its own Pod from the real
 * kube-apiserver — with a service account that may only `get` pods — and exits 0 once the pod
 * status, written as a kubelet writes it, shows the app container terminated.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ControlPlane,
  PodgwLab,
  bridgeLoopbackPort,
  serviceAccountUser,
  type LoopbackBridge,
} from '@knet/testing';

jest.setTimeout(180_000);

let cp: ControlPlane;
let w: PodgwLab;
let bridge: LoopbackBridge | undefined;

afterAll(async () => {
  await bridge?.close();
  await Promise.all([w?.dispose(), cp?.stop()]);
});

const status = (app: Record<string, unknown>) => ({
  status: {
    phase: 'Running',
    conditions: [{ type: 'Ready', status: 'True' }],
    containerStatuses: [
      {
        name: 'app',
        image: 'busybox',
        imageID: '',
        ready: !('terminated' in app),
        restartCount: 0,
        state: app,
      },
      {
        name: 'gateway-sidecar',
        image: 'client-sidecar',
        imageID: '',
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: new Date().toISOString() } },
      },
    ],
  },
});

it('client-sidecar exits 0 when the pod status shows the app container terminated', async () => {
  // Each kept as soon as it is up, so afterAll stops it even when the other failed to start.
  await Promise.all([ControlPlane.start().then((c) => (cp = c)), PodgwLab.create().then((l) => (w = l))]);
  const kubeconfig = await cp.serviceAccountKubeconfig('jobs', 'routed');
  await cp.grant('jobs', 'routed', { verbs: ['get'], resources: ['pods'], role: 'read-own-pod' });
  // Least privilege: the sidecar's identity can read a pod, nothing more.
  const can = (verb: string) =>
    cp.kubectl(['auth', 'can-i', verb, 'pods', '-n', 'jobs', `--as=${serviceAccountUser('jobs', 'routed')}`]);
  expect((await can('get')).stdout.trim()).toBe('yes');
  expect((await can('list')).stdout.trim()).toBe('no');
  expect((await can('watch')).stdout.trim()).toBe('no');

  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'job-x7k2p', namespace: 'jobs' },
    spec: {
      restartPolicy: 'Never',
      serviceAccountName: 'routed',
      nodeName: 'node-1',
      containers: [
        { name: 'app', image: 'busybox' },
        { name: 'gateway-sidecar', image: 'client-sidecar' },
      ],
    },
  };
  const podFile = join(w.dir, 'pod.json');
  writeFileSync(podFile, JSON.stringify(pod));
  await cp.kubectlOk(['create', '-f', podFile]);
  const writeStatus = (app: Record<string, unknown>) =>
    cp.kubectlOk([
      'patch',
      'pod',
      'job-x7k2p',
      '-n',
      'jobs',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify(status(app)),
    ]);
  await writeStatus({ running: { startedAt: new Date().toISOString() } });

  const gw = await w.addGateway('192.0.2.10', '203.0.113.2');
  const resolv = w.resolvConf(gw);
  expect((await w.gatewayInit(gw, resolv)).exitCode).toBe(0);
  writeFileSync(resolv, `nameserver ${PodgwLab.VPN_SERVER}\n`);
  await w.startGatewaySidecar(gw, resolv);
  const c = await w.addClient('job-x7k2p');
  expect((await w.clientInit(c)).exitCode).toBe(0);

  bridge = await bridgeLoopbackPort(c.host, Number(new URL(cp.server).port));
  const sidecar = await w.startClientSidecar(c, ['--pod-poll-interval=500ms', '--log-level=debug'], {
    POD_NAME: 'job-x7k2p',
    POD_NAMESPACE: 'jobs',
    KUBECONFIG: kubeconfig,
  });
  // It read the pod (through the API, as the service account) and keeps going while the app runs.
  await sidecar.waitForOutput(/pod still working/, 30_000);
  expect(sidecar.running).toBe(true);

  await writeStatus({
    terminated: {
      exitCode: 0,
      reason: 'Completed',
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
    },
  });
  expect(await sidecar.exited).toEqual({ exitCode: 0, signal: null });
  expect(sidecar.output()).toContain('the other containers have finished: exiting');
  expect(sidecar.output()).toContain('released the DHCP lease');
});
