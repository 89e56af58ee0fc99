/**
 * Around a NodeBed's cluster: commands that fail with what the node says about its pods (pods,
 * events, the containers' logs), waits, Service endpoints and helm values files. Used by the e2e/node
 * suites and the lab's scenes on the node.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../wait';
import type { NodeBed } from './node-bed';

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
  const dir = mkdtempSync(join(tmpdir(), 'knet-values-'));
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
  timeoutMs?: number,
): Promise<string> {
  const r = await bed.cp.helm(args, timeoutMs === undefined ? {} : { timeoutMs });
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
