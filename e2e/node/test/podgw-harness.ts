/**
 * What podgw.test.ts needs around the real node: "the internet" (an HTTP server and a nameserver
 * on the uplink), the cluster DNS the chart expects (`kube-system/kube-dns`), and waits that fail
 * with what the node says.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UPLINK_NETWORK, until, type LabProcess, type NodeBed } from '@knet/testing';

/** The cluster DNS Service's ClusterIP, in the node's Service range (203.0.113.0/24). */
export const CLUSTER_DNS_IP = '203.0.113.10';
/** A name "the internet" answers, with the uplink's own address. */
export const INTERNET_NAME = 'example.test';
/** Port of the HTTP server on the uplink. */
export const INTERNET_PORT = 8080;

/**
 * An HTTP server on the uplink (192.0.2.130:8080) that answers every request with the source
 * address it saw, and prints one line per request (`saw <address> <path>`).
 */
export async function startInternetServer(bed: NodeBed): Promise<LabProcess> {
  const uplink = requireUplink(bed);
  const server = uplink.spawn('node', [
    '-e',
    `require('http').createServer((q, r) => {
       const a = q.socket.remoteAddress;
       console.log('saw ' + a + ' ' + q.url);
       r.end('internet saw ' + a + '\\n');
     }).listen(${INTERNET_PORT}, '${UPLINK_NETWORK.internet}', () => console.log('listening'))`,
  ]);
  await server.waitForOutput(/listening/);
  return server;
}

/** "The internet's" nameserver and the cluster DNS, one dnsmasq on the uplink. */
export interface UplinkDns {
  proc: LabProcess;
  /** Serves `name` → `address` (an A record of the cluster DNS); resolves once dnsmasq has read it. */
  publish(name: string, address: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * dnsmasq on the uplink's address (192.0.2.130:53, the nameserver of the node's resolv.conf, which
 * pods with dnsPolicy Default get): `example.test` is 192.0.2.130, nothing is forwarded anywhere,
 * and the cluster's names published with `publish` (a hosts file in a `--hostsdir`, re-read on
 * change) are answered too: what the cluster DNS (CoreDNS's kubernetes plugin) would answer from
 * the EndpointSlices, for a node that has no cluster DNS of its own. Every query is logged with its source (`query[A] name from addr`).
 */
export async function startUplinkDns(bed: NodeBed): Promise<UplinkDns> {
  const uplink = requireUplink(bed);
  const dir = mkdtempSync(join(tmpdir(), 'knet-podgw-dns-'));
  const hostsDir = join(dir, 'hosts');
  // dnsmasq watches this folder (inotify) and reads every file written into it.
  mkdirSync(hostsDir);
  const proc = uplink.spawn('dnsmasq', [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--pid-file',
    '--user=root',
    '--no-resolv',
    '--no-hosts',
    `--hostsdir=${hostsDir}`,
    `--listen-address=${UPLINK_NETWORK.internet}`,
    '--bind-interfaces',
    // Authoritative for these domains: a name it has no AAAA for is NODATA, an unknown one
    // NXDOMAIN (with --address and no upstream, dnsmasq 2.90 REFUSES the AAAA question).
    '--local=/test/',
    '--local=/cluster.local/',
    `--host-record=${INTERNET_NAME},${UPLINK_NETWORK.internet}`,
    '--log-queries',
    '--log-facility=-',
  ]);
  await proc.waitForOutput(/started, version/);
  let n = 0;
  return {
    proc,
    async publish(name, address) {
      // Written beside the folder and renamed into it: dnsmasq never reads half a file.
      const file = `record-${n++}`;
      writeFileSync(join(dir, file), `${address} ${name}\n`);
      renameSync(join(dir, file), join(hostsDir, file));
      await proc.waitForOutput(new RegExp(`read ${hostsDir}/${file} - 1 names`));
    },
    async close() {
      await proc.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The `kube-system/kube-dns` Service the chart looks up for K8S_DNS_IPS (`clusterDnsService`), with
 * the uplink's nameserver as its endpoint: kube-proxy sends 203.0.113.10:53 (UDP and TCP) there.
 */
export function clusterDnsObjects(): object[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
      spec: {
        clusterIP: CLUSTER_DNS_IP,
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
          { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
        ],
      },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 'kube-dns-uplink',
        namespace: 'kube-system',
        labels: { 'kubernetes.io/service-name': 'kube-dns' },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: [UPLINK_NETWORK.internet], conditions: { ready: true } }],
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
      ],
    },
  ];
}

/**
 * The ready addresses of a Service's EndpointSlices: what the cluster DNS answers for a headless
 * Service's name.
 */
export async function readyEndpoints(bed: NodeBed, namespace: string, service: string): Promise<string[]> {
  const out = await bed.cp.kubectlOk([
    'get',
    'endpointslices',
    '-n',
    namespace,
    '-l',
    `kubernetes.io/service-name=${service}`,
    '-o',
    'json',
  ]);
  const list = JSON.parse(out) as {
    items: { endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[] }[];
  };
  return list.items.flatMap((s) =>
    (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses),
  );
}

/** A file with `values` for `helm --values` (JSON is YAML), in a folder of its own: `remove()` it. */
export function valuesFile(values: Record<string, unknown>): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'knet-podgw-values-'));
  const path = join(dir, 'values.json');
  writeFileSync(path, JSON.stringify(values, null, 2));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What the node says about its pods: pods, events, and the logs of every container in `namespaces`. */
export async function nodeReport(bed: NodeBed, namespaces: readonly string[]): Promise<string> {
  const cp = bed.cp;
  const parts = [
    (await cp.kubectl(['get', 'pods', '-A', '-o', 'wide'])).stdout,
    (await cp.kubectl(['get', 'events', '-A', '--sort-by=.lastTimestamp'])).stdout,
  ];
  for (const ns of namespaces) {
    const pods = (await cp.kubectl(['get', 'pods', '-n', ns, '-o', 'name'])).stdout
      .split('\n')
      .filter(Boolean);
    for (const pod of pods) {
      const r = await cp.kubectl(['logs', '-n', ns, pod, '--all-containers', '--prefix', '--tail=30']);
      parts.push(`--- logs ${ns}/${pod}\n${r.stdout}${r.stderr}`);
    }
  }
  return parts.join('\n');
}

/** `kubectl ARGS` that must succeed; on failure throws with kubectl's error and `nodeReport`. */
export async function kubectlOrReport(
  bed: NodeBed,
  args: string[],
  namespaces: readonly string[],
  timeoutMs = 200_000,
): Promise<string> {
  const r = await bed.cp.kubectl(args, { timeoutMs });
  if (r.exitCode !== 0) {
    throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}\n${await nodeReport(bed, namespaces)}`);
  }
  return r.stdout;
}

/** `helm ARGS` that must succeed; on failure throws with helm's error and `nodeReport`. */
export async function helmOrReport(
  bed: NodeBed,
  args: string[],
  namespaces: readonly string[],
): Promise<string> {
  const r = await bed.cp.helm(args);
  if (r.exitCode !== 0) {
    throw new Error(`helm ${args.join(' ')}: ${r.stderr.trim()}\n${await nodeReport(bed, namespaces)}`);
  }
  return r.stdout;
}

/** Waits until `kubectl get ARGS -o name` lists nothing. */
export async function untilNone(bed: NodeBed, what: string, args: string[]): Promise<void> {
  await until(what, async () => (await bed.cp.kubectlOk(['get', ...args, '-o', 'name'])).trim() === '', {
    timeoutMs: 120_000,
  });
}

function requireUplink(bed: NodeBed) {
  if (!bed.uplink) throw new Error('the node has no uplink: start it with NodeBed.start({ uplink: true })');
  return bed.uplink;
}
