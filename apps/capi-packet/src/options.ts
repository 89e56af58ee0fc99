import { z } from 'zod';
import { UsageError, createProgram, daemonOptions, schemas } from '@knet/runtime';
import { VERSION } from './version';

/**
 * Every flag of capi-packet, declared once: flag, env fallback, help, schema, default. Cross-field
 * checks go in `validate` (one-line UsageError, exit 2), never in main.ts.
 */
export const program = createProgram({
  name: 'capi-packet',
  version: VERSION,
  description: 'CLI: cluster manifests and kubeconfigs for Cluster API on Packet / Equinix Metal',
  options: {
    // --log-level, --shutdown-timeout, --metrics-host, --metrics-port (CAPI_PACKET_METRICS_PORT, …);
    // an app that talks to the API server adds `kubeconfig: { ...kubeconfigOption, description }`.
    ...daemonOptions({
      envPrefix: 'CAPI_PACKET',
      defaultPort: 9090,
      zero: 'any',
      readiness: 'ready once the first reconcile succeeded',
    }),
    items: {
      flag: '--items <names>',
      env: 'CAPI_PACKET_ITEMS',
      description: 'comma-separated names of the items to keep in place',
      schema: schemas.list(z.string().regex(/^[a-z0-9-]+$/, 'must be lowercase letters, digits and -')),
      default: [],
    },
    interval: {
      flag: '--interval <duration>',
      env: 'CAPI_PACKET_INTERVAL',
      description: 'time between two reconciles (also after a failed one)',
      schema: schemas.duration({ min: 100 }),
      default: '30s',
    },
  },
  validate(opts, { name }) {
    if (new Set(opts.items).size !== opts.items.length) {
      throw new UsageError(`${name('items')}: each name may appear once`);
    }
  },
});
