import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapiCore, ControlPlane, ensureKubeadm, freePort, run, until } from '../src';

jest.setTimeout(90_000);

/** Everything the test creates lives here (and in the stand-in CRDs below). */
const NS = 'capi-test';
const INFRA_GROUP = 'infrastructure.cluster.x-k8s.io';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * A stand-in infrastructure CRD as a v1beta1-API provider defines one (CAPEM's PacketCluster…):
 * named as contract.CalculateCRDName wants, labelled with the v1beta1 contract, status subresource.
 * Its objects are made ready by the test itself, in place of a provider's controller.
 */
function infraCrd(kind: string): Json {
  const plural = `${kind.toLowerCase()}s`;
  const open = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${INFRA_GROUP}`, labels: { 'cluster.x-k8s.io/v1beta1': 'v1beta1' } },
    spec: {
      group: INFRA_GROUP,
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase() },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1beta1',
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: { openAPIV3Schema: { type: 'object', properties: { spec: open, status: open } } },
        },
      ],
    },
  };
}

describe('CapiCore: the real Cluster API v1.11 against the test bed', () => {
  let cp: ControlPlane;
  let capi: CapiCore;
  /** Where the Cluster's control plane "is": a closed loopback port (nothing may connect out). */
  let endpointPort: number;

  const kubectl = (args: string[], input?: Json) =>
    cp.kubectlOk(args, input === undefined ? {} : { input: JSON.stringify(input) });
  const create = (obj: Json) => kubectl(['create', '-f', '-'], obj);
  const get = async (resource: string, name: string): Promise<Json> =>
    JSON.parse(await kubectl(['get', resource, name, '-n', NS, '-o', 'json'])) as Json;
  const list = async (resource: string, selector?: string): Promise<Json[]> =>
    (
      JSON.parse(
        await kubectl(['get', resource, '-n', NS, '-o', 'json', ...(selector ? ['-l', selector] : [])]),
      ) as { items: Json[] }
    ).items;
  const setStatus = (resource: string, name: string, status: Json) =>
    kubectl([
      'patch',
      resource,
      name,
      '-n',
      NS,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status }),
    ]);
  /** A stand-in infrastructure object (the kinds of infraCrd). */
  const createInfra = (kind: string, name: string, spec: Json = {}) =>
    create({ apiVersion: `${INFRA_GROUP}/v1beta1`, kind, metadata: { name, namespace: NS }, spec });
  /** The ownerReference of kind `kind` on an object, once there is one. */
  const ownerOf = async (resource: string, name: string, kind: string): Promise<Json | undefined> =>
    ((await get(resource, name))['metadata'].ownerReferences as Json[] | undefined)?.find(
      (r) => r['kind'] === kind,
    );
  /** Polls until `fn` holds, naming what it waited for and the managers' last log lines if not. */
  const eventually = <T>(what: string, fn: () => Promise<T>) =>
    until(() => `${what}\n${capi.logs(15)}`, fn, { timeoutMs: 45_000, intervalMs: 300 });

  beforeAll(async () => {
    cp = await ControlPlane.start({ controllerManager: true });
    capi = await CapiCore.start(cp, { bootstrap: true, controlPlane: true });
    endpointPort = await freePort();
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['apply', '-f', '-'], {
      apiVersion: 'v1',
      kind: 'List',
      items: ['TestInfraCluster', 'TestInfraMachine', 'TestInfraMachineTemplate'].map(infraCrd),
    });
    await kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      `crd/testinfraclusters.${INFRA_GROUP}`,
    ]);
    await kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      `crd/testinframachines.${INFRA_GROUP}`,
    ]);
    await kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      `crd/testinframachinetemplates.${INFRA_GROUP}`,
    ]);
  }, 240_000);

  afterAll(async () => {
    await capi?.stop();
    await cp?.stop();
  });

  it('installs the CRDs of core, CABPK and KCP from the module: established, v1beta1 served, v1beta2 stored, contract labels', async () => {
    const names = Object.keys(capi.crdLabels);
    expect(names).toEqual(
      expect.arrayContaining([
        'clusters.cluster.x-k8s.io',
        'machines.cluster.x-k8s.io',
        'machinedeployments.cluster.x-k8s.io',
        'kubeadmconfigs.bootstrap.cluster.x-k8s.io',
        'kubeadmcontrolplanes.controlplane.cluster.x-k8s.io',
      ]),
    );
    // Every CRD stores v1beta2; those that serve an older version convert through the webhook.
    for (const name of names) {
      const crd = JSON.parse(await kubectl(['get', 'crd', name, '-o', 'json'])) as Json;
      const established = (crd['status'].conditions as Json[]).find((c) => c['type'] === 'Established');
      expect([name, established?.['status']]).toEqual([name, 'True']);
      const versions = crd['spec'].versions as Json[];
      expect([name, versions.find((v) => v['storage'])?.['name']]).toEqual([name, 'v1beta2']);
      if (versions.filter((v) => v['served']).length > 1) {
        expect([name, crd['spec'].conversion.strategy]).toEqual([name, 'Webhook']);
        expect(crd['spec'].conversion.webhook.clientConfig.url).toMatch(
          /^https:\/\/127\.0\.0\.1:\d+\/convert$/,
        );
      }
    }
    // v1beta1 clients (a v1beta1-API provider's controller-runtime cache) still work with these.
    for (const name of [
      'clusters.cluster.x-k8s.io',
      'machines.cluster.x-k8s.io',
      'machinesets.cluster.x-k8s.io',
      'machinedeployments.cluster.x-k8s.io',
      'kubeadmconfigs.bootstrap.cluster.x-k8s.io',
      'kubeadmcontrolplanes.controlplane.cluster.x-k8s.io',
    ]) {
      const served = await kubectl([
        'get',
        'crd',
        name,
        '-o',
        'jsonpath={.spec.versions[?(@.served==true)].name}',
      ]);
      expect([name, served.split(' ')]).toEqual([name, ['v1beta1', 'v1beta2']]);
    }
    const both = { 'cluster.x-k8s.io/v1beta1': 'v1beta1', 'cluster.x-k8s.io/v1beta2': 'v1beta2' };
    expect(capi.contractLabels()).toEqual({
      'kubeadmconfigs.bootstrap.cluster.x-k8s.io': both,
      'kubeadmconfigtemplates.bootstrap.cluster.x-k8s.io': both,
      'kubeadmcontrolplanes.controlplane.cluster.x-k8s.io': both,
      'kubeadmcontrolplanetemplates.controlplane.cluster.x-k8s.io': both,
    });
    expect(capi.managers.map((m) => [m.provider, m.process.running])).toEqual([
      ['core', true],
      ['kubeadm-bootstrap', true],
      ['kubeadm-control-plane', true],
    ]);
  });

  it('converts through the webhook: a v1beta2 Cluster reads as v1beta1 (ref version from the contract label), and back', async () => {
    // The infrastructure first, as one manifest applies them: a Cluster whose infrastructure object
    // is missing is looked at again only after 30 s.
    await createInfra('TestInfraCluster', 'c1', {
      controlPlaneEndpoint: { host: '127.0.0.1', port: endpointPort },
    });
    await create({
      apiVersion: 'cluster.x-k8s.io/v1beta2',
      kind: 'Cluster',
      metadata: { name: 'c1', namespace: NS },
      spec: {
        clusterNetwork: { pods: { cidrBlocks: ['192.168.0.0/16'] } },
        infrastructureRef: { apiGroup: INFRA_GROUP, kind: 'TestInfraCluster', name: 'c1' },
      },
    });
    const old = await get('clusters.v1beta1.cluster.x-k8s.io', 'c1');
    expect(old['apiVersion']).toBe('cluster.x-k8s.io/v1beta1');
    expect(old['spec'].infrastructureRef).toEqual({
      apiVersion: `${INFRA_GROUP}/v1beta1`,
      kind: 'TestInfraCluster',
      name: 'c1',
      namespace: NS,
    });

    await create({
      apiVersion: 'cluster.x-k8s.io/v1beta1',
      kind: 'Cluster',
      metadata: { name: 'c2', namespace: NS },
      spec: {
        infrastructureRef: { apiVersion: `${INFRA_GROUP}/v1beta1`, kind: 'TestInfraCluster', name: 'c2' },
      },
    });
    const now = await get('clusters.v1beta2.cluster.x-k8s.io', 'c2');
    expect(now['apiVersion']).toBe('cluster.x-k8s.io/v1beta2');
    expect(now['spec'].infrastructureRef).toEqual({
      apiGroup: INFRA_GROUP,
      kind: 'TestInfraCluster',
      name: 'c2',
    });
    await kubectl(['delete', 'cluster', 'c2', '-n', NS, '--timeout=30s']);
  });

  it('mirrors a v1beta1-contract infra cluster: status.ready → infrastructure provisioned, controlPlaneEndpoint copied', async () => {
    // CAPI core adopts it: the Cluster becomes its owner.
    const owned = await eventually('the Cluster to own TestInfraCluster c1', () =>
      ownerOf('testinfraclusters', 'c1', 'Cluster'),
    );
    expect(owned['name']).toBe('c1');
    expect(owned['apiVersion']).toBe('cluster.x-k8s.io/v1beta2');
    const before = await get('clusters', 'c1');
    expect(before['status']?.initialization?.infrastructureProvisioned).not.toBe(true);

    await setStatus('testinfraclusters', 'c1', { ready: true });
    const cluster = await eventually('Cluster c1 to report its infrastructure provisioned', async () => {
      const c = await get('clusters', 'c1');
      return c['status']?.initialization?.infrastructureProvisioned === true && c;
    });
    expect(cluster['spec'].controlPlaneEndpoint).toEqual({ host: '127.0.0.1', port: endpointPort });
    const asV1beta1 = await get('clusters.v1beta1.cluster.x-k8s.io', 'c1');
    expect(asV1beta1['status'].infrastructureReady).toBe(true);
  });

  it('takes a Machine with a bootstrap dataSecretName to Provisioned once its infra machine has a providerID and is ready', async () => {
    await createInfra('TestInfraMachine', 'm1');
    await create({
      apiVersion: 'cluster.x-k8s.io/v1beta2',
      kind: 'Machine',
      metadata: { name: 'm1', namespace: NS },
      spec: {
        clusterName: 'c1',
        bootstrap: { dataSecretName: 'm1-bootstrap' },
        infrastructureRef: { apiGroup: INFRA_GROUP, kind: 'TestInfraMachine', name: 'm1' },
      },
    });
    // Adopted, and Pending: a dataSecretName given by the user (no configRef) does not set
    // bootstrapDataSecretCreated, so the Machine never shows Provisioning.
    const owner = await eventually('the Machine to own TestInfraMachine m1', () =>
      ownerOf('testinframachines', 'm1', 'Machine'),
    );
    expect([owner['name'], owner['controller']]).toEqual(['m1', true]);
    expect((await get('machines', 'm1'))['status']?.phase).toBe('Pending');

    await kubectl([
      'patch',
      'testinframachines',
      'm1',
      '-n',
      NS,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { providerID: 'test://m1' } }),
    ]);
    await setStatus('testinframachines', 'm1', {
      ready: true,
      addresses: [{ type: 'InternalIP', address: '192.0.2.10' }],
    });
    const m = await eventually('Machine m1 to be Provisioned', async () => {
      const got = await get('machines', 'm1');
      return got['status']?.phase === 'Provisioned' && got;
    });
    expect(m['spec'].providerID).toBe('test://m1');
    expect(m['status'].initialization.infrastructureProvisioned).toBe(true);
    expect(m['status'].addresses).toEqual([{ type: 'InternalIP', address: '192.0.2.10' }]);
    expect(m['metadata'].labels['cluster.x-k8s.io/cluster-name']).toBe('c1');
  });

  it('runs CABPK: a control-plane Machine with a KubeadmConfig gets kubeadm-init cloud-init and the cluster CA', async () => {
    await create({
      apiVersion: 'bootstrap.cluster.x-k8s.io/v1beta1',
      kind: 'KubeadmConfig',
      metadata: { name: 'cp0', namespace: NS },
      spec: { initConfiguration: {}, clusterConfiguration: {} },
    });
    await createInfra('TestInfraMachine', 'cp0');
    await create({
      apiVersion: 'cluster.x-k8s.io/v1beta2',
      kind: 'Machine',
      metadata: { name: 'cp0', namespace: NS, labels: { 'cluster.x-k8s.io/control-plane': '' } },
      spec: {
        clusterName: 'c1',
        version: 'v1.34.4',
        bootstrap: {
          configRef: { apiGroup: 'bootstrap.cluster.x-k8s.io', kind: 'KubeadmConfig', name: 'cp0' },
        },
        infrastructureRef: { apiGroup: INFRA_GROUP, kind: 'TestInfraMachine', name: 'cp0' },
      },
    });
    const config = await eventually('KubeadmConfig cp0 to have bootstrap data', async () => {
      const c = await get('kubeadmconfigs', 'cp0');
      return c['status']?.dataSecretName && c;
    });
    const secret = await get('secret', config['status'].dataSecretName as string);
    const data = Buffer.from(secret['data'].value as string, 'base64').toString();
    expect(data).toMatch(/^## template: jinja\n#cloud-config\n/);
    expect(data).toContain('kubeadm init');
    expect(Buffer.from(secret['data'].format as string, 'base64').toString()).toBe('cloud-config');
    const ca = await get('secret', 'c1-ca');
    expect(Object.keys(ca['data']).sort()).toEqual(['tls.crt', 'tls.key']);
    await eventually('Machine cp0 to see its bootstrap data', async () => {
      const m = await get('machines', 'cp0');
      return m['spec'].bootstrap.dataSecretName === config['status'].dataSecretName;
    });
  });

  it('scales a MachineDeployment of 2 into 2 Machines and 2 infra machines cloned from the template', async () => {
    await createInfra('TestInfraMachineTemplate', 'workers', { template: { spec: { size: 'small' } } });
    await create({
      apiVersion: 'cluster.x-k8s.io/v1beta2',
      kind: 'MachineDeployment',
      metadata: { name: 'md1', namespace: NS },
      spec: {
        clusterName: 'c1',
        replicas: 2,
        template: {
          spec: {
            clusterName: 'c1',
            bootstrap: { dataSecretName: 'workers-bootstrap' },
            infrastructureRef: { apiGroup: INFRA_GROUP, kind: 'TestInfraMachineTemplate', name: 'workers' },
          },
        },
      },
    });
    // The defaulting webhook filled the selector in.
    const md = await get('machinedeployments', 'md1');
    expect(md['spec'].selector.matchLabels).toMatchObject({
      'cluster.x-k8s.io/cluster-name': 'c1',
      'cluster.x-k8s.io/deployment-name': 'md1',
    });
    const machines = await eventually('2 Machines of md1', async () => {
      const ms = await list('machines', 'cluster.x-k8s.io/deployment-name=md1');
      return ms.length === 2 && ms;
    });
    const infra = await eventually('2 TestInfraMachines cloned from the template', async () => {
      const names = machines.map((m) => m['spec'].infrastructureRef.name as string);
      const items = await list('testinframachines');
      const cloned = items.filter((i) => names.includes(i['metadata'].name));
      return cloned.length === 2 && cloned;
    });
    for (const i of infra) {
      expect(i['spec']).toEqual({ size: 'small' });
      expect(i['metadata'].annotations['cluster.x-k8s.io/cloned-from-name']).toBe('workers');
    }
    expect((await list('machinesets', 'cluster.x-k8s.io/deployment-name=md1')).length).toBe(1);
  });

  it('refuses what the validating webhooks of core and KCP refuse', async () => {
    const r = await cp.kubectl(
      [
        'patch',
        'machine',
        'm1',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({ spec: { clusterName: 'other' } }),
      ],
      {},
    );
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('spec.clusterName: Forbidden: field is immutable'); // the CRD has no such rule

    // A rule that depends on the manager's feature gates: only the webhook can know it.
    const topology = await cp.kubectl(['create', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'cluster.x-k8s.io/v1beta2',
        kind: 'Cluster',
        metadata: { name: 'managed', namespace: NS },
        spec: { topology: { classRef: { name: 'none' }, version: 'v1.34.4' } },
      }),
    });
    expect(topology.exitCode).not.toBe(0);
    expect(topology.stderr).toContain('can be set only if the ClusterTopology feature flag is enabled');

    const kcp = await cp.kubectl(['create', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'controlplane.cluster.x-k8s.io/v1beta2',
        kind: 'KubeadmControlPlane',
        metadata: { name: 'even', namespace: NS },
        spec: {
          replicas: 2,
          version: 'v1.34.4',
          machineTemplate: {
            spec: {
              infrastructureRef: { apiGroup: INFRA_GROUP, kind: 'TestInfraMachineTemplate', name: 'workers' },
            },
          },
        },
      }),
    });
    expect(kcp.exitCode).not.toBe(0);
    expect(kcp.stderr).toContain('cannot be an even number when etcd is stacked');
  });

  it('deletes everything under the Cluster when the Cluster is deleted', async () => {
    await kubectl(['delete', 'cluster', 'c1', '-n', NS, '--wait=false']);
    await eventually('Cluster c1 and everything it owns to be gone', async () => {
      const left = await Promise.all(
        [
          'clusters',
          'machinedeployments',
          'machinesets',
          'machines',
          'testinfraclusters',
          'testinframachines',
          'kubeadmconfigs',
        ].map(async (r) => (await list(r)).map((o) => `${r}/${o['metadata'].name as string}`)),
      );
      return left.flat().length === 0;
    });
  });
});

describe('ensureKubeadm: kubeadm of the test bed’s Kubernetes release', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'knet-kubeadm-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const validate = async (yaml: string) => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, yaml);
    return run(await ensureKubeadm(), ['config', 'validate', '--config', file]);
  };

  it('is stamped with the pinned version and `kubeadm config validate` accepts a valid v1beta4 config', async () => {
    expect((await run(await ensureKubeadm(), ['version', '-o', 'short'])).stdout).toBe('v1.34.4');
    const ok = await validate(
      [
        'apiVersion: kubeadm.k8s.io/v1beta4',
        'kind: ClusterConfiguration',
        'kubernetesVersion: v1.34.4',
        'controlPlaneEndpoint: 192.0.2.10:6443',
        'networking: {podSubnet: 172.26.0.0/16, serviceSubnet: 172.25.0.0/16}',
      ].join('\n'),
    );
    expect([ok.exitCode, ok.stdout]).toEqual([0, 'ok']);
  });

  it('refuses an invalid config with kubeadm’s own reason', async () => {
    const bad = await validate(
      [
        'apiVersion: kubeadm.k8s.io/v1beta4',
        'kind: ClusterConfiguration',
        'networking: {podSubnet: not-a-cidr}',
      ].join('\n'),
    );
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('networking.podSubnet: Invalid value: "not-a-cidr"');
  });
});
