import { ExecaRunner, createHostNet } from '@knet/host-net';
import { loadConfig } from '@knet/podgw';
import { parseOptions, runMain, startApp } from '@knet/runtime';
import { program } from './options';
import { OverlayServers, requireGatewayAddress } from './servers';

void runMain('gateway-sidecar', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const app = startApp('gateway-sidecar', opts);
  for (const w of config.warnings) app.logger.warn(w);
  const net = createHostNet(new ExecaRunner({ logger: app.logger }));
  await requireGatewayAddress(net.ip, config);

  const servers = new OverlayServers({
    ...opts,
    config,
    fdb: net.fdb,
    logger: app.logger,
    registry: app.registry,
  });
  await app.serve({ readiness: { serving: () => servers.serving } });
  app.onShutdown(() => servers.stop(), 'DHCP and DNS');
  await servers.start();
  await app.untilShutdown();
});
