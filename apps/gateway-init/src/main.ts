import { ExecaRunner, createHostNet } from '@knet/host-net';
import { applyGatewayPlan, discoverGatewayFacts, gatewaySummary, loadConfig, planGateway } from '@knet/podgw';
import { parseOptions, runMain, startApp } from '@knet/runtime';
import { program } from './options';

void runMain('gateway-init', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const { logger } = startApp('gateway-init', opts); // no endpoint: a one-shot init container
  for (const w of config.warnings) logger.warn(w);
  const net = createHostNet(new ExecaRunner({ logger }));

  const plan = planGateway(
    config.settings,
    config.nat,
    await discoverGatewayFacts(net, config.settings, opts),
  );
  if (opts.dryRun) {
    process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    return;
  }
  const changes = await applyGatewayPlan(net, plan, logger);
  for (const c of changes) logger.info({ change: c }, 'changed');
  logger.info(
    gatewaySummary(plan, config, changes),
    changes.length ? 'gateway network ready' : 'gateway network already as configured: nothing changed',
  );
});
