import { readFile, rename, writeFile } from 'node:fs/promises';
import { networkCidr } from '@knet/kilo';
import { errorMessage, type Logger } from '@knet/runtime';

/**
 * `--cni` (Kilo's pkg/mesh/cni.go): Kilo's CNI config list (bridge `kube-bridge`, host-local IPAM)
 * ships without a subnet; kg writes the node's pod CIDR into every plugin's `ipam.ranges`. The
 * pure part takes and returns the file's text.
 */

/** The first IPAM range subnet of a CNI config list, or undefined (Kilo's getCIDRFromCNI). */
export function cniSubnet(text: string): string | undefined {
  const conf = JSON.parse(text) as {
    plugins?: { ipam?: { type?: string; ranges?: { subnet?: string }[][] } }[];
  };
  for (const plugin of conf.plugins ?? []) {
    if (!plugin.ipam?.type) continue;
    for (const set of plugin.ipam.ranges ?? []) for (const r of set) if (r.subnet) return r.subnet;
  }
  return undefined;
}

/**
 * The config list with `ipam.ranges = [[{subnet}]]` in every plugin that has `ipam` (Kilo's
 * setCIDRInCNI), or an error naming what is wrong with the file.
 */
export function withCniSubnet(text: string, subnet: string): string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${errorMessage(e)}`);
  }
  const plugins = (raw as { plugins?: unknown }).plugins;
  if (!Array.isArray(plugins)) throw new Error('no "plugins" list');
  let found = false;
  for (const [i, plugin] of plugins.entries()) {
    if (typeof plugin !== 'object' || plugin === null) throw new Error(`plugin ${i} is not an object`);
    const ipam = (plugin as { ipam?: unknown }).ipam;
    if (ipam === undefined) continue;
    if (typeof ipam !== 'object' || ipam === null) throw new Error(`plugin ${i}: "ipam" is not an object`);
    (ipam as { ranges?: unknown }).ranges = [[{ subnet }]];
    found = true;
  }
  if (!found) throw new Error('no plugin has an "ipam" section');
  return JSON.stringify(raw);
}

/**
 * Writes the pod CIDR into the CNI config when it differs (atomically). Never throws: a missing
 * or broken file is a warning, as in Kilo, and retried at the next resync.
 */
export async function updateCniConfig(
  path: string,
  podCIDR: string | undefined,
  logger: Logger,
): Promise<boolean> {
  if (!podCIDR) {
    logger.debug({ path }, 'kilo-agent: the local node has no pod CIDR yet; CNI config left alone');
    return false;
  }
  try {
    const text = await readFile(path, 'utf8');
    let current: string | undefined;
    try {
      current = cniSubnet(text);
    } catch (e) {
      logger.warn(
        { path, err: errorMessage(e) },
        'kilo-agent: cannot read the CIDR of the CNI config; overwriting it',
      );
    }
    if (current !== undefined && networkCidr(current) === networkCidr(podCIDR)) return false;
    const next = withCniSubnet(text, podCIDR);
    const tmp = `${path}.kilo-agent.tmp`;
    await writeFile(tmp, next, { mode: 0o644 });
    await rename(tmp, path);
    logger.info(
      { path, old: current ?? null, cidr: podCIDR },
      'kilo-agent: set the pod CIDR in the CNI config',
    );
    return true;
  } catch (e) {
    logger.warn({ path, err: errorMessage(e) }, 'kilo-agent: failed to set the pod CIDR in the CNI config');
    return false;
  }
}
