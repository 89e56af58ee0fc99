/**
 * The real node: kube-apiserver, kube-controller-manager, kube-scheduler, containerd, the kubelet
 * and kube-proxy in a namespace the bed creates, running pods from locally built images.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { ensureImages, NodeBed, rootNetworkState, UPLINK_NETWORK } from '../src';

jest.setTimeout(20 * 60_000);

const log = (l: string) => process.stderr.write(`node-bed: ${l}\n`);
let bed: NodeBed | undefined;
let rootBefore = '';
let image = '';
let pause = '';

/** Pids of containerd shims that serve this node's containerd (they outlive a killed containerd). */
function shimsOf(socket: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.includes('containerd-shim')) && argv.includes(socket)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

beforeAll(async () => {
  rootBefore = await rootNetworkState();
  const images = await ensureImages(['pause', 'busybox'], log);
  image = images.busybox.ref;
  pause = images.pause.ref;
  bed = await NodeBed.start({ sandboxImage: images.pause, images: [images.busybox], log, uplink: true });
  // "The internet": a server behind the node's default route.
  const server = bed.uplink!.spawn('node', [
    '-e',
    `require('http').createServer((q, r) => r.end('uplink saw ' + q.socket.remoteAddress)).listen(8080, '${UPLINK_NETWORK.internet}', () => console.log('up'))`,
  ]);
  await server.waitForOutput(/up/);
});

afterAll(async () => {
  await bed?.stop();
});

/** A kubectl wait of up to 120 s, failing with what the pods say. */
async function waitOk(args: string[]): Promise<void> {
  const r = await bed!.cp.kubectl(args, { timeoutMs: 130_000 });
  if (r.exitCode !== 0) {
    const pods = await bed!.cp.kubectl(['get', 'pods', '-A', '-o', 'wide']);
    const events = await bed!.cp.kubectl(['get', 'events', '-A']);
    const logs = await bed!.cp.kubectl(['logs', '-n', 'web', '-l', 'app=web', '--previous', '--prefix']);
    throw new Error(
      `kubectl ${args.join(' ')}: ${r.stderr}\n${pods.stdout}\n${events.stdout}\n${logs.stdout}${logs.stderr}`,
    );
  }
}

describe('a real node in a namespace of its own', () => {
  it('registers a Ready node with the scheduler, kubelet and kube-proxy of the pinned release', async () => {
    const cp = bed!.cp;
    const node = JSON.parse(await cp.kubectlOk(['get', 'node', bed!.network.nodeName, '-o', 'json'])) as {
      spec: { podCIDR?: string };
      status: { nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string }; addresses: unknown[] };
    };
    expect(node.status.nodeInfo.kubeletVersion).toBe('v1.34.4');
    // The controller manager gave the node the pod network (kilo-agent reads it).
    expect(node.spec.podCIDR).toBe('198.51.100.0/24');
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/1\./);
    expect(node.status.addresses).toContainEqual({ type: 'InternalIP', address: '192.0.2.10' });
    // The imported images are known to containerd by the names the kubelet asks for.
    const images = (await bed!.ctr(['images', 'ls', '--quiet'])).stdout.split('\n');
    expect(images).toEqual(expect.arrayContaining([pause, image]));
  });

  it('runs a Deployment behind a Service and a Job that reaches it and the API through ClusterIPs', async () => {
    const cp = bed!.cp;
    await cp.kubectlOk(['create', 'namespace', 'web']);
    await cp.apply(
      [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'web', namespace: 'web' },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: 'web' } },
            template: {
              metadata: { labels: { app: 'web' } },
              spec: {
                containers: [
                  {
                    name: 'httpd',
                    image,
                    command: ['sh', '-c', 'hostname > /w/index.html && exec httpd -f -p 8080 -h /w'],
                    ports: [{ containerPort: 8080 }],
                    readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
                    securityContext: { runAsUser: 65532, runAsNonRoot: true, readOnlyRootFilesystem: true },
                    volumeMounts: [{ name: 'w', mountPath: '/w' }],
                  },
                ],
                volumes: [{ name: 'w', emptyDir: {} }],
              },
            },
          },
        },
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'web', namespace: 'web' },
          spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
        },
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: { name: 'probe', namespace: 'web' },
          spec: {
            backoffLimit: 0,
            template: {
              spec: {
                restartPolicy: 'Never',
                containers: [
                  {
                    // (Debian's static busybox wget crashes with -T; `timeout` bounds it instead.)
                    name: 'probe',
                    image,
                    command: [
                      'sh',
                      '-c',
                      'for i in $(seq 1 60); do timeout 3 wget -q -O /tmp/page http://$WEB_SERVICE_HOST/ && break; sleep 1; done; ' +
                        'echo "page: $(cat /tmp/page)"; ' +
                        `echo "egress: $(timeout 5 wget -q -O- http://${UPLINK_NETWORK.internet}:8080/)"; ` +
                        'echo "api: $(timeout 5 wget -q --no-check-certificate -O- https://$KUBERNETES_SERVICE_HOST/version | grep gitVersion)"',
                    ],
                  },
                ],
              },
            },
          },
        },
      ],
      { namespace: 'web' },
    );
    await waitOk(['rollout', 'status', 'deployment/web', '-n', 'web', '--timeout=120s']);
    await waitOk(['wait', '--for=condition=Complete', 'job/probe', '-n', 'web', '--timeout=120s']);
    const logs = await cp.kubectlOk(['logs', 'job/probe', '-n', 'web']);
    const pods = (await cp.kubectlOk(['get', 'pods', '-n', 'web', '-l', 'app=web', '-o', 'name'])).split(
      '\n',
    );
    // The page names one of the two replicas: Service → kube-proxy → pod on the bridge.
    const page = /page: (\S+)/.exec(logs)?.[1];
    expect(pods.map((p) => p.replace('pod/', ''))).toContain(page);
    // The API through the `kubernetes` Service's ClusterIP (203.0.113.1 → 192.0.2.10:6443).
    expect(logs).toContain('"gitVersion": "v1.34.4"');
    // Egress through the node's uplink, from the pod's own address (the node does not masquerade).
    expect(logs).toMatch(/egress: uplink saw 198\.51\.100\.\d+/);
    const ips = (
      await cp.kubectlOk(['get', 'pods', '-n', 'web', '-o', 'jsonpath={.items[*].status.podIP}'])
    ).split(' ');
    for (const ip of ips) expect(ip).toMatch(/^198\.51\.100\.\d+$/);
  });

  it('lets a hostNetwork pod reach the API through the kubernetes Service', async () => {
    const cp = bed!.cp;
    await cp.apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'host-net', namespace: 'web' },
        spec: {
          hostNetwork: true,
          restartPolicy: 'Never',
          containers: [
            {
              name: 'c',
              image,
              command: [
                'sh',
                '-c',
                'timeout 5 wget -q --no-check-certificate -O- https://$KUBERNETES_SERVICE_HOST/version | grep gitVersion',
              ],
            },
          ],
        },
      },
    ]);
    await waitOk([
      'wait',
      '--for=jsonpath={.status.phase}=Succeeded',
      'pod/host-net',
      '-n',
      'web',
      '--timeout=60s',
    ]);
    expect(await cp.kubectlOk(['logs', 'host-net', '-n', 'web'])).toContain('"gitVersion": "v1.34.4"');
  });

  it('serves exec and logs through the kubelet', async () => {
    const cp = bed!.cp;
    const out = await cp.kubectlOk(['exec', '-n', 'web', 'deployment/web', '--', 'id', '-u']);
    expect(out.trim()).toBe('65532');
  });

  it('keeps the pod network inside the node namespace', async () => {
    const links = await bed!.host.ip('-o', 'link', 'show');
    expect(links).toMatch(/\bcni0\b/);
    expect(links).toMatch(/\bveth/);
    expect(await rootNetworkState()).toBe(rootBefore);
  });

  it('leaves no container, mount, cgroup, namespace, process or file behind when stopped', async () => {
    const node = bed!;
    const socket = node.paths.containerdSocket;
    expect(shimsOf(socket).length).toBeGreaterThan(0); // the check sees the shims while they run
    expect(node.leftovers().some((l) => l.startsWith('mount '))).toBe(true);
    await node.stop();
    bed = undefined;
    expect(node.leftovers()).toEqual([]);
    expect(shimsOf(socket)).toEqual([]);
    expect(await rootNetworkState()).toBe(rootBefore);
  });
});
