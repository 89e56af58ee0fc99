/**
 * The kgctl bundle against a real kube-apiserver: three Nodes annotated as running agents publish
 * them and a Peer (through the Peer CRD of charts/kilo-agent), then `graph`, `showconf node|peer`
 * in every output, and the refusals (exit 2, one line).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ControlPlane, appBundle, workspaceRoot } from '@knet/testing';

jest.setTimeout(180_000);

const key = (s: string): string =>
  Buffer.concat([Buffer.from(s), Buffer.alloc(32 - s.length)]).toString('base64');
const KEYS = { a: key('node-a'), b: key('node-b'), c: key('node-c'), laptop: key('laptop') };

let cp: ControlPlane | undefined;
let bundle: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kgctl(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    if (!cp) throw new Error('no control plane');
    const child = spawn(process.execPath, [bundle, ...args], {
      env: { PATH: process.env['PATH'] ?? '', KUBECONFIG: cp.kubeconfigPath },
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

function nodeYaml(name: string, n: number, location: string, wireguardIP: string): string {
  const now = Math.floor(Date.now() / 1000);
  return `apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    kilo.squat.ai/key: ${KEYS[name as 'a' | 'b' | 'c']}
    kilo.squat.ai/endpoint: 203.0.113.${n}:51820
    kilo.squat.ai/internal-ip: 192.168.0.${n}/24
    kilo.squat.ai/last-seen: "${now}"
    kilo.squat.ai/wireguard-ip: "${wireguardIP}"
    kilo.squat.ai/location: ${location}
    kilo.squat.ai/granularity: location
spec:
  podCIDR: 10.2.${n}.0/24
`;
}

/** The Nodes as agents that checked in just now would have them. */
async function publishNodes(): Promise<void> {
  const docs = [
    nodeYaml('a', 1, 'one', '10.4.0.1/16'),
    nodeYaml('b', 2, 'two', '10.4.0.2/16'),
    nodeYaml('c', 3, 'two', ''),
  ];
  await cp?.kubectlOk(['apply', '-f', '-'], { input: docs.join('---\n') });
}

beforeAll(async () => {
  [cp, bundle] = await Promise.all([ControlPlane.start(), appBundle('kgctl')]);
  await cp.kubectlOk([
    'apply',
    '-f',
    join(workspaceRoot(), 'charts/kilo-agent/crds/peers.kilo.squat.ai.yaml'),
  ]);
  await cp.kubectlOk(['wait', '--for=condition=established', '--timeout=60s', 'crd/peers.kilo.squat.ai']);
  await cp.kubectlOk(['apply', '-f', '-'], {
    input: `apiVersion: kilo.squat.ai/v1alpha1
kind: Peer
metadata:
  name: laptop
spec:
  allowedIPs: [10.5.0.1/32]
  publicKey: ${KEYS.laptop}
  endpoint: { dnsOrIP: { ip: 198.51.100.7 }, port: 51821 }
  persistentKeepalive: 10
`,
  });
});

afterAll(async () => {
  await cp?.stop();
});

beforeEach(publishNodes);

const SEGMENT_ONE = `AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 203.0.113.1:51820`;
const SEGMENT_TWO = `AllowedIPs = 10.2.2.0/24, 192.168.0.2/32, 10.2.3.0/24, 192.168.0.3/32, 10.4.0.2/32
Endpoint = 203.0.113.2:51820`;

describe('kgctl against the API server', () => {
  it('graph draws the two locations, their leaders and the Peer', async () => {
    const r = await kgctl('graph');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.startsWith('digraph kilo {\n\tlabel="10.4.0.0/16";\n')).toBe(true);
    expect(r.stdout).toContain(
      '\t"b"->"c"[ dir=both ];\n\t"a"->"b"[ dir=both ];\n\t"a"->"laptop"[ dir=both, style=dashed ];\n\t"b"->"laptop"[ dir=both, style=dashed ];\n',
    );
    expect(r.stdout).toContain(
      '\t"a" [ label="location:one\\na\\n10.2.1.0/24\\n192.168.0.1\\n10.4.0.1\\n203.0.113.1:51820", rank=1, shape=ellipse ];\n',
    );
    expect(r.stdout).toContain(
      '\t"c" [ label="location:two\\nc\\n10.2.3.0/24\\n192.168.0.3", shape=ellipse ];\n',
    );
    expect(r.stdout).toContain('\t"laptop" [ label="laptop\\n198.51.100.7:51821\n", shape=ellipse ];\n');
    expect(r.stdout.endsWith('\n}\n\n')).toBe(true);
  });

  it('showconf node prints the leader’s config', async () => {
    const r = await kgctl('showconf', 'node', 'a');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`[Interface]
ListenPort = 51820

[Peer]
${SEGMENT_TWO}
PersistentKeepalive = 0
PublicKey = ${KEYS.b}

[Peer]
AllowedIPs = 10.5.0.1/32
Endpoint = 198.51.100.7:51821
PersistentKeepalive = 0
PublicKey = ${KEYS.laptop}
`);
  });

  it('showconf node --as-peer prints the segment as a [Peer], a Peer CR in yaml and json', async () => {
    const wg = await kgctl('showconf', 'node', 'b', '--as-peer', '--allowed-ips', '10.96.0.0/12');
    expect(wg.stdout).toBe(`[Peer]
${SEGMENT_TWO.replace('10.4.0.2/32', '10.4.0.2/32, 10.96.0.0/12')}
PersistentKeepalive = 0
PublicKey = ${KEYS.b}
`);
    const yaml = await kgctl('showconf', 'node', 'a', '--as-peer', '-o', 'yaml');
    expect(yaml).toMatchObject({ code: 0, stderr: '' });
    expect(yaml.stdout).toBe(`apiVersion: kilo.squat.ai/v1alpha1
kind: Peer
metadata:
  name: a
spec:
  allowedIPs:
  - 10.2.1.0/24
  - 192.168.0.1/32
  - 10.4.0.1/32
  endpoint:
    dnsOrIP:
      ip: 203.0.113.1
    port: 51820
  publicKey: ${KEYS.a}
`);
    const json = await kgctl('showconf', 'node', 'a', '--as-peer', '-o', 'json');
    expect(JSON.parse(json.stdout)).toEqual({
      kind: 'Peer',
      apiVersion: 'kilo.squat.ai/v1alpha1',
      metadata: { name: 'a' },
      spec: {
        allowedIPs: ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32'],
        endpoint: { dnsOrIP: { ip: '203.0.113.1' }, port: 51820 },
        publicKey: KEYS.a,
      },
    });
    // The YAML a cluster applies for the other one: the API server accepts it.
    await cp?.kubectlOk(['apply', '--dry-run=server', '-f', '-'], { input: yaml.stdout });
  });

  it('showconf peer prints the Peer’s config, and itself with --as-peer', async () => {
    const conf = await kgctl('showconf', 'peer', 'laptop');
    expect(conf).toMatchObject({ code: 0, stderr: '' });
    expect(conf.stdout).toBe(`[Peer]
${SEGMENT_ONE}
PersistentKeepalive = 10
PublicKey = ${KEYS.a}

[Peer]
${SEGMENT_TWO}
PersistentKeepalive = 10
PublicKey = ${KEYS.b}
`);
    const wg = await kgctl('showconf', 'peer', 'laptop', '--as-peer', '-o', 'wireguard');
    expect(wg.stdout).toBe(`[Peer]
AllowedIPs = 10.5.0.1/32
Endpoint = 198.51.100.7:51821
PersistentKeepalive = 10
PublicKey = ${KEYS.laptop}
`);
    const yaml = await kgctl('showconf', 'peer', 'laptop', '--as-peer', '-o', 'yaml');
    expect(yaml.stdout).toContain('  persistentKeepalive: 10\n');
    const json = await kgctl('showconf', 'peer', 'laptop', '--as-peer', '-o', 'json');
    expect(JSON.parse(json.stdout)).toMatchObject({
      metadata: { name: 'laptop' },
      spec: { allowedIPs: ['10.5.0.1/32'], persistentKeepalive: 10 },
    });
  });

  it.each([
    [['showconf', 'node', 'zz'], /did not find any node named "zz"/],
    [['showconf', 'node', 'c'], /Node "c" is not a leader node/],
    [['showconf', 'peer', 'zz'], /did not find any peer named "zz"/],
    [
      ['showconf', 'node', 'a', '-o', 'xml'],
      /--output \(KGCTL_OUTPUT\): must be one of wireguard, yaml, json/,
    ],
    [['showconf', 'thing', 'a'], /want 'showconf node NAME' or 'showconf peer NAME'/],
  ])('kgctl %j exits 2 with one line', async (args, message) => {
    const r = await kgctl(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});
