/**
 * The cluster manifests (tables per flavor), clusterctl's variable substitution, the add-ons and the
 * components post-processing; and the clusterctl bundle's generated files
 * (charts/capi-packet-manager/clusterctl: cluster-template*.yaml, metadata.yaml), which must equal
 * what this module generates. After a change here, rewrite them:
 *
 *   UPDATE_BUNDLE=1 npx jest -c libs/capi/jest.config.cjs templates
 *
 * The API server's validation of the manifests (with CAPI's CRDs) runs in apps/capi-packet/test.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { load, loadAll } from 'js-yaml';
import { workspaceRoot } from '@knet/testing';
import { eipTag } from './tags';
import {
  CPEM_SECRET,
  FLAVORS,
  MissingVariablesError,
  PROVIDER_LABEL,
  PROVIDER_NAME,
  RELEASE_SERIES,
  TEMPLATE_VARIABLES,
  TemplateSyntaxError,
  addonManifests,
  clusterManifests,
  clusterTemplate,
  clusterctlComponents,
  clusterctlMetadata,
  nodeInstallScript,
  substituteVariables,
  templateFileName,
  templateVariables,
  toYaml,
  type ClusterValues,
  type Flavor,
  type Manifest,
} from './templates';

const BUNDLE = join(workspaceRoot(), 'charts', 'capi-packet-manager', 'clusterctl');
const UPDATE = process.env['UPDATE_BUNDLE'] === '1';

const VALUES: ClusterValues = {
  clusterName: 'test1-ab12c',
  projectID: '0b5e3c1a-2f4d-4e6a-9c8b-7a6f5e4d3c2b',
  location: { metro: 'da' },
  kubernetesVersion: 'v1.34.4',
  controlPlaneMachineCount: 3,
  workerMachineCount: 2,
  controlPlaneNodeType: 'c3.small.x86',
  workerNodeType: 'm3.large.x86',
  sshKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3 user@example',
  nodeOS: 'ubuntu_24_04',
  podCIDR: '192.168.0.0/16',
  serviceCIDR: '172.26.0.0/16',
};

const kindName = (o: Manifest) => `${o.kind}/${o.metadata.name}`;
const at = (o: Manifest | undefined, path: string): unknown =>
  path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o);

describe('clusterManifests', () => {
  it.each<[Flavor, number, string[], string[]]>([
    [
      'default',
      3,
      ['Cluster/test1-ab12c', 'PacketCluster/test1-ab12c'],
      [
        'KubeadmControlPlane/test1-ab12c-control-plane',
        'PacketMachineTemplate/test1-ab12c-control-plane',
        'MachineDeployment/test1-ab12c-worker-a',
        'KubeadmConfigTemplate/test1-ab12c-worker-a',
        'PacketMachineTemplate/test1-ab12c-worker-a',
      ],
    ],
    [
      'packet-bootstrap',
      2,
      ['Cluster/test1-ab12c', 'PacketCluster/test1-ab12c'],
      [
        'Machine/test1-ab12c-control-plane-0',
        'PacketKubeadmConfig/test1-ab12c-control-plane-0',
        'PacketMachine/test1-ab12c-control-plane-0',
        'Machine/test1-ab12c-control-plane-1',
        'PacketKubeadmConfig/test1-ab12c-control-plane-1',
        'PacketMachine/test1-ab12c-control-plane-1',
        'MachineDeployment/test1-ab12c-worker-a',
        'PacketKubeadmConfigTemplate/test1-ab12c-worker-a',
        'PacketMachineTemplate/test1-ab12c-worker-a',
      ],
    ],
  ])('%s with %d control planes: these objects', (flavor, cps, cluster, machines) => {
    const m = clusterManifests({ ...VALUES, controlPlaneMachineCount: cps }, flavor);
    expect(m.cluster.map(kindName)).toEqual(cluster);
    expect(m.machines.map(kindName)).toEqual(machines);
    for (const o of [...m.cluster, ...m.machines]) expect(o.metadata.namespace).toBeUndefined();
  });

  it('the Cluster refers to its PacketCluster and (default) KubeadmControlPlane by apiGroup, with the networks', () => {
    const [cluster] = clusterManifests(VALUES).cluster;
    expect(cluster).toMatchObject({
      apiVersion: 'cluster.x-k8s.io/v1beta2',
      spec: {
        clusterNetwork: {
          pods: { cidrBlocks: ['192.168.0.0/16'] },
          services: { cidrBlocks: ['172.26.0.0/16'] },
        },
        controlPlaneRef: {
          apiGroup: 'controlplane.cluster.x-k8s.io',
          kind: 'KubeadmControlPlane',
          name: 'test1-ab12c-control-plane',
        },
        infrastructureRef: {
          apiGroup: 'infrastructure.cluster.x-k8s.io',
          kind: 'PacketCluster',
          name: 'test1-ab12c',
        },
      },
    });
    expect(
      at(clusterManifests(VALUES, 'packet-bootstrap').cluster[0], 'spec.controlPlaneRef'),
    ).toBeUndefined();
  });

  it.each<[string, ClusterValues['location'], Record<string, string>]>([
    ['a metro', { metro: 'da' }, { metro: 'da' }],
    ['a facility (deprecated by Equinix, still accepted)', { facility: 'ewr1' }, { facility: 'ewr1' }],
  ])('the PacketCluster in %s, with the project and CPEM', (_what, location, want) => {
    const [, pcl] = clusterManifests({ ...VALUES, location }).cluster;
    expect(pcl?.['spec']).toEqual({ projectID: VALUES.projectID, ...want, vipManager: 'CPEM' });
  });

  it('devices: plan, OS, hourly, the SSH key; kubelet gets the providerID from cloud-init and an external cloud provider', () => {
    const { machines } = clusterManifests(VALUES);
    const templates = machines.filter((o) => o.kind === 'PacketMachineTemplate');
    expect(templates.map((t) => at(t, 'spec.template.spec'))).toEqual([
      { os: 'ubuntu_24_04', machineType: 'c3.small.x86', billingCycle: 'hourly', sshKeys: [VALUES.sshKey] },
      { os: 'ubuntu_24_04', machineType: 'm3.large.x86', billingCycle: 'hourly', sshKeys: [VALUES.sshKey] },
    ]);
    const kcp = machines.find((o) => o.kind === 'KubeadmControlPlane');
    const args = [
      { name: 'cloud-provider', value: 'external' },
      { name: 'provider-id', value: 'equinixmetal://{{ v1.instance_id }}' },
    ];
    expect(at(kcp, 'spec.kubeadmConfigSpec.initConfiguration.nodeRegistration.kubeletExtraArgs')).toEqual(
      args,
    );
    expect(at(kcp, 'spec.kubeadmConfigSpec.joinConfiguration.nodeRegistration.kubeletExtraArgs')).toEqual(
      args,
    );
    expect(at(kcp, 'spec.replicas')).toBe(3);
    const kct = machines.find((o) => o.kind === 'KubeadmConfigTemplate');
    expect(at(kct, 'spec.template.spec.joinConfiguration.nodeRegistration.kubeletExtraArgs')).toEqual(args);
    const md = machines.find((o) => o.kind === 'MachineDeployment');
    expect(at(md, 'spec.replicas')).toBe(2);
    expect(at(md, 'spec.template.spec.version')).toBe('v1.34.4');
  });

  it('packet-bootstrap: control-plane Machines labelled as such, bootstrapped by PacketKubeadmConfig', () => {
    const { machines } = clusterManifests({ ...VALUES, controlPlaneMachineCount: 1 }, 'packet-bootstrap');
    const machine = machines.find((o) => o.kind === 'Machine');
    expect(machine?.metadata.labels).toEqual({
      'cluster.x-k8s.io/cluster-name': 'test1-ab12c',
      'cluster.x-k8s.io/control-plane': '',
    });
    expect(at(machine, 'spec.bootstrap.configRef')).toEqual({
      apiGroup: 'bootstrap.cluster.x-k8s.io',
      kind: 'PacketKubeadmConfig',
      name: 'test1-ab12c-control-plane-0',
    });
    expect(machines.find((o) => o.kind === 'PacketKubeadmConfig')).toMatchObject({
      apiVersion: 'bootstrap.cluster.x-k8s.io/v1beta1',
      spec: { cloudProvider: 'external' },
    });
  });

  it('the node scripts are valid POSIX shell (sh -n) and carry no ${…} (clusterctl would substitute it)', () => {
    const { machines } = clusterManifests(VALUES);
    const kcp = machines.find((o) => o.kind === 'KubeadmControlPlane');
    const scripts = [
      ...(at(kcp, 'spec.kubeadmConfigSpec.preKubeadmCommands') as string[]),
      ...(at(kcp, 'spec.kubeadmConfigSpec.postKubeadmCommands') as string[]),
    ];
    expect(scripts[0]).toBe(nodeInstallScript('v1.34.4'));
    for (const s of scripts) {
      const r = spawnSync('sh', ['-n'], { input: s, encoding: 'utf8' });
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(s).not.toMatch(/\$\{|\$\$/);
    }
    expect(scripts[0]).toContain('MINOR=$(echo v1.34.4 | cut -d. -f1-2)');
  });
});

describe('the clusterctl bundle', () => {
  const files: [string, string][] = [
    ...FLAVORS.map((f): [string, string] => [templateFileName(f), clusterTemplate(f)]),
    [
      'metadata.yaml',
      toYaml(
        [clusterctlMetadata()],
        [
          "clusterctl's Metadata: this provider's release series and the Cluster API contract each implements.",
        ],
      ),
    ],
  ];
  if (UPDATE) for (const [name, text] of files) writeFileSync(join(BUNDLE, name), text);

  it.each(files)('%s equals the generated file (UPDATE_BUNDLE=1 rewrites it)', (name, text) => {
    expect(loadAll(readFileSync(join(BUNDLE, name), 'utf8'))).toEqual(loadAll(text));
  });

  it.each(FLAVORS)('%s: its variables are those of CAPEM, with the defaults of the CLI', (flavor) => {
    const vars = templateVariables(clusterTemplate(flavor));
    const want = Object.values(TEMPLATE_VARIABLES)
      .filter((v) => !(flavor === 'packet-bootstrap' && v.name === 'CONTROL_PLANE_MACHINE_COUNT'))
      .map((v) => ('default' in v ? { name: v.name, default: v.default } : { name: v.name }));
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    expect(vars.sort(byName)).toEqual(want.sort(byName));
  });

  it.each(FLAVORS)(
    '%s: substituted as clusterctl does, it is what the CLI generates for the same values',
    (flavor) => {
      const values: ClusterValues = { ...VALUES, controlPlaneMachineCount: 1 };
      const env: Record<string, string> = {
        CLUSTER_NAME: values.clusterName,
        PROJECT_ID: values.projectID,
        METRO: 'da',
        CONTROL_PLANE_MACHINE_COUNT: '1',
        WORKER_MACHINE_COUNT: '2',
        WORKER_NODE_TYPE: 'm3.large.x86',
        SSH_KEY: values.sshKey,
      };
      const substituted = substituteVariables(clusterTemplate(flavor), (n) => env[n]);
      const { cluster, machines } = clusterManifests(values, flavor);
      expect(loadAll(substituted)).toEqual([...cluster, ...machines]);
    },
  );

  it("metadata.yaml: clusterctl's Metadata, and the chart's appVersion is in a release series", () => {
    expect(clusterctlMetadata()).toEqual({
      apiVersion: 'clusterctl.cluster.x-k8s.io/v1alpha3',
      kind: 'Metadata',
      releaseSeries: [{ major: 0, minor: 1, contract: 'v1beta1' }],
    });
    const chart = load(readFileSync(join(BUNDLE, '..', 'Chart.yaml'), 'utf8')) as { appVersion: string };
    const [major, minor] = chart.appVersion.split('.').map(Number);
    expect(RELEASE_SERIES.some((s) => s.major === major && s.minor === minor)).toBe(true);
  });
});

describe('substituteVariables (clusterctl / drone envsubst)', () => {
  const env: Record<string, string> = { SET: 'value', EMPTY: '' };
  const sub = (text: string) => substituteVariables(text, (n) => env[n]);

  it.each([
    ['${SET}', 'value'],
    ['a-${SET}-b', 'a-value-b'],
    ['${UNSET:=d}', 'd'],
    ['${EMPTY:=d}', 'd'],
    ['${SET:=d}', 'value'],
    ['${EMPTY:-d}', 'd'],
    ['${EMPTY=d}', ''],
    ['${UNSET-d}', 'd'],
    ['${UNSET:=https://api.example.com/v1}', 'https://api.example.com/v1'],
    ['$$', '$'],
    ['$${SET}', '${SET}'],
    ['$SET and $(date)', '$SET and $(date)'],
    ['{{ v1.instance_id }}', '{{ v1.instance_id }}'],
  ])('%s → %s', (text, want) => {
    expect(sub(text)).toBe(want);
  });

  it('names every variable without value or default, sorted, as clusterctl does', () => {
    const e = (() => {
      try {
        return sub('${B} ${A} ${B} ${C:=ok}');
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(MissingVariablesError);
    expect((e as MissingVariablesError).names).toEqual(['A', 'B']);
  });

  it('refuses what it does not implement instead of passing it through', () => {
    expect(() => sub('${SET#pre}')).toThrow(TemplateSyntaxError);
    expect(() => templateVariables('${SET/a/b}')).toThrow(TemplateSyntaxError);
  });
});

describe('addonManifests', () => {
  it("CPEM's configuration Secret: the token, project, metro and the cluster's elastic IP tag", () => {
    const [secret] = addonManifests({
      clusterName: 'c1',
      projectID: VALUES.projectID,
      location: { metro: 'da' },
      apiKey: 'token-1',
    });
    expect(secret?.metadata).toEqual({ name: CPEM_SECRET, namespace: 'kube-system' });
    const config = JSON.parse(
      (secret?.['stringData'] as Record<string, string>)['cloud-sa.json']!,
    ) as unknown;
    expect(config).toEqual({
      apiKey: 'token-1',
      projectID: VALUES.projectID,
      metro: 'da',
      eipTag: eipTag('c1'),
      eipHealthCheckUseHostIP: true,
    });
  });
});

describe('clusterctlComponents', () => {
  const rendered = `---
# Source: x/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: m
  namespace: ns
  labels: { app.kubernetes.io/name: m, app.kubernetes.io/managed-by: Helm, helm.sh/chart: m-0.1.0 }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: m, namespace: ns, labels: { app.kubernetes.io/name: m } }
spec:
  template:
    metadata: { labels: { app.kubernetes.io/name: m, helm.sh/chart: m-0.1.0 } }
`;

  it("puts the Namespace first, labels every object with the provider, drops helm's labels", () => {
    const out = clusterctlComponents(rendered, 'ns');
    expect(out.map(kindName)).toEqual(['Namespace/ns', 'ServiceAccount/m', 'Deployment/m']);
    for (const o of out) {
      expect(o.metadata.labels?.[PROVIDER_LABEL]).toBe(PROVIDER_NAME);
      expect(Object.keys(o.metadata.labels ?? {})).not.toContain('helm.sh/chart');
    }
    expect(at(out[2], 'spec.template.metadata.labels')).toEqual({ 'app.kubernetes.io/name': 'm' });
  });

  it('refuses a second Namespace: clusterctl wants exactly one', () => {
    expect(() =>
      clusterctlComponents('apiVersion: v1\nkind: Namespace\nmetadata: { name: x }\n', 'ns'),
    ).toThrow(/already holds a Namespace/);
  });
});
