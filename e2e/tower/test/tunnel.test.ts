import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { kubeconfigTls } from '@knet/k8s';
import { until, type ManagedProcess } from '@knet/testing';
import { condition, getCluster, patchCluster, towerBed, writeKubeconfig } from './harness';

const bed = towerBed({ testTimeout: 120_000 });
let agent: ManagedProcess;
let kubeconfig: string;

beforeAll(async () => {
  const c = await bed.readyCluster('alpha');
  kubeconfig = writeKubeconfig(c, bed.host.dir);
  agent = bed.startAgent({ cluster: 'alpha', token: c.spec!.connection!.token! });
  await bed.untilAgentAvailable('alpha', agent);
});

describe('the kubeconfig in the Cluster object works with kubectl through the tunnel', () => {
  it('fills the Cluster: token, ports, endpoints, kubeconfig, conditions, Service mc-alpha', async () => {
    const c = await getCluster(bed.host, 'alpha');
    const conn = c.spec!.connection!;
    expect(conn.token).toMatch(/^[0-9a-f]{64}$/);
    expect(conn.kubesphereAPIServerPort).toBe(conn.kubernetesAPIServerPort! + 10_000);
    expect(conn.kubernetesAPIEndpoint).toBe(`https://127.0.0.1:${conn.kubernetesAPIServerPort}`);
    expect(condition(c, 'Initialized')).toBe('True');
    const svc = JSON.parse(
      await bed.host.kubectlOk(['get', 'service', 'mc-alpha', '-n', 'kubesphere-system', '-o', 'json']),
    ) as {
      spec: { type: string; ports: { port: number; targetPort: number }[] };
      metadata: { ownerReferences: { kind: string; name: string }[] };
    };
    expect(svc.spec.type).toBe('ClusterIP');
    expect(svc.spec.ports.map((p) => [p.port, p.targetPort])).toEqual([
      [6443, conn.kubernetesAPIServerPort],
      [80, conn.kubesphereAPIServerPort],
    ]);
    expect(svc.metadata.ownerReferences[0]).toMatchObject({ kind: 'Cluster', name: 'alpha' });
  });

  it('kubectl get namespaces reaches the member', async () => {
    await bed.member.kubectlOk(['create', 'namespace', 'only-on-member']);
    const out = await bed.host.kubectlOk(['get', 'namespaces', '-o', 'name'], { kubeconfig });
    expect(out.split('\n')).toContain('namespace/only-on-member');
    // and it is the member, not the host, that answered
    expect((await bed.host.kubectl(['get', 'namespace', 'only-on-member'])).exitCode).not.toBe(0);
  });

  it('kubectl --watch sees a change made on the member', async () => {
    const { kubectl } = bed.host.bin;
    const w = spawn(kubectl, [`--kubeconfig=${kubeconfig}`, 'get', 'namespaces', '--watch', '-o', 'name'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    createInterface({ input: w.stdout! }).on('line', (l) => lines.push(l));
    try {
      await until(
        () => 'the watch to list the namespaces',
        async () => lines.includes('namespace/default'),
        20_000,
      );
      await bed.member.kubectlOk(['create', 'namespace', 'watched']);
      await until(
        () => `the watch to see namespace/watched; seen: ${lines.join(', ')}`,
        async () => lines.includes('namespace/watched'),
        20_000,
      );
    } finally {
      w.kill();
    }
  });

  it('an HTTP upgrade passes through: a WebSocket watch sees a change made on the member', async () => {
    const kc = kubeconfigTls(readFileSync(kubeconfig, 'utf8'));
    const url = `${kc.server.replace(/^https/, 'wss')}/api/v1/namespaces?watch=true&resourceVersion=0`;
    // The API server's WebSocket handler (x/net/websocket) refuses a handshake without an Origin.
    const ws = new WebSocket(url, {
      ca: kc.ca,
      cert: kc.cert,
      key: kc.key,
      origin: kc.server,
      perMessageDeflate: false,
    });
    const names: string[] = [];
    ws.on('message', (m: Buffer) => {
      const ev = JSON.parse(m.toString()) as { type: string; object: { metadata: { name: string } } };
      names.push(`${ev.type} ${ev.object.metadata.name}`);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no WebSocket handshake within 20 s')), 20_000);
        ws.once('open', () => (clearTimeout(timer), resolve()));
        ws.once('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${body}`)));
        });
        ws.once('error', reject);
      });
      await until(
        () => `the initial events; seen: ${names.join(', ')}`,
        async () => names.includes('ADDED default'),
        20_000,
      );
      await bed.member.kubectlOk(['create', 'namespace', 'seen-over-websocket']);
      await until(
        () => `the WebSocket watch to see the change; seen: ${names.join(', ')}`,
        async () => names.includes('ADDED seen-over-websocket'),
        20_000,
      );
    } finally {
      ws.terminate();
    }
  });

  it('a large list (>= 5 MiB) arrives whole', async () => {
    const blob = 'x'.repeat(900 * 1024);
    for (let i = 0; i < 6; i++) {
      const cm = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `big-${i}`, namespace: 'default' },
        data: { blob },
      };
      await bed.member.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(cm) });
    }
    const bytes = async (direction: string) => {
      const text = await (await fetch(`${bed.proxy.url}/metrics`)).text();
      const re = new RegExp(
        `^tower_proxy_bytes_total\\{cluster="alpha",target="kubernetes",direction="${direction}"\\} (\\d+)`,
        'm',
      );
      return Number(re.exec(text)?.[1] ?? 0);
    };
    const before = await bytes('from_agent');
    // Uncompressed: with gzip (the API server compresses large responses) these repetitive
    // objects would cross the tunnel as ~34 KB.
    const out = await bed.host.kubectlOk(
      ['get', 'configmaps', '-n', 'default', '-o', 'json', '--disable-compression'],
      { kubeconfig },
    );
    expect(out.length).toBeGreaterThanOrEqual(5 * 1024 * 1024);
    // all of it crossed the tunnel, and the proxy counted it
    expect((await bytes('from_agent')) - before).toBeGreaterThanOrEqual(5 * 1024 * 1024);
    expect(await bytes('to_agent')).toBeGreaterThan(0);
    const items = (JSON.parse(out) as { items: { metadata: { name: string }; data?: { blob?: string } }[] })
      .items;
    expect(
      items
        .filter((i) => i.data?.blob === blob)
        .map((i) => i.metadata.name)
        .sort(),
    ).toEqual(['big-0', 'big-1', 'big-2', 'big-3', 'big-4', 'big-5']);
  });
});

describe('an agent outside its cluster, with --kubeconfig credentials', () => {
  it('forwards with the kubeconfig’s identity (client certificate), not a service account', async () => {
    const c = await bed.readyCluster('kcfg');
    const kcfg = writeKubeconfig(c, bed.host.dir);
    const outside = bed.startAgent({
      cluster: 'kcfg',
      token: c.spec!.connection!.token!,
      kubeconfig: bed.member.kubeconfigPath,
      id: 'kubeconfig-agent',
    });
    await bed.untilAgentAvailable('kcfg', outside);
    const whoami = (out: string) =>
      (JSON.parse(out) as { status: { userInfo: { username: string } } }).status.userInfo.username;
    const direct = whoami(await bed.member.kubectlOk(['auth', 'whoami', '-o', 'json']));
    const tunnelled = whoami(
      await bed.host.kubectlOk(['auth', 'whoami', '-o', 'json'], { kubeconfig: kcfg }),
    );
    expect(tunnelled).toBe(direct);
    expect(tunnelled).not.toMatch(/^system:serviceaccount:/);
    // …while the in-cluster agent of alpha is its service account
    const sa = whoami(await bed.host.kubectlOk(['auth', 'whoami', '-o', 'json'], { kubeconfig }));
    expect(sa).toMatch(/^system:serviceaccount:/);
    await outside.stop();
    await bed.host.kubectlOk(['delete', 'clusters.cluster.kubesphere.io', 'kcfg']);
  });
});

describe('external access and deletion', () => {
  it('externalKubeAPIEnabled adds the LoadBalancer ext-mc-<name> (the kubernetes port only) with the annotated annotations; its ingress sets ExternalAccessReady', async () => {
    await bed.host.kubectlOk([
      'annotate',
      'clusters.cluster.kubesphere.io',
      'alpha',
      'tower.kubesphere.io/external-lb-service-annoations={"lb.example.com/scheme":"internal"}',
    ]);
    await patchCluster(bed.host, 'alpha', { spec: { externalKubeAPIEnabled: true } });
    type Svc = {
      spec: { type: string; ports: { port: number }[] };
      metadata: { annotations?: Record<string, string> };
    };
    const service = async (name: string) => {
      const r = await bed.host.kubectl(['get', 'service', name, '-n', 'kubesphere-system', '-o', 'json']);
      return r.exitCode === 0 ? (JSON.parse(r.stdout) as Svc) : undefined;
    };
    const svc = await until(
      () => 'the LoadBalancer ext-mc-alpha',
      () => service('ext-mc-alpha'),
      20_000,
    );
    expect(svc.spec.type).toBe('LoadBalancer');
    expect(svc.spec.ports.map((p) => p.port)).toEqual([6443]);
    expect(svc.metadata.annotations).toMatchObject({ 'lb.example.com/scheme': 'internal' });
    // mc-alpha, which KubeSphere's endpoints name, stays inside the host cluster with both ports.
    const internal = await service('mc-alpha');
    expect([internal?.spec.type, internal?.spec.ports.map((p) => p.port)]).toEqual(['ClusterIP', [6443, 80]]);
    await until(
      () => 'ExternalAccessReady=False (WaitingForLoadBalancer)',
      async () =>
        (await getCluster(bed.host, 'alpha')).status?.conditions?.find(
          (c) => c.type === 'ExternalAccessReady',
        )?.reason === 'WaitingForLoadBalancer',
      20_000,
    );

    // What a cloud controller does once the load balancer exists:
    await bed.host.kubectlOk([
      'patch',
      'service',
      'ext-mc-alpha',
      '-n',
      'kubesphere-system',
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.10"}]}}}',
    ]);
    const c = await until(
      () => 'ExternalAccessReady=True',
      async () => {
        const c = await getCluster(bed.host, 'alpha');
        return condition(c, 'ExternalAccessReady') === 'True' ? c : undefined;
      },
      20_000,
    );
    expect(c.spec?.connection?.externalKubernetesAPIEndpoint).toBe('https://203.0.113.10:6443');

    await patchCluster(bed.host, 'alpha', { spec: { externalKubeAPIEnabled: false } });
    await until(
      () => 'ExternalAccessReady to be removed',
      async () => condition(await getCluster(bed.host, 'alpha'), 'ExternalAccessReady') === undefined,
      20_000,
    );
    await until(
      () => 'ext-mc-alpha to be deleted',
      async () => (await service('ext-mc-alpha')) === undefined,
      20_000,
    );
  });

  it('a Service deleted by hand comes back', async () => {
    await bed.host.kubectlOk(['delete', 'service', 'mc-alpha', '-n', 'kubesphere-system']);
    await until(
      () => 'the Service to be recreated',
      async () =>
        (await bed.host.kubectl(['get', 'service', 'mc-alpha', '-n', 'kubesphere-system'])).exitCode === 0,
      20_000,
    );
  });

  it('deleting the Cluster removes its Service, listener and agent sessions', async () => {
    const port = (await getCluster(bed.host, 'alpha')).spec!.connection!.kubernetesAPIServerPort!;
    // Its agent is connected: the series the deletion must remove is there.
    expect(await (await fetch(`${bed.proxy.url}/metrics`)).text()).toMatch(
      /tower_proxy_agent_sessions\{cluster="alpha"\} 1/,
    );
    await bed.host.kubectlOk(['delete', 'clusters.cluster.kubesphere.io', 'alpha']);
    await until(
      () => 'the Service to be deleted',
      async () =>
        (await bed.host.kubectl(['get', 'service', 'mc-alpha', '-n', 'kubesphere-system'])).exitCode !== 0,
      20_000,
    );
    const refused = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port });
      s.on('connect', () => (s.destroy(), resolve(false)));
      s.on('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    // Its agent's session is closed and its series go with it.
    await until(
      () => 'the series of alpha to go from /metrics',
      async () =>
        !/tower_proxy_agent_sessions\{cluster="alpha"\}/.test(
          await (await fetch(`${bed.proxy.url}/metrics`)).text(),
        ),
      20_000,
    );
    // the agent is now turned away (told only "unauthorized"; the proxy counts the detail) and keeps
    // trying with backoff
    await until(
      () => `the agent to be refused as unauthorized; agent log:\n${agent.tail(10)}`,
      async () => agent.tail(50).includes('unauthorized'),
      20_000,
    );
    expect(await (await fetch(`${bed.proxy.url}/metrics`)).text()).toMatch(
      /tower_proxy_handshake_failures_total\{reason="unknown-cluster"\} [1-9]/,
    );
  });
});
