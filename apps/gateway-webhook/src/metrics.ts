import { Counter, Gauge, Histogram, type Registry } from '@knet/runtime';
import { MUTATE_REASONS, REJECT_REASONS, SKIP_REASONS, type Review } from './inject';
import { REFUSAL_REASONS, type RefusalReason } from './server';

/** gateway-webhook's metrics, on the app's registry (served on /metrics by `app.serve()`). */
export interface WebhookMetrics {
  reviewed(review: Review | undefined, seconds: number): void;
  refused(reason: RefusalReason): void;
  certCheck(result: 'ok' | 'error'): void;
  /** Where the open-connections gauge reads its value at scrape time. */
  watchConnections(count: () => number): void;
}

export function createWebhookMetrics(registry: Registry): WebhookMetrics {
  const registers = [registry];
  const reviews = new Counter({
    name: 'knet_podgw_webhook_reviews_total',
    help: 'admission reviews answered, by result (mutated, skipped, rejected, invalid) and reason',
    labelNames: ['result', 'reason'],
    registers,
  });
  // Every series exists from the start, so a rate() over a restart sees zeros, not gaps.
  for (const reason of MUTATE_REASONS) reviews.inc({ result: 'mutated', reason }, 0);
  for (const reason of SKIP_REASONS) reviews.inc({ result: 'skipped', reason }, 0);
  for (const reason of REJECT_REASONS) reviews.inc({ result: 'rejected', reason }, 0);
  reviews.inc({ result: 'invalid', reason: 'not-an-admission-review' }, 0);
  const duration = new Histogram({
    name: 'knet_podgw_webhook_review_duration_seconds',
    help: 'time from the end of the request body to the answer',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers,
  });
  const refused = new Counter({
    name: 'knet_podgw_webhook_refused_connections_total',
    help: 'HTTPS clients cut off before or instead of an answer, by reason',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of REFUSAL_REASONS) refused.inc({ reason }, 0);
  const certChecks = new Counter({
    name: 'knet_podgw_webhook_certificate_checks_total',
    help: 'checks of the CA Secret, the serving certificate and the caBundle, by result',
    labelNames: ['result'],
    registers,
  });
  certChecks.inc({ result: 'ok' }, 0);
  certChecks.inc({ result: 'error' }, 0);
  let connections: () => number = () => 0;
  new Gauge({
    name: 'knet_podgw_webhook_open_connections',
    help: 'connections open on the HTTPS port (API servers keep a few; more means strangers)',
    registers,
    collect() {
      this.set(connections());
    },
  });
  return {
    watchConnections: (count) => {
      connections = count;
    },
    reviewed(review, seconds) {
      if (review) reviews.inc({ result: review.result, reason: review.reason });
      else reviews.inc({ result: 'invalid', reason: 'not-an-admission-review' });
      duration.observe(seconds);
    },
    refused: (reason) => refused.inc({ reason }),
    certCheck: (result) => certChecks.inc({ result }),
  };
}
