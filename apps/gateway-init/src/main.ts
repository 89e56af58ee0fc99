import { ExecaRunner, createHostNet } from '@knet/host-net';
import { applyGatewayPlan, discoverGatewayFacts, gatewaySummary, loadConfig, planGateway } from '@knet/podgw';
import { createLogger, parseOptions, runMain } from '@knet/runtime';
import { program } from './options';

void runMain('gateway-init', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  // Not startApp: a one-shot init container with no endpoint, whose --dry-run stdout is the plan
  // alone (startApp's shutdown logs would follow it there).
  const logger = createLogger({ name: 'gateway-init', level: opts.logLevel });
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
