/**
 * The capi-packet bundle against the test bed. `generate`: what it writes passes a server-side dry
 * run against the real Cluster API v1.11 (CapiCore: core, CABPK and KCP with their CRDs and
 * webhooks) and the provider's CRDs, for both flavors — as do the clusterctl templates substituted
 * as clusterctl does; its refusals (exit 2, one line, never the token); a key pair ssh-keygen reads.
 * `kubeconfig`: reads the Secret as `clusterctl get kubeconfig` does, with nothing but `get` on
 * Secrets of the namespace, and prints a kubeconfig that works.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';
import { FLAVORS, substituteVariables, templateFileName, type Manifest } from '@knet/capi';
import { CapiCore, ControlPlane, appBundle, workspaceRoot } from '@knet/testing';

jest.setTimeout(300_000);

const BUNDLE_DIR = join(workspaceRoot(), 'charts', 'capi-packet-manager', 'clusterctl');
const COMPONENTS = join(BUNDLE_DIR, 'infrastructure-components.yaml');
const CRDS = join(workspaceRoot(), 'charts', 'capi-packet-manager', 'crds');
const NS = 'clusters';
const PROJECT = '0b5e3c1a-2f4d-4e6a-9c8b-7a6f5e4d3c2b';
/** A token for these tests only (nothing calls the Metal API): any output holding it is a leak. */
const TOKEN = `metal-${Date.now().toString(36)}-token`;
const ENV = { PACKET_PROJECT_ID: PROJECT, PACKET_API_KEY: TOKEN };

let cp: ControlPlane | undefined;
let capi: CapiCore | undefined;
let bundle: string;
let dir: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI bundle as a separate process, with only PATH and `env`. */
function capiPacket(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], {
      env: { PATH: process.env['PATH'] ?? '', HOME: dir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const mode = (path: string) => statSync(path).mode & 0o777;

/** Server-side dry run in NS: the API server (CRD schemas, CAPI's webhooks) validates, stores nothing. */
async function dryRun(yaml: string, namespace = NS): Promise<string[]> {
  const r = await cp!.kubectl(['apply', '--dry-run=server', '-n', namespace, '-o', 'json', '-f', '-'], {
    input: yaml,
  });
  if (r.exitCode !== 0) throw new Error(`dry run refused: ${r.stderr.trim()}`);
  const out = JSON.parse(r.stdout) as Manifest & { items?: Manifest[] };
  return (out.kind === 'List' ? (out.items ?? []) : [out]).map((o) => `${o.kind}/${o.metadata.name}`);
}

const names = (yaml: string) =>
  loadAll(yaml).map((o) => `${(o as Manifest).kind}/${(o as Manifest).metadata.name}`);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capi-packet-test-'));
  cp = await ControlPlane.start();
  [capi, bundle] = await Promise.all([
    CapiCore.start(cp, { bootstrap: true, controlPlane: true }),
    appBundle('capi-packet'),
  ]);
  await cp.kubectlOk(['apply', '--server-side', '-f', CRDS]);
  await cp.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await cp.kubectlOk(['create', 'namespace', NS]);
}, 600_000);

afterAll(async () => {
  await capi?.stop();
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('capi-packet generate', () => {
  let out: string;
  let first: Run;
  beforeAll(async () => {
    out = join(dir, 'out', 'packet');
    first = await capiPacket(['generate', '--out', out, '--components', COMPONENTS], ENV);
  });

  it('writes components, cluster, machines, addons and a key pair, one line each, never the token', () => {
    expect([first.code, first.stderr]).toEqual([0, '']);
    expect(
      first.stdout
        .trim()
        .split('\n')
        .map((l) => l.replace(/: .*/, '')),
    ).toEqual([
      `wrote ${out}/components.yaml (0600)`,
      `wrote ${out}/cluster.yaml (0644)`,
      `wrote ${out}/machines.yaml (0644)`,
      `wrote ${out}/addons.yaml (0600)`,
      `wrote ${out}/id_ed25519 (0600)`,
      `wrote ${out}/id_ed25519.pub (0644)`,
    ]);
    expect(first.stdout).not.toContain(TOKEN);
    const modes = [
      'components.yaml',
      'cluster.yaml',
      'machines.yaml',
      'addons.yaml',
      'id_ed25519',
      'id_ed25519.pub',
    ].map((f) => [f, mode(join(out, f))]);
    expect(modes).toEqual([
      ['components.yaml', 0o600],
      ['cluster.yaml', 0o644],
      ['machines.yaml', 0o644],
      ['addons.yaml', 0o600],
      ['id_ed25519', 0o600],
      ['id_ed25519.pub', 0o644],
    ]);
  });

  it("names the cluster test1-<5 random [a-z0-9]> (the seed's default) and gives every device the generated key", () => {
    const [cluster] = loadAll(readFileSync(join(out, 'cluster.yaml'), 'utf8')) as Manifest[];
    expect(cluster!.metadata.name).toMatch(/^test1-[a-z0-9]{5}$/);
    const derived = spawnSync('ssh-keygen', ['-y', '-f', join(out, 'id_ed25519')], { encoding: 'utf8' });
    const pub = readFileSync(join(out, 'id_ed25519.pub'), 'utf8').trim();
    expect(derived.stdout.trim()).toBe(pub);
    const templates = (loadAll(readFileSync(join(out, 'machines.yaml'), 'utf8')) as Manifest[]).filter(
      (o) => o.kind === 'PacketMachineTemplate',
    );
    expect(
      templates.map(
        (t) => (t['spec'] as { template: { spec: { sshKeys: string[] } } }).template.spec.sshKeys,
      ),
    ).toEqual([[pub], [pub]]);
  });

  it('default flavor: cluster.yaml and machines.yaml pass a dry run with CAPI (core, CABPK, KCP webhooks) and the provider CRDs', async () => {
    const yaml = ['cluster.yaml', 'machines.yaml']
      .map((f) => readFileSync(join(out, f), 'utf8'))
      .join('---\n');
    expect(await dryRun(yaml)).toEqual(names(yaml));
    expect(names(yaml).map((n) => n.split('/')[0])).toEqual([
      'Cluster',
      'PacketCluster',
      'KubeadmControlPlane',
      'PacketMachineTemplate',
      'MachineDeployment',
      'KubeadmConfigTemplate',
      'PacketMachineTemplate',
    ]);
  });

  it('components.yaml carries the token for the manager; addons.yaml (CPEM) passes a dry run into kube-system', async () => {
    const secret = (loadAll(readFileSync(join(out, 'components.yaml'), 'utf8')) as Manifest[]).find(
      (o) => o.kind === 'Secret',
    );
    expect(secret?.['stringData']).toEqual({ PACKET_API_KEY: TOKEN });
    expect(await dryRun(readFileSync(join(out, 'addons.yaml'), 'utf8'), 'kube-system')).toEqual([
      'Secret/metal-cloud-config',
    ]);
  });

  it('packet-bootstrap, 3 control planes in a facility: the same dry run accepts it', async () => {
    const pb = join(dir, 'pb');
    const r = await capiPacket(
      [
        'generate',
        '--out',
        pb,
        '--components',
        COMPONENTS,
        '--flavor=packet-bootstrap',
        '--control-plane-count=3',
      ],
      { ...ENV, CLUSTER_NAME: 'pb1', FACILITY: 'ewr1', WORKER_MACHINE_COUNT: '2' },
    );
    expect([r.code, r.stderr]).toEqual([0, '']);
    const yaml = ['cluster.yaml', 'machines.yaml']
      .map((f) => readFileSync(join(pb, f), 'utf8'))
      .join('---\n');
    expect(await dryRun(yaml)).toEqual(names(yaml));
    expect(names(yaml).filter((n) => n.startsWith('Machine/'))).toEqual([
      'Machine/pb1-control-plane-0',
      'Machine/pb1-control-plane-1',
      'Machine/pb1-control-plane-2',
    ]);
    const pcl = (loadAll(yaml) as Manifest[]).find((o) => o.kind === 'PacketCluster');
    expect(pcl?.['spec']).toEqual({ projectID: PROJECT, facility: 'ewr1', vipManager: 'CPEM' });
  });

  it.each(FLAVORS)(
    'the clusterctl template of %s, substituted as clusterctl does, passes the same dry run',
    async (flavor) => {
      const vars: Record<string, string> = {
        CLUSTER_NAME: `tpl-${flavor}`,
        PROJECT_ID: PROJECT,
        SSH_KEY: readFileSync(join(out, 'id_ed25519.pub'), 'utf8').trim(),
        CONTROL_PLANE_MACHINE_COUNT: '3',
        WORKER_MACHINE_COUNT: '2',
      };
      const yaml = substituteVariables(
        readFileSync(join(BUNDLE_DIR, templateFileName(flavor)), 'utf8'),
        (n) => vars[n],
      );
      expect(await dryRun(yaml)).toEqual(names(yaml));
    },
  );

  it("the dry run is not a formality: KCP's webhook refuses 2 control planes, and so does generate, up front", async () => {
    const vars: Record<string, string> = {
      CLUSTER_NAME: 'even',
      PROJECT_ID: PROJECT,
      SSH_KEY: readFileSync(join(out, 'id_ed25519.pub'), 'utf8').trim(),
      CONTROL_PLANE_MACHINE_COUNT: '2',
    };
    const yaml = substituteVariables(
      readFileSync(join(BUNDLE_DIR, 'cluster-template.yaml'), 'utf8'),
      (n) => vars[n],
    );
    await expect(dryRun(yaml)).rejects.toThrow(/KubeadmControlPlane.*even/);
    const r = await capiPacket(
      ['generate', '--out', join(dir, 'even'), '--components', COMPONENTS, '--control-plane-count=2'],
      ENV,
    );
    expect([r.code, r.stderr]).toEqual([
      2,
      'capi-packet: error: --control-plane-count (CONTROL_PLANE_MACHINE_COUNT) is 2: KubeadmControlPlane refuses an even number of control planes (stacked etcd); give 1, 3 or 5\n',
    ]);
  });

  it('refuses to overwrite without -f (exit 2, one line, nothing changed); with -f rewrites and keeps the key pair', async () => {
    const before = readFileSync(join(out, 'cluster.yaml'), 'utf8');
    const key = readFileSync(join(out, 'id_ed25519'), 'utf8');
    const again = await capiPacket(['generate', '--out', out, '--components', COMPONENTS], ENV);
    expect(again).toEqual({
      code: 2,
      stdout: '',
      stderr: `capi-packet: error: ${out}/components.yaml exists (and 3 more): give -f to overwrite\n`,
    });
    expect(readFileSync(join(out, 'cluster.yaml'), 'utf8')).toBe(before);
    const forced = await capiPacket(['generate', '-f', '--out', out, '--components', COMPONENTS], {
      ...ENV,
      CLUSTER_NAME: 'again',
    });
    expect([forced.code, forced.stderr]).toEqual([0, '']);
    expect(forced.stdout).toContain(`using the SSH key pair already in ${out}/id_ed25519`);
    expect(readFileSync(join(out, 'id_ed25519'), 'utf8')).toBe(key);
    expect((loadAll(readFileSync(join(out, 'cluster.yaml'), 'utf8')) as Manifest[])[0]!.metadata.name).toBe(
      'again',
    );
  });

  it.each<[string, string[], Record<string, string>, string]>([
    [
      'no project and no token',
      [],
      {},
      '--project-id (PACKET_PROJECT_ID): required; --api-key (PACKET_API_KEY): required',
    ],
    [
      'metro and facility',
      [],
      { ...ENV, METRO: 'ny', FACILITY: 'ewr1' },
      'give --metro (METRO) or --facility (FACILITY), not both: devices go to one place',
    ],
    [
      'a private key as SSH_KEY',
      [],
      {
        ...ENV,
        SSH_KEY:
          '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----',
      },
      '--ssh-key (SSH_KEY): is a private key: give the public key line (the .pub file)',
    ],
  ])('%s: exit 2, one line', async (_what, args, env, message) => {
    expect(
      await capiPacket(['generate', '--out', join(dir, 'refused'), '--components', COMPONENTS, ...args], env),
    ).toEqual({
      code: 2,
      stdout: '',
      stderr: `capi-packet: error: ${message}\n`,
    });
  });

  it('without --components, the file shipped next to the CLI; run from a bare bundle it says what to give', async () => {
    const r = await capiPacket(['generate', '--out', join(dir, 'bare')], ENV);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^capi-packet: error: no \S+\/clusterctl\/infrastructure-components\.yaml: give --components <file> \(charts\/capi-packet-manager\/clusterctl\/infrastructure-components\.yaml in the knet repository\)\n$/,
    );
  });
});

describe('capi-packet kubeconfig', () => {
  let reader: string;
  const workload = () => cp!.adminKubeconfig();
  beforeAll(async () => {
    await cp!.apply([
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: 'c1-kubeconfig',
          namespace: NS,
          labels: { 'cluster.x-k8s.io/cluster-name': 'c1' },
        },
        type: 'cluster.x-k8s.io/secret',
        stringData: { value: workload() },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'odd-kubeconfig', namespace: NS },
        stringData: { config: 'x' },
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'kubeconfig-reader', namespace: NS },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'kubeconfig-reader', namespace: NS },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'kubeconfig-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: NS }],
      },
    ]);
    reader = await cp!.serviceAccountKubeconfig(NS, 'reader');
  });

  it('prints key value of <cluster>-kubeconfig with nothing but get on Secrets; the printed kubeconfig works', async () => {
    const r = await capiPacket(['kubeconfig', 'c1', '-n', NS, '--kubeconfig', reader]);
    expect(r).toEqual({ code: 0, stdout: workload(), stderr: '' });
    const file = join(dir, 'c1.kubeconfig');
    writeFileSync(file, r.stdout, { mode: 0o600 });
    expect((await cp!.kubectlOk(['get', '--raw', '/readyz'], { kubeconfig: file })).trim()).toBe('ok');
  });

  it("without -n, the kubeconfig context's namespace (KUBECONFIG works too), else default", async () => {
    /** The reader's kubeconfig (its context in NS) with the context's namespace set to `namespace`. */
    const withNamespace = (namespace: string | undefined) => {
      const kc = new KubeConfig();
      kc.loadFromFile(reader);
      kc.contexts = kc.contexts.map((c) => ({ ...c, namespace }));
      const file = join(dir, `reader-${namespace ?? 'none'}.kubeconfig`);
      writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
      return file;
    };
    expect(await capiPacket(['kubeconfig', 'c1'], { KUBECONFIG: withNamespace(NS) })).toEqual({
      code: 0,
      stdout: workload(),
      stderr: '',
    });
    expect((await capiPacket(['kubeconfig', 'c1', '--kubeconfig', withNamespace(undefined)])).stderr).toMatch(
      /^capi-packet: get Secret default\/c1-kubeconfig: .*forbidden/i,
    );
  });

  it.each<[string, number, string[], string]>([
    [
      'no such Secret',
      1,
      ['kubeconfig', 'c2', '-n', NS],
      `capi-packet: no Secret ${NS}/c2-kubeconfig: Cluster c2 is not in namespace ${NS} (kubectl get clusters -A), or its control plane is not initialized yet\n`,
    ],
    [
      'a Secret without key value',
      1,
      ['kubeconfig', 'odd', '-n', NS],
      `capi-packet: Secret ${NS}/odd-kubeconfig has no key "value": it is not a Cluster API kubeconfig Secret\n`,
    ],
    [
      'a name that is no Cluster name',
      2,
      ['kubeconfig', 'C1', '-n', NS],
      `capi-packet: error: kubeconfig: want 'kubeconfig CLUSTER' with a Cluster name such as test1-ab12c, got "C1"\n`,
    ],
  ])('%s: exit %d, one line', async (_what, code, args, stderr) => {
    expect(await capiPacket([...args, '--kubeconfig', reader])).toEqual({ code, stdout: '', stderr });
  });

  it('a namespace it may not read: the API server refusal, one line', async () => {
    const r = await capiPacket(['kubeconfig', 'c1', '-n', 'default', '--kubeconfig', reader]);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      expect.stringMatching(/^capi-packet: get Secret default\/c1-kubeconfig: .*forbidden/i),
      '',
    ]);
  });
});

describe('capi-packet --help', () => {
  it('lists the commands; each command its flags with env vars and defaults', async () => {
    const top = await capiPacket(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/generate +write a workload cluster's manifests/);
    const generate = await capiPacket(['generate', '--help']);
    expect(generate.code).toBe(0);
    const help = generate.stdout.replace(/\s+/g, ' ');
    for (const want of [
      '(env: PACKET_PROJECT_ID, required; aliases: PROJECT_ID)',
      '(env: PACKET_API_KEY, required)',
      '(env: KUBERNETES_VERSION, default: "v1.34.4")',
      '(env: METRO)',
    ]) {
      expect(help).toContain(want);
    }
  });
});
