import { performance } from 'node:perf_hooks';
import { parseOptions, runMain, startApp } from '@knet/runtime';
import { answerAdmission } from './admission';
import { injectConfig } from './config';
import { createWebhookMetrics } from './metrics';
import { reviewLogLevel } from './inject';
import { program } from './options';
import { WebhookServer } from './server';
import { createTlsSource, keepChecking } from './tls-source';

// Wiring only: options → app → injection settings → certificate → HTTPS server → periodic checks.
void runMain('gateway-webhook', async () => {
  const opts = parseOptions(program);
  const app = startApp('gateway-webhook', { ...opts, logLevel: opts.debug ? 'debug' : opts.logLevel });
  const metrics = createWebhookMetrics(app.registry);
  const cfg = await injectConfig(opts);
  // The server exists once the first certificate does; renewals go to it.
  const serving: { server?: WebhookServer } = {};
  const tls = createTlsSource(opts, app.logger, (c) => serving.server?.setCertificate(c.certPem, c.keyPem));
  const first = await tls.start();
  const server = new WebhookServer({
    host: opts.listen.host,
    port: opts.listen.port,
    cert: first.certPem,
    key: first.keyPem,
    logger: app.logger,
    limits: {
      maxConnections: opts.maxConnections,
      handshakeTimeoutMs: opts.handshakeTimeout,
      headersTimeoutMs: opts.handshakeTimeout,
      requestTimeoutMs: opts.requestTimeout,
    },
    onRefused: (reason) => metrics.refused(reason),
    admit: (body) => {
      const started = performance.now();
      const answer = answerAdmission(body, cfg);
      metrics.reviewed(answer.review, (performance.now() - started) / 1000);
      if (answer.review) {
        const { result, reason, uid, namespace, name } = answer.review;
        app.logger[reviewLogLevel(answer.review)](
          { result, reason, uid, namespace, pod: name },
          `pod ${result}`,
        );
      }
      return answer;
    },
  });
  serving.server = server;
  metrics.watchConnections(() => server.connections);
  await server.listen();
  app.onShutdown(() => server.close(), 'webhook server');
  await app.serve({ readiness: { tls: () => tls.ready } });
  await keepChecking({
    check: () => tls.check(),
    intervalMs: opts.caBundleCheckInterval,
    signal: app.signal,
    logger: app.logger,
    onResult: (r) => metrics.certCheck(r),
  });
});
