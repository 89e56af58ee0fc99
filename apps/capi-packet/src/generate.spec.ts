import { loadAll } from 'js-yaml';
import { clusterManifests, templateVariables } from '@knet/capi';
import {
  PRIVATE,
  PUBLIC,
  cidrsOverlap,
  clusterValues,
  defaultClusterName,
  generateFiles,
  location,
  type GenerateInput,
  type OutputFile,
} from './generate';

const TOKEN = 'metal-token-9f8e7d6c5b4a';
/** A stand-in for the bundle's components: its two variables, as the real file uses them. */
const COMPONENTS = `apiVersion: v1
kind: Secret
metadata: { name: capi-packet-manager-credentials, namespace: capi-packet-system }
stringData:
  PACKET_API_KEY: \${PACKET_API_KEY}
---
apiVersion: v1
kind: ConfigMap
metadata: { name: url, namespace: capi-packet-system }
data:
  METAL_API_URL: \${METAL_API_URL:=https://api.equinix.com/metal/v1}
`;

const INPUT: GenerateInput = {
  clusterName: 'test1-ab12c',
  flavor: 'default',
  projectId: '0b5e3c1a-2f4d-4e6a-9c8b-7a6f5e4d3c2b',
  apiKey: TOKEN,
  defaultMetro: 'ny',
  kubernetesVersion: 'v1.34.4',
  controlPlaneCount: 1,
  workerCount: 2,
  controlPlaneType: 'c3.small.x86',
  workerType: 'c3.small.x86',
  nodeOs: 'ubuntu_24_04',
  podCidr: '192.168.0.0/16',
  serviceCidr: '172.26.0.0/16',
  sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3 capi-packet@test1-ab12c',
  components: COMPONENTS,
};

const byName = (files: OutputFile[], name: string) => {
  const f = files.find((x) => x.name === name);
  if (!f) throw new Error(`no ${name} among ${files.map((x) => x.name).join(', ')}`);
  return f;
};

/** Files that hold the token and are not private: what must stay empty. */
const tokenLeaks = (files: OutputFile[]) =>
  files.filter((f) => f.content.includes(TOKEN) && f.mode !== PRIVATE).map((f) => f.name);

describe('generateFiles', () => {
  it('writes components, cluster, machines and addons; the two with the token 0600', () => {
    const files = generateFiles(INPUT);
    expect(files.map((f) => [f.name, f.mode])).toEqual([
      ['components.yaml', PRIVATE],
      ['cluster.yaml', PUBLIC],
      ['machines.yaml', PUBLIC],
      ['addons.yaml', PRIVATE],
    ]);
    expect(files.filter((f) => f.content.includes(TOKEN)).map((f) => f.name)).toEqual([
      'components.yaml',
      'addons.yaml',
    ]);
  });

  it('the leak check finds a planted public file with the token, and the real files have none', () => {
    expect(
      tokenLeaks([{ name: 'planted.yaml', content: `token: ${TOKEN}`, mode: PUBLIC, what: '' }]),
    ).toEqual(['planted.yaml']);
    for (const flavor of ['default', 'packet-bootstrap'] as const) {
      expect(tokenLeaks(generateFiles({ ...INPUT, flavor }))).toEqual([]);
    }
  });

  it.each<[string, string | undefined, string]>([
    ["the components' default Metal API", undefined, 'https://api.equinix.com/metal/v1'],
    ['--api-url', 'http://127.0.0.1:8080/metal/v1', 'http://127.0.0.1:8080/metal/v1'],
  ])('components: the token and %s substituted, no variable left', (_what, apiUrl, want) => {
    const components = byName(generateFiles({ ...INPUT, apiUrl }), 'components.yaml').content;
    expect(templateVariables(components)).toEqual([]);
    expect(loadAll(components)).toEqual([
      expect.objectContaining({ stringData: { PACKET_API_KEY: TOKEN } }),
      expect.objectContaining({ data: { METAL_API_URL: want } }),
    ]);
  });

  it.each(['default', 'packet-bootstrap'] as const)(
    '%s: cluster.yaml and machines.yaml are the objects of the clusterctl templates with these values',
    (flavor) => {
      const files = generateFiles({ ...INPUT, flavor, controlPlaneCount: 3 });
      const want = clusterManifests(clusterValues({ ...INPUT, controlPlaneCount: 3 }), flavor);
      expect(loadAll(byName(files, 'cluster.yaml').content)).toEqual(want.cluster);
      expect(loadAll(byName(files, 'machines.yaml').content)).toEqual(want.machines);
      expect(byName(files, 'machines.yaml').what).toBe(
        flavor === 'default'
          ? 'KubeadmControlPlane, PacketMachineTemplate, MachineDeployment, KubeadmConfigTemplate'
          : 'Machine, PacketKubeadmConfig, PacketMachine, MachineDeployment, PacketKubeadmConfigTemplate, PacketMachineTemplate',
      );
    },
  );

  it('addons.yaml: how to apply it with CPEM, and the CPEM Secret', () => {
    const addons = byName(generateFiles(INPUT), 'addons.yaml').content;
    expect(addons).toContain('#   capi-packet kubeconfig test1-ab12c > test1-ab12c.kubeconfig');
    expect(addons).toContain(
      'apply -f addons.yaml -f https://github.com/equinix/cloud-provider-equinix-metal/releases/download/v3.8.1/deployment.yaml',
    );
    expect(loadAll(addons)).toEqual([
      expect.objectContaining({
        kind: 'Secret',
        metadata: { name: 'metal-cloud-config', namespace: 'kube-system' },
      }),
    ]);
  });
});

describe('location', () => {
  it.each<[Partial<GenerateInput>, object]>([
    [{}, { metro: 'ny' }],
    [{ metro: 'da' }, { metro: 'da' }],
    [{ facility: 'ewr1' }, { facility: 'ewr1' }],
  ])('%j → %j', (given, want) => {
    expect(location({ defaultMetro: 'ny', ...given })).toEqual(want);
  });
});

describe('defaultClusterName', () => {
  it.each<[number[], string]>([
    [[0, 1, 2, 3, 4], 'test1-abcde'],
    [[25, 26, 35, 36, 255], 'test1-z09ad'],
  ])('%j → %s', (bytes, want) => {
    expect(defaultClusterName(Uint8Array.from(bytes))).toBe(want);
  });
});

describe('cidrsOverlap', () => {
  it.each<[string, string, boolean]>([
    ['192.168.0.0/16', '172.26.0.0/16', false],
    ['10.0.0.0/8', '10.96.0.0/12', true],
    ['10.96.0.0/12', '10.0.0.0/8', true],
    ['10.244.0.0/16', '10.96.0.0/12', false],
    ['172.26.0.0/16', '172.26.128.0/17', true],
    ['fd00::/64', 'fd00::/48', false],
  ])('%s and %s → %s', (a, b, want) => {
    expect(cidrsOverlap(a, b)).toBe(want);
  });
});
