import { cp, mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadYaml } from '@kubernetes/client-node';
import {
  isSignedBy,
  issueCertificate,
  loadCertificateAuthority,
  renderKubeconfig,
  type CertificateAuthority,
  type KubeconfigCredentials,
} from '@knet/crypto';
import { ControlPlane, ensureKubeadm, ManagedProcess, run, until, type RunResult } from '@knet/testing';
import { execa } from 'execa';
import {
  BOOTSTRAP_TOKEN_GROUP,
  bootstrapTokenSecret,
  caCertHash,
  clusterPki,
  newBootstrapToken,
  controlPlaneFiles,
  renderUserData,
  type ClusterPki,
  type NodeRole,
  type UserDataInput,
} from '../src/bootstrap';
import { opensslRsaCa } from '../src/bootstrap/fixtures';

// The rendered bootstrap against the real tools: kubeadm 1.34.4 built from the test bed's Kubernetes
// module (`kubeadm config validate`, `kubeadm init --dry-run` and `kubeadm certs check-expiration`
// in external CA mode) and Debian's cloud-init (`cloud-init schema`). kubeadm runs in namespaces
// this test creates: a mount namespace where the machine's /etc/kubernetes is a temp dir, and a
// network namespace with one veth pair (192.0.2.20/24, a default route), so the dry run
// neither sees nor touches this host's /etc or network.

const ENDPOINT = { host: '203.0.113.10', port: 6443 };
const ADVERTISE = '192.0.2.20';
const JOIN_ADDRESS = '198.51.100.11';
const ROLES: NodeRole[] = ['init', 'join-control-plane', 'join-worker'];
const KUBEADM_TIMEOUT_MS = 120_000;

interface Machine {
  role: NodeRole;
  userdata: string;
  /** Where the machine's files were written (its /). */
  root: string;
  kubeadmConfig: string;
}

let dir: string;
let kubeadm: string;
let nsScript: string;
const pkis: Record<'ecdsa' | 'rsa', ClusterPki> = {} as never;
const machines: Record<string, Machine> = {};

beforeAll(async () => {
  const cloudInit = await run('cloud-init', ['--version']).catch(() => undefined);
  if (!cloudInit || cloudInit.exitCode !== 0)
    throw new Error(
      "cloud-init is missing: run npm run setup (scripts/setup-system.sh installs Debian's cloud-init)",
    );
  if (process.getuid?.() !== 0)
    throw new Error('bootstrap.test needs root (unshare: mount and network namespaces)');
  dir = await mkdtemp(join(tmpdir(), 'knet-capi-bootstrap-'));
  kubeadm = await ensureKubeadm();
  nsScript = join(dir, 'in-namespaces.sh');
  await writeFile(
    nsScript,
    [
      'set -euo pipefail',
      'root=$1; shift',
      'ip link add knet-v0 type veth peer name knet-v1 && ip link set knet-v1 up && ip link set lo up',
      `ip addr add ${ADVERTISE}/24 dev knet-v0 && ip link set knet-v0 up`,
      'ip route add default via 192.0.2.1 dev knet-v0',
      // /etc as an overlay (writes land in a tmpfs), with the machine's files at /etc/kubernetes.
      'scratch=$(mktemp -d) && mount -t tmpfs tmpfs "$scratch" && mkdir "$scratch/u" "$scratch/w"',
      'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$scratch/u,workdir=$scratch/w" /etc',
      // kubeadm looks its node name up: answer from /etc/hosts, and fail DNS fast instead of timing out.
      `echo "nameserver 127.0.0.1" > /etc/resolv.conf && echo "${ADVERTISE} alpha-cp-0 beta-cp-0" >> /etc/hosts`,
      'mkdir -p /etc/kubernetes "$root/etc/kubernetes" && mount --bind "$root/etc/kubernetes" /etc/kubernetes',
      'exec "$@"',
      '',
    ].join('\n'),
  );

  pkis.ecdsa = await clusterPki('alpha');
  // A CA as CABPK or kubeadm makes it (RSA-2048, PKCS#1), kept by clusterPki as it is.
  const rsa = await opensslRsaCa(dir);
  const b64 = (pem: string) => Buffer.from(pem).toString('base64');
  pkis.rsa = await clusterPki('beta', {
    ca: { data: { 'tls.crt': b64(rsa.certPem), 'tls.key': b64(rsa.keyPem) } },
  });

  for (const [name, pki, clusterName] of [
    ['ecdsa', pkis.ecdsa, 'alpha'],
    ['rsa', pkis.rsa, 'beta'],
  ] as const)
    for (const role of ROLES) await render(`${name}-${role}`, pki, clusterName, role);
  await render('extras-init', pkis.ecdsa, 'alpha', 'init', {
    cloudProvider: 'external',
    kubeletExtraArgs: { 'max-pods': '200' },
    nodeIp: 'private-ipv4',
    extra: {
      preKubeadmCommands: ['echo pre'],
      postKubeadmCommands: ['echo post'],
      sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7 ops@example'],
      users: [
        {
          name: 'ops',
          sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8 ops'],
          sudo: 'ALL=(ALL) NOPASSWD:ALL',
        },
      ],
    },
  });
  await render('dns-endpoint-worker', pkis.ecdsa, 'alpha', 'join-worker', {
    controlPlaneEndpoint: { host: 'api.alpha.example', port: 443 },
  });
}, 15 * 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function render(
  name: string,
  pki: ClusterPki,
  clusterName: string,
  role: NodeRole,
  overrides: Partial<UserDataInput> = {},
) {
  const machineName = `${clusterName}-${role === 'join-worker' ? 'md-0' : role === 'init' ? 'cp-0' : 'cp-1'}`;
  const nodeAddresses = role === 'join-control-plane' ? [JOIN_ADDRESS] : undefined;
  const files =
    role === 'join-worker'
      ? undefined
      : await controlPlaneFiles(pki, {
          role,
          clusterName,
          machineName,
          controlPlaneEndpoint: ENDPOINT,
          serviceCIDR: '10.96.0.0/12',
          dnsDomain: 'cluster.local',
          nodeAddresses,
        });
  const userdata = renderUserData({
    role,
    clusterName,
    machineName,
    kubernetesVersion: 'v1.34.4',
    controlPlaneEndpoint: ENDPOINT,
    podCIDR: '192.168.0.0/16',
    serviceCIDR: '10.96.0.0/12',
    dnsDomain: 'cluster.local',
    token: 'abcdef.0123456789abcdef',
    tokenTtlMs: role === 'init' ? 3600_000 : undefined,
    caCertPem: pki.ca.certPem,
    caCertHash: caCertHash(pki.ca.certPem),
    files,
    nodeAddresses,
    ...overrides,
  });
  const root = join(dir, name, 'root');
  await mkdir(root, { recursive: true });
  await writeFile(join(dir, name, 'userdata.yaml'), userdata);
  for (const f of loadYaml<{ write_files: { path: string; content: string }[] }>(userdata).write_files) {
    await mkdir(dirname(join(root, f.path)), { recursive: true });
    await writeFile(join(root, f.path), f.content);
  }
  machines[name] = { role, userdata, root, kubeadmConfig: join(root, 'run/kubeadm/kubeadm.yaml') };
}

/** Runs argv in fresh mount and network namespaces with `root`/etc/kubernetes at /etc/kubernetes. */
function inNamespaces(root: string, argv: string[]): Promise<RunResult> {
  return run('unshare', ['--mount', '--net', '--propagation', 'private', 'bash', nsScript, root, ...argv], {
    timeoutMs: 120_000,
  });
}

/** Every file under `root` and its content. */
async function contents(root: string): Promise<Map<string, string>> {
  const entries = (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  const files = entries.map((e) => join(e.parentPath, e.name));
  return new Map(await Promise.all(files.map(async (f) => [f, await readFile(f, 'utf8')] as const)));
}

describe('kubeadm config validate (kubeadm 1.34.4)', () => {
  it('fails on a deliberately broken config first: a misspelt field, and a join without a CA pin', async () => {
    const worker = machines['ecdsa-join-worker']!;
    const { stdout } = await execa('cat', [worker.kubeadmConfig]);
    const typo = join(dir, 'typo.yaml');
    await writeFile(typo, stdout.replace('caCertHashes:', 'caCertHashez:'));
    const r1 = await run(kubeadm, ['config', 'validate', '--config', typo]);
    expect([r1.exitCode, r1.stderr]).toEqual([
      1,
      expect.stringContaining('unknown field "discovery.bootstrapToken.caCertHashez"'),
    ]);
    const unpinned = join(dir, 'unpinned.yaml');
    await writeFile(unpinned, stdout.replace(/\n\s+caCertHashes:\n\s+- sha256:[0-9a-f]+/, ''));
    const r2 = await run(kubeadm, ['config', 'validate', '--config', unpinned]);
    expect([r2.exitCode, r2.stderr]).toEqual([
      1,
      expect.stringContaining('without caCertHashes can be unsafe'),
    ]);
  });

  it.each([
    ...['ecdsa', 'rsa'].flatMap((p) => ROLES.map((r) => `${p}-${r}`)),
    'extras-init',
    'dns-endpoint-worker',
  ])('%s: the rendered config is valid', async (name) => {
    const r = await run(kubeadm, ['config', 'validate', '--config', machines[name]!.kubeadmConfig]);
    expect([r.exitCode, r.stdout, r.stderr]).toEqual([0, 'ok', '']);
  });
});

describe("kubeadm's external CA mode accepts the provider-issued files", () => {
  const KEYLESS = ['ca', 'front-proxy-ca', 'etcd/ca'].map(
    (ca) => `[certs] Using existing ${ca} keyless certificate authority`,
  );
  const USER_KUBECONFIGS = [
    'admin.conf',
    'super-admin.conf',
    'kubelet.conf',
    'controller-manager.conf',
    'scheduler.conf',
  ].map((f) => `[kubeconfig] External CA mode: Using user provided ${f}`);

  it(
    'a first control plane missing its API server certificate is refused (kubeadm does check)',
    async () => {
      const m = machines['ecdsa-init']!;
      const broken = join(dir, 'broken-init', 'root');
      await cp(m.root, broken, { recursive: true });
      await unlink(join(broken, 'etc/kubernetes/pki/apiserver.crt'));
      const r = await inNamespaces(broken, [
        kubeadm,
        'init',
        '--dry-run',
        '--ignore-preflight-errors=all',
        '--config',
        join(broken, 'run/kubeadm/kubeadm.yaml'),
      ]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('invalid or incomplete external CA');
    },
    KUBEADM_TIMEOUT_MS,
  );

  it.each([
    ['ecdsa', 'generated ECDSA CAs'],
    ['rsa', 'a CABPK-style RSA cluster CA kept from the existing Secret'],
  ] as const)(
    "kubeadm init --dry-run with %s (%s): no CA generated, no CA key anywhere, the kubelet signer wired, the pin is kubeadm's",
    async (pki, _what) => {
      const m = machines[`${pki}-init`]!;
      const before = await contents(m.root);
      const r = await inNamespaces(m.root, [
        kubeadm,
        'init',
        '--dry-run',
        '--ignore-preflight-errors=all',
        '--config',
        m.kubeadmConfig,
      ]);
      expect([r.exitCode, r.stderr.split('\n').filter((l) => /^error|invalid/i.test(l))]).toEqual([0, []]);
      for (const line of [
        ...KEYLESS,
        ...USER_KUBECONFIGS,
        '[certs] Using existing sa keys',
        'Your Kubernetes control-plane has initialized successfully!',
      ])
        expect(r.stdout).toContain(line);
      expect(r.stdout).not.toMatch(/\[certs\] Generating|\[kubeconfig\] Writing/);
      // kube-controller-manager: kubeadm blanks the cluster signer (no CA key) and keeps ours.
      for (const flag of [
        '- --cluster-signing-cert-file=\n',
        '- --cluster-signing-key-file=\n',
        '- --cluster-signing-kubelet-client-cert-file=/etc/kubernetes/pki/kubelet-signer.crt',
        '- --cluster-signing-kubelet-client-key-file=/etc/kubernetes/pki/kubelet-signer.key',
        '- --client-ca-file=/etc/kubernetes/pki/client-ca-bundle.crt',
      ])
        expect(r.stdout).toContain(flag);
      // The join command kubeadm prints carries its own pin (pubkeypin.Hash) of our ca.crt.
      const pins = [...r.stdout.matchAll(/--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})/g)].map(
        (x) => x[1],
      );
      expect(pins).toEqual([caCertHash(pkis[pki].ca.certPem), caCertHash(pkis[pki].ca.certPem)]);
      // The dry run wrote only copies and manifests under /etc/kubernetes/tmp; no key of any CA anywhere.
      const after = await contents(m.root);
      for (const [f, content] of before) expect([f, after.get(f)]).toEqual([f, content]);
      const added = [...after.keys()].filter((f) => !before.has(f));
      expect(added.filter((f) => !f.includes('/etc/kubernetes/tmp/kubeadm-init-dryrun'))).toEqual([]);
      expect([...after.keys()].filter((f) => /(^|\/)(ca|front-proxy-ca)\.key$/.test(f))).toEqual([]);
    },
    KUBEADM_TIMEOUT_MS,
  );

  it('a joining control plane: kubeadm certs check-expiration sees every certificate, each CA externally managed', async () => {
    const init = machines['ecdsa-init']!;
    const m = machines['ecdsa-join-control-plane']!;
    const { stdout: initConfig } = await execa('cat', [init.kubeadmConfig]);
    const clusterConfig = join(dir, 'cluster-configuration.yaml');
    await writeFile(
      clusterConfig,
      initConfig.slice(
        initConfig.indexOf('---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration'),
      ),
    );
    const r = await inNamespaces(m.root, [kubeadm, 'certs', 'check-expiration', '--config', clusterConfig]);
    expect(r.exitCode).toBe(0);
    const rows = r.stdout.split('\n').map((l) => l.trim().split(/\s{2,}/));
    const certs = [
      'admin.conf',
      'apiserver',
      'apiserver-etcd-client',
      'apiserver-kubelet-client',
      'controller-manager.conf',
      'etcd-healthcheck-client',
      'etcd-peer',
      'etcd-server',
      'front-proxy-client',
      'scheduler.conf',
    ];
    for (const c of certs) expect(rows.find((row) => row[0] === c)?.at(-1)).toBe('yes');
    for (const ca of ['ca', 'etcd-ca', 'front-proxy-ca'])
      expect(rows.filter((row) => row[0] === ca).map((row) => row.at(-1))).toEqual(['yes']);
    // Joining control planes get no super-admin.conf (kubeadm join never writes one either).
    expect(r.stdout).toContain('!MISSING! super-admin.conf');
    expect(r.stdout).not.toMatch(/!MISSING! (?!super-admin\.conf)/);
  });
});

describe("cloud-init schema (Debian's cloud-init 22.4)", () => {
  it('fails on deliberately broken userdata first', async () => {
    const broken = join(dir, 'broken-userdata.yaml');
    const good = machines['ecdsa-join-worker']!.userdata;
    await writeFile(
      broken,
      good.replace("permissions: '0600'", 'permissions: 600').replace(/runcmd:\n[\s\S]*$/, 'runcmd: bash\n'),
    );
    const r = await run('cloud-init', ['schema', '--config-file', broken]);
    expect(r.exitCode).toBe(1);
    expect(`${r.stdout}${r.stderr}`).toMatch(/permissions: 600 is not of type 'string'/);
    expect(`${r.stdout}${r.stderr}`).toMatch(/runcmd: 'bash' is not of type 'array'/);
  });

  it.each([
    ...['ecdsa', 'rsa'].flatMap((p) => ROLES.map((r) => `${p}-${r}`)),
    'extras-init',
    'dns-endpoint-worker',
  ])('%s userdata is a valid cloud-config', async (name) => {
    const file = join(dir, name, 'userdata.yaml');
    const r = await run('cloud-init', ['schema', '--config-file', file]);
    expect([r.exitCode, r.stdout]).toEqual([0, `Valid cloud-config: ${file}`]);
  });
});

describe('the kubelet signer with the real kube-apiserver and kube-controller-manager', () => {
  // What external CA mode leaves to the controller-manager: kubelet client certificates for TLS
  // bootstrap and rotation, signed with the kubelet signer (no cluster CA key), trusted by the API
  // server through its client CA bundle. The test bed's API server plays the workload cluster's,
  // with bootstrap-token auth on; kubeadm's bootstrap RBAC is created as `kubeadm init` does.
  const NODE = 'alpha-md-0';
  let cp: ControlPlane | undefined;
  let kcm: ManagedProcess | undefined;
  let signer: CertificateAuthority;

  beforeAll(async () => {
    cp = await ControlPlane.start({ apiServerFlags: ['--enable-bootstrap-token-auth=true'] });
    signer = await loadCertificateAuthority(
      pkis.ecdsa.kubeletSigner.certPem,
      pkis.ecdsa.kubeletSigner.keyPem,
    );
    const f = async (name: string, content: string) => {
      await writeFile(join(dir, name), content, { mode: 0o600 });
      return join(dir, name);
    };
    // The controller-manager as kubeadm runs it in external CA mode, plus our signer flags.
    kcm = ManagedProcess.start(
      'kube-controller-manager',
      cp.bin.kubeControllerManager,
      [
        `--kubeconfig=${cp.kubeconfigPath}`,
        '--secure-port=0',
        '--leader-elect=false',
        '--controllers=csrapproving,csrsigning',
        '--cluster-signing-cert-file=',
        '--cluster-signing-key-file=',
        `--cluster-signing-kubelet-client-cert-file=${await f('kubelet-signer.crt', pkis.ecdsa.kubeletSigner.certPem)}`,
        `--cluster-signing-kubelet-client-key-file=${await f('kubelet-signer.key', pkis.ecdsa.kubeletSigner.keyPem)}`,
      ],
      join(dir, 'kube-controller-manager.log'),
    );
    // kubeadm init's bootstrap-token phase: bootstrappers may post CSRs, and theirs are auto-approved.
    const bindings: [string, string][] = [
      ['kubeadm:kubelet-bootstrap', 'system:node-bootstrapper'],
      [
        'kubeadm:node-autoapprove-bootstrap',
        'system:certificates.k8s.io:certificatesigningrequests:nodeclient',
      ],
    ];
    for (const [name, role] of bindings)
      await cp.kubectlOk([
        'create',
        'clusterrolebinding',
        name,
        `--clusterrole=${role}`,
        `--group=${BOOTSTRAP_TOKEN_GROUP}`,
      ]);
  }, 10 * 60_000);

  afterAll(async () => {
    await kcm?.stop();
    await cp?.stop();
  });

  async function whoami(
    credentials: KubeconfigCredentials,
  ): Promise<{ exitCode: number; user?: string; groups?: string[] }> {
    const kubeconfig = join(dir, `whoami-${Math.random().toString(36).slice(2)}.kubeconfig`);
    await writeFile(
      kubeconfig,
      renderKubeconfig({ name: 'probe', server: cp!.server, caPem: cp!.caPem, credentials }),
      { mode: 0o600 },
    );
    const r = await cp!.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig });
    if (r.exitCode !== 0) return { exitCode: r.exitCode };
    const info = (JSON.parse(r.stdout) as { status: { userInfo: { username: string; groups: string[] } } })
      .status.userInfo;
    return { exitCode: 0, user: info.username, groups: info.groups };
  }

  it('the API server refuses a signer-issued node certificate until the signer is in its client CA bundle', async () => {
    const offline = await issueCertificate(signer, {
      commonName: `system:node:${NODE}`,
      organizations: ['system:nodes'],
      usage: 'client',
    });
    const credentials = { clientCertificatePem: offline.certPem, clientKeyPem: offline.keyPem };
    expect((await whoami(credentials)).exitCode).not.toBe(0);
    // client-ca-bundle.crt on a control plane: the cluster CA, then the kubelet signer. The API
    // server reloads its client CA file when it changes.
    const bundle = join(cp!.dir, 'ca.crt');
    await writeFile(
      bundle,
      `${(await readFile(bundle, 'utf8')).trim()}\n${pkis.ecdsa.kubeletSigner.certPem.trim()}\n`,
    );
    const seen = await until(
      'the API server trusts the kubelet signer',
      async () => {
        const r = await whoami(credentials);
        return r.exitCode === 0 && r;
      },
      { timeoutMs: 90_000, intervalMs: 1000 },
    );
    expect([seen.user, seen.groups]).toEqual([
      `system:node:${NODE}`,
      ['system:nodes', 'system:authenticated'],
    ]);
  }, 120_000);

  it('a bootstrap token Secret as rendered authenticates; an expired one does not', async () => {
    const token = newBootstrapToken();
    const expired = newBootstrapToken();
    await cp!.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify(bootstrapTokenSecret(token, new Date(Date.now() + 3600_000))),
    });
    await cp!.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify(bootstrapTokenSecret(expired, new Date(Date.now() - 60_000))),
    });
    const ok = await whoami({ token });
    expect([ok.user, ok.groups]).toEqual([
      `system:bootstrap:${token.slice(0, 6)}`,
      ['system:bootstrappers', BOOTSTRAP_TOKEN_GROUP, 'system:authenticated'],
    ]);
    expect((await whoami({ token: expired })).exitCode).not.toBe(0);
  }, 60_000);

  it("a worker's TLS bootstrap: its CSR is auto-approved and signed by the kubelet signer, and the certificate authenticates", async () => {
    const token = newBootstrapToken();
    await cp!.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify(bootstrapTokenSecret(token, new Date(Date.now() + 3600_000))),
    });
    // What the kubelet sends: an ECDSA key, CN system:node:<name>, O system:nodes.
    await execa('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(dir, 'node.key'),
      '-out',
      join(dir, 'node.csr'),
      '-subj',
      `/O=system:nodes/CN=system:node:${NODE}`,
    ]);
    const csr = {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name: `node-csr-${NODE}` },
      spec: {
        request: Buffer.from(await readFile(join(dir, 'node.csr'), 'utf8')).toString('base64'),
        signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
        usages: ['digital signature', 'client auth'],
      },
    };
    const asToken = join(dir, 'token.kubeconfig');
    await writeFile(
      asToken,
      renderKubeconfig({ name: 'bootstrap', server: cp!.server, caPem: cp!.caPem, credentials: { token } }),
      { mode: 0o600 },
    );
    await cp!.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(csr), kubeconfig: asToken });
    const issued = await until(
      () => `the CSR is signed (controller-manager log: ${kcm?.tail(5)})`,
      async () => {
        const r = await cp!.kubectl(['get', 'csr', csr.metadata.name, '-o', 'json']);
        const status = (
          JSON.parse(r.stdout || '{}') as {
            status?: { certificate?: string; conditions?: { type: string }[] };
          }
        ).status;
        if (!status?.certificate) return undefined;
        return {
          pem: Buffer.from(status.certificate, 'base64').toString(),
          conditions: status.conditions?.map((c) => c.type),
        };
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(issued.conditions).toEqual(['Approved']);
    expect(await isSignedBy(issued.pem, pkis.ecdsa.kubeletSigner.certPem)).toBe(true);
    expect(await isSignedBy(issued.pem, pkis.ecdsa.ca.certPem)).toBe(false);
    const node = await whoami({
      clientCertificatePem: issued.pem,
      clientKeyPem: await readFile(join(dir, 'node.key'), 'utf8'),
    });
    expect([node.user, node.groups]).toEqual([
      `system:node:${NODE}`,
      ['system:nodes', 'system:authenticated'],
    ]);
  }, 120_000);
});
