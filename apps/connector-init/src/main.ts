import { readFileSync } from 'node:fs';
import pino from 'pino';
import { UsageError, createLogger, parseCommand, runMain, startApp, type Logger } from '@knet/runtime';
import { loadKubeConfig } from '@knet/k8s';
import { TwingateClient, twingateBaseUrl } from '@knet/twingate';
import { explainApiError } from './api';
import { KubeClaimsStore, claimsConfigMapName } from './claims';
import { collectGarbage } from './gc';
import { Handoff } from './handoff';
import { createAppMetrics } from './metrics';
import { cli, ordinalOf } from './options';
import { provisionOrdinal } from './provision';
import { serveHandoffs } from './serve';
import { formatStatus, readStatus } from './status';
import { VERSION } from './version';

/** gc and status log to stderr: status prints its table on stdout. */
const STDERR = pino.destination({ fd: 2, sync: true });
const SA_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

// Wiring only: command and options → Kubernetes and Twingate clients → the command's parts.
void runMain('connector-init', async () => {
  const parsed = parseCommand(cli);
  const common = (o: typeof parsed.opts, logger: Logger, signal?: AbortSignal) => {
    const { kc } = loadKubeConfig({ kubeconfig: o.kubeconfig });
    const namespace =
      o.namespace || readNamespace() || kc.getContextObject(kc.getCurrentContext())?.namespace;
    if (!namespace) throw new UsageError('no namespace: pass --namespace (POD_NAMESPACE), or run in a pod');
    const tenant = twingateBaseUrl({ account: o.account, apiUrl: o.apiUrl });
    const api = new TwingateClient({
      apiKey: o.apiKey,
      account: o.account,
      apiUrl: o.apiUrl,
      userAgent: `knet-connector-init/${VERSION}`,
      deadlineMs: o.apiDeadline,
      logger,
      ...(signal ? { signal } : {}),
    });
    const store = new KubeClaimsStore(kc, namespace, claimsConfigMapName(o.release));
    return { api, store, tenant };
  };

  try {
    switch (parsed.command) {
      case 'provision': {
        const opts = parsed.opts;
        const app = startApp('connector-init', opts);
        const metrics = createAppMetrics(app.registry);
        const { api, store, tenant } = common(opts, app.logger, app.signal);
        await app.serve({ readiness: { provisioned: () => metrics.ready } });
        const handoff = new Handoff(opts.handoffDir);
        await handoff.install(opts.launcherShell);
        const provision = () =>
          provisionOrdinal({
            store,
            api,
            network: opts.network,
            tenant,
            policy: {
              ordinal: ordinalOf(opts),
              namePrefix: opts.namePrefix,
              reuseOffline: opts.reuseOffline,
              reuseMinAgeMs: opts.reuseMinAge,
            },
            statusNotifications: opts.statusNotifications,
            logger: app.logger,
            onConflict: () => metrics.claimConflict(),
          });
        const first = await provision();
        metrics.provisioned();
        app.logger.info(
          {
            ordinal: ordinalOf(opts),
            connector: first.name,
            id: first.id,
            apiCalls: api.stats.calls,
            conflicts: first.conflicts,
          },
          'provisioned; waiting for the connector container',
        );
        await serveHandoffs({
          handoff,
          api,
          first,
          reprovision: provision,
          signal: app.signal,
          metrics,
          logger: app.logger,
          once: opts.once,
        });
        return;
      }
      case 'gc': {
        const opts = parsed.opts;
        const logger = createLogger({ name: 'connector-init', level: opts.logLevel, destination: STDERR });
        const { api, store, tenant } = common(opts, logger);
        const result = await collectGarbage({
          store,
          api,
          network: opts.network,
          tenant,
          replicas: opts.replicas,
          deleteAdopted: opts.deleteAdopted,
          namePrefix: opts.namePrefix,
          logger,
        });
        logger.info({ ...result, apiCalls: api.stats.calls }, 'gc done');
        return;
      }
      case 'status': {
        const opts = parsed.opts;
        const logger = createLogger({ name: 'connector-init', level: opts.logLevel, destination: STDERR });
        const { api, store, tenant } = common(opts, logger);
        const report = await readStatus({ store, api, release: opts.release, network: opts.network, tenant });
        process.stdout.write(formatStatus(report, opts.output));
        return;
      }
    }
  } catch (e) {
    throw explainApiError(e);
  }
});

function readNamespace(): string | undefined {
  try {
    return readFileSync(SA_NAMESPACE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
