/**
 * "The internet" behind a NodeBed's uplink (`NodeBed.start({ uplink: true })`): an HTTP server that
 * says which address it saw, and one dnsmasq that is both the internet's nameserver and the
 * stand-in for the cluster DNS (`kube-system/kube-dns`, which charts such as pod-gateway look up).
 * Used by e2e/node's pod-gateway suite and the lab's pod-gateway scene on the node.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabProcess, NetHost } from '../netns';
import { UPLINK_NETWORK, type NodeBed } from './node-bed';

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
 * the EndpointSlices, for a node that has no cluster DNS of its own. Every query is logged with its
 * source (`query[A] name from addr`).
 */
export async function startUplinkDns(bed: NodeBed): Promise<UplinkDns> {
  const uplink = requireUplink(bed);
  const dir = mkdtempSync(join(tmpdir(), 'knet-podgw-dns-'));
  const hostsDir = join(dir, 'hosts');
  // dnsmasq watches this folder (inotify) and reads every file written into it.
  mkdirSync(hostsDir);
  let proc: LabProcess;
  try {
    proc = uplink.spawn('dnsmasq', [
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
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const close = async () => {
    await proc.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await proc.waitForOutput(/started, version/);
  } catch (e) {
    await close();
    throw e;
  }
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
    close,
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

function requireUplink(bed: NodeBed): NetHost {
  if (!bed.uplink) throw new Error('the node has no uplink: start it with NodeBed.start({ uplink: true })');
  return bed.uplink;
}
