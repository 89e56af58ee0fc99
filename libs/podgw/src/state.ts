import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Default directory for the gateway's state (an emptyDir in the chart): leases, the original resolv.conf. */
export const DEFAULT_STATE_DIR = '/var/lib/pod-gateway';

/** The pod's resolv.conf, which a VPN client rewrites. */
export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';

/**
 * Keeps the pod's original resolv.conf (the cluster DNS) before a VPN client rewrites
 * /etc/resolv.conf: DNS_LOCAL_SERVER defaults to its IPv4 nameservers. Saved once; later calls
 * return the saved copy. gateway-init calls it first (it runs before the VPN container). With
 * `dryRun` nothing is written: the path to read is returned.
 */
export function saveOriginalResolvConf(
  stateDir: string,
  resolvConf = DEFAULT_RESOLV_CONF,
  options: { dryRun?: boolean } = {},
): string {
  const saved = join(stateDir, 'resolv.conf.orig');
  if (!existsSync(saved)) {
    if (options.dryRun) return resolvConf; // read it where it is; write nothing
    mkdirSync(stateDir, { recursive: true, mode: 0o755 });
    copyFileSync(resolvConf, saved);
  }
  return saved;
}
