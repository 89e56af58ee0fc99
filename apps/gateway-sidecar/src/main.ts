import { ExecaRunner, createHostNet } from '@knet/host-net';
import { loadConfig } from '@knet/podgw';
import {
  createLogger,
  createMetricsRegistry,
  createObservabilityServer,
  installSignalHandlers,
  parseOptions,
  runMain,
  untilAborted,
} from '@knet/runtime';
import { program } from './options';
import { OverlayServers, requireGatewayAddress } from './servers';

void runMain('gateway-sidecar', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const logger = createLogger({ name: 'gateway-sidecar', level: opts.logLevel });
  for (const w of config.warnings) logger.warn(w);
  const { signal } = installSignalHandlers({ logger, timeoutMs: opts.shutdownTimeout });
  const net = createHostNet(new ExecaRunner({ logger }));
  await requireGatewayAddress(net.ip, config);

  const registry = createMetricsRegistry();
  const servers = new OverlayServers({ ...opts, config, fdb: net.fdb, logger, registry });
  const endpoint = createObservabilityServer({
    host: opts.metricsHost,
    port: opts.metricsPort,
    registry,
    logger,
    shutdownSignal: signal,
  });
  endpoint.addReadinessCheck('serving', () => servers.serving);
  await endpoint.listen();
  await servers.start();
  await untilAborted(signal);
  await servers.stop();
});
