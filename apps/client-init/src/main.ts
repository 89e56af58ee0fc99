import {
  connectToGateway,
  createClientContext,
  discoverFacts,
  isolatePod,
  loadConfig,
  planClient,
} from '@knet/podgw';
import { parseOptions, runMain, startApp } from '@knet/runtime';
import { program } from './options';

void runMain('client-init', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const { logger, signal } = startApp('client-init', opts);
  for (const w of config.warnings) logger.warn(w);
  const ctx = createClientContext(opts, config, logger);
  const { nat } = ctx;

  const facts = await discoverFacts(ctx);
  const plan = planClient(config.settings, nat, facts);
  const isolated = await isolatePod(ctx, plan, facts);
  const conn = await connectToGateway(ctx, plan, facts, { signal });
  for (const c of [...isolated, ...conn.changes]) logger.info({ change: c }, 'changed');
  logger.info(
    {
      gateway: config.settings.gatewayName,
      gatewayIp: conn.gatewayIp,
      address: conn.address,
      static: nat ? nat.origin : false,
      leaseSeconds: conn.lease?.leaseTimeSec,
      podGateway: facts.podGateway4,
    },
    'routed through the gateway',
  );
});
