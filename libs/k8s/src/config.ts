import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, VersionApi } from '@kubernetes/client-node';
import { errorMessage } from '@knet/runtime';
import { wrapApiError } from './errors';

export const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface LoadKubeConfigOptions {
  /** Explicit path (from --kubeconfig); wins over everything else. */
  kubeconfig?: string;
  /** Context to use instead of the file's current-context. */
  context?: string;
  /** Environment to read KUBECONFIG / KUBERNETES_SERVICE_HOST from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Where the in-cluster token lives (tests override it). */
  inClusterTokenPath?: string;
}

/** Where the credentials came from, for the startup log line. */
export type KubeConfigSource = 'flag' | 'env' | 'in-cluster' | 'home';

/**
 * Loads Kubernetes credentials, first match wins: the explicit path, `$KUBECONFIG` (first existing
 * file of a ':'-list), in-cluster service account (token file re-read as it rotates), ~/.kube/config.
 * Every failure is one line that says which source was tried and how to fix it.
 */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): {
  kc: KubeConfig;
  source: KubeConfigSource;
} {
  const env = opts.env ?? process.env;
  const kc = new KubeConfig();
  let source: KubeConfigSource;
  if (opts.kubeconfig) {
    loadFile(kc, opts.kubeconfig, '--kubeconfig');
    source = 'flag';
  } else if (env['KUBECONFIG']) {
    const files = env['KUBECONFIG'].split(':').filter(Boolean);
    const file = files.find((f) => existsSync(f));
    if (!file)
      throw new Error(
        `kubeconfig from $KUBECONFIG not found: ${files.join(', ')}; fix KUBECONFIG or pass --kubeconfig`,
      );
    loadFile(kc, file, '$KUBECONFIG');
    source = 'env';
  } else if (env['KUBERNETES_SERVICE_HOST'] && existsSync(opts.inClusterTokenPath ?? IN_CLUSTER_TOKEN)) {
    try {
      kc.loadFromCluster();
    } catch (e) {
      throw new Error(`in-cluster credentials unusable: ${errorMessage(e)}`, { cause: e });
    }
    source = 'in-cluster';
  } else {
    const home = join(homedir(), '.kube', 'config');
    if (!existsSync(home)) {
      throw new Error(
        'no Kubernetes credentials: not running in a cluster, $KUBECONFIG unset and ~/.kube/config missing; pass --kubeconfig',
      );
    }
    loadFile(kc, home, '~/.kube/config');
    source = 'home';
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      throw new Error(
        `context "${opts.context}" not in kubeconfig (has: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'
        })`,
      );
    }
    kc.setCurrentContext(opts.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new Error(
      `kubeconfig (${source}) has no usable current context: set current-context or pass --context`,
    );
  }
  if (!kc.getCurrentUser()) {
    throw new Error(`kubeconfig (${source}) context "${kc.getCurrentContext()}" names no user`);
  }
  return { kc, source };
}

function loadFile(kc: KubeConfig, file: string, from: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      `kubeconfig ${file} (from ${from}) cannot be read: ${code === 'ENOENT' ? 'no such file' : code}`,
    );
  }
  try {
    kc.loadFromString(text);
  } catch (e) {
    const msg = errorMessage(e).split('\n')[0];
    throw new Error(`kubeconfig ${file} (from ${from}) is not a valid kubeconfig: ${msg}`);
  }
  kc.makePathsAbsolute(join(file, '..'));
}

/** The server and TLS material of a kubeconfig's current context, PEM-decoded (see `kubeconfigTls`). */
export interface KubeconfigTls {
  server: string;
  ca: string;
  cert: string;
  key: string;
}

/**
 * The server, CA, client certificate and key (PEM) embedded in a kubeconfig's current context, for
 * clients that are not client-node (a WebSocket, node:https). Throws one line naming what is missing.
 */
export function kubeconfigTls(yaml: string): KubeconfigTls {
  const kc = new KubeConfig();
  kc.loadFromString(yaml);
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const pem = (b64: string | undefined, what: string) => {
    if (!b64) throw new Error(`kubeconfig has no ${what} in its current context`);
    return Buffer.from(b64, 'base64').toString('utf8');
  };
  if (!cluster?.server) throw new Error('kubeconfig has no server in its current context');
  return {
    server: cluster.server,
    ca: pem(cluster.caData, 'certificate-authority-data'),
    cert: pem(user?.certData, 'client-certificate-data'),
    key: pem(user?.keyData, 'client-key-data'),
  };
}

/** The server URL of the current context. */
export function serverOf(kc: KubeConfig): string {
  return kc.getCurrentCluster()?.server ?? '(none)';
}

/**
 * Asks the API server for /version, proving the address, TLS and credentials work. Fails with one
 * line naming the server. Use at startup so a wrong kubeconfig is reported before anything else.
 */
export async function checkApiServer(kc: KubeConfig, timeoutMs = 10_000): Promise<{ gitVersion: string }> {
  const api = kc.makeApiClient(VersionApi);
  const timer = new Promise<never>((_, reject) =>
    setTimeout(
      () => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      timeoutMs,
    ).unref(),
  );
  try {
    const v = await Promise.race([api.getCode(), timer]);
    return { gitVersion: v.gitVersion };
  } catch (e) {
    throw wrapApiError(`API server ${serverOf(kc)}`, e);
  }
}
